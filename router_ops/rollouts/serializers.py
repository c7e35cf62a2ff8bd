"""Explicit input and output serializers of the router-version, rollout and routing-config APIs."""

from __future__ import annotations

from rest_framework import serializers

from router_ops.rollouts.models import Approval, AuditEvent, Rollout, RolloutStage, RouterVersion


class StrictSerializer(serializers.Serializer):
    """Unknown fields are rejected with 400 and named (API.md)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# ---------------------------------------------------------------- router versions

VERSION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$"


class RouterVersionOut(serializers.ModelSerializer):
    class Meta:
        model = RouterVersion
        fields = ["id", "name", "status", "config", "notes", "created_at"]


class RouterVersionCreateIn(StrictSerializer):
    name = serializers.RegexField(VERSION_NAME, max_length=64)
    status = serializers.ChoiceField(
        choices=[RouterVersion.STATUS_DRAFT, RouterVersion.STATUS_SHADOW], default=RouterVersion.STATUS_DRAFT
    )
    config = serializers.DictField(required=False, default=dict)
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class RouterVersionUpdateIn(StrictSerializer):
    name = serializers.RegexField(VERSION_NAME, max_length=64, required=False)
    status = serializers.ChoiceField(choices=[s for s, _ in RouterVersion.STATUSES], required=False)
    config = serializers.DictField(required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ReasonIn(StrictSerializer):
    reason = serializers.CharField(allow_blank=False, max_length=2000)


# ---------------------------------------------------------------- rollouts


class StageIn(serializers.Serializer):
    """Documentation of a plan stage; validation is plans.plan_build's, which names each error."""

    name = serializers.CharField(required=False, max_length=32)
    weight_bp = serializers.IntegerField(min_value=0, max_value=10000)
    min_duration_s = serializers.IntegerField(required=False, min_value=0)
    min_judged_per_segment = serializers.IntegerField(required=False, min_value=0)
    margin = serializers.FloatField(required=False, min_value=0, max_value=1)
    alpha = serializers.FloatField(required=False)
    advance = serializers.ChoiceField(choices=["auto", "manual"], required=False)


class RolloutCreateIn(StrictSerializer):
    candidate = serializers.CharField(max_length=64, help_text="Name of a draft or shadow router version")
    stages = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Omit for the default plan",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    max_cost_ratio = serializers.FloatField(required=False, default=1.0, min_value=0.01, max_value=100)


class ApproveIn(StrictSerializer):
    evidence_hash = serializers.CharField(max_length=64, help_text="The `evidence.hash` you reviewed")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class AdvanceIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class EndIn(StrictSerializer):
    reason = serializers.CharField(allow_blank=False, max_length=2000)
    retire_candidate = serializers.BooleanField(required=False, default=False)


class RolloutStageOut(serializers.ModelSerializer):
    min_duration_s = serializers.SerializerMethodField()

    class Meta:
        model = RolloutStage
        fields = [
            "order",
            "name",
            "weight_bp",
            "min_duration_s",
            "min_judged_per_segment",
            "margin",
            "alpha",
            "advance",
            "started_at",
            "ended_at",
            "verdict",
        ]

    def get_min_duration_s(self, stage) -> int:
        return int(stage.min_duration.total_seconds())


class ApprovalOut(serializers.ModelSerializer):
    stage = serializers.CharField(source="stage.name")
    approver = serializers.CharField(source="approver.get_username")

    class Meta:
        model = Approval
        fields = ["id", "stage", "approver", "evidence_hash", "reason", "created_at", "used_at", "void_reason"]


class AuditEventOut(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "reason", "evidence_hash", "evidence", "created_at"]


def _requester(rollout: Rollout) -> str:
    if rollout.created_by_id:
        return rollout.created_by.get_username()
    if rollout.created_by_key_id:
        return f"key:{rollout.created_by_key.prefix}"
    return ""


class RolloutOut(serializers.ModelSerializer):
    candidate = serializers.CharField(source="candidate.name")
    baseline = serializers.CharField(source="baseline.name")
    requested_by = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = [
            "id",
            "candidate",
            "baseline",
            "status",
            "current_stage",
            "reason",
            "max_cost_ratio",
            "requested_by",
            "evidence_hash",
            "created_at",
            "updated_at",
            "ended_at",
        ]

    def get_requested_by(self, rollout) -> str:
        return _requester(rollout)


class RolloutDetailOut(RolloutOut):
    """With the plan, the *current* gate evidence (its `hash` is what an approval sends),
    the approvals and the audit timeline."""

    stages = RolloutStageOut(many=True)
    approvals = ApprovalOut(many=True)
    evidence = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta(RolloutOut.Meta):
        fields = RolloutOut.Meta.fields + ["stages", "evidence", "approvals", "events"]

    def get_evidence(self, rollout) -> dict:
        return self.context["evidence"]

    def get_events(self, rollout) -> list[dict]:
        return AuditEventOut(self.context["events"], many=True).data


class RoutingVersionOut(serializers.Serializer):
    router_version = serializers.CharField()
    weight_bp = serializers.IntegerField()


class RoutingConfigOut(serializers.Serializer):
    application = serializers.CharField()
    salt = serializers.CharField()
    etag = serializers.CharField()
    versions = RoutingVersionOut(many=True)
    shadow_versions = serializers.ListField(child=serializers.CharField())


class RoutingAssignOut(serializers.Serializer):
    unit_id = serializers.CharField()
    bucket = serializers.IntegerField()
    router_version = serializers.CharField()
