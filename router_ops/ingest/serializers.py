"""Serializers that document the ingestion contract in the OpenAPI schema.

The hot path validates with router_ops/ingest/validation.py (same rules, far
cheaper); tests check that both agree on what API.md promises.
"""

from __future__ import annotations

from rest_framework import serializers


class ShadowDecisionSerializer(serializers.Serializer):
    router_version = serializers.CharField(max_length=64)
    routed_to = serializers.CharField(max_length=32)
    router_score = serializers.FloatField(required=False, allow_null=True)


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)


class DecisionInSerializer(serializers.Serializer):
    decision_id = serializers.CharField(max_length=128, help_text="Unique per application: the idempotency key.")
    occurred_at = serializers.DateTimeField(help_text="RFC 3339 with a UTC offset.")
    router_version = serializers.CharField(max_length=64, help_text="Unknown versions are created as draft.")
    unit_id = serializers.CharField(max_length=128, help_text="Hashed user/tenant id for sticky assignment.")
    routed_to = serializers.CharField(max_length=32, help_text="A tier of the application, e.g. cheap or strong.")
    model = serializers.CharField(max_length=200, required=False, allow_null=True)
    router_score = serializers.FloatField(required=False, allow_null=True)
    prompt = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    messages = MessageSerializer(many=True, required=False, allow_null=True)
    response = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    prompt_tokens = serializers.IntegerField(min_value=0, max_value=2_147_483_647, required=False, allow_null=True)
    completion_tokens = serializers.IntegerField(min_value=0, max_value=2_147_483_647, required=False, allow_null=True)
    latency_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    cost_usd = serializers.FloatField(
        min_value=0, max_value=999_999, required=False, allow_null=True, help_text="Computed from prices when absent."
    )
    attributes = serializers.DictField(
        required=False, help_text="Free-form: tenant, user_tier, channel, client, locale, …"
    )
    shadow_decisions = ShadowDecisionSerializer(many=True, required=False)


class DecisionBatchInSerializer(serializers.Serializer):
    decisions = DecisionInSerializer(many=True, min_length=1, max_length=1000)


class ItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    decision_id = serializers.CharField(allow_null=True)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = ItemErrorSerializer(many=True)


class FeedbackInSerializer(serializers.Serializer):
    decision_id = serializers.CharField(max_length=128)
    kind = serializers.CharField(
        max_length=64, help_text="thumbs_down | thumbs_up | retry | regenerate | escalation | <custom>"
    )
    value = serializers.FloatField(required=False, allow_null=True)
    occurred_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Defaults to the time received.")
    feedback_id = serializers.CharField(
        max_length=128, required=False, allow_null=True, help_text="Optional idempotency key for the feedback item."
    )


class FeedbackBatchInSerializer(serializers.Serializer):
    feedback = FeedbackInSerializer(many=True, min_length=1, max_length=1000)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
