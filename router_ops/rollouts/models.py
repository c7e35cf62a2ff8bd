"""Router versions, rollouts through staged plans, approvals, and the append-only audit log.

State changes go through `services.py`; these models guard single-row invariants and
the database guards the rest (one active version, one rollout in flight, audit rows
that refuse UPDATE and DELETE).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from router_ops.applications.models import ApiKey, Application


class RouterVersion(models.Model):
    STATUS_DRAFT = "draft"
    STATUS_SHADOW = "shadow"
    STATUS_CANARY = "canary"
    STATUS_ACTIVE = "active"
    STATUS_RETIRED = "retired"
    STATUSES = [(s, s) for s in (STATUS_DRAFT, STATUS_SHADOW, STATUS_CANARY, STATUS_ACTIVE, STATUS_RETIRED)]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="router_versions")
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=STATUSES, default=STATUS_DRAFT)
    config = models.JSONField(default=dict, blank=True, help_text="Thresholds and other router settings")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="routerversion_name_unique"),
            # At most one active version per application: the routing baseline.
            models.UniqueConstraint(
                fields=["application"], condition=models.Q(status="active"), name="routerversion_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application.slug}:{self.name}"


class Rollout(models.Model):
    """A candidate router version taken through a staged plan against the active baseline.

    requested ──approve──▶ running ⇄ paused
        │                    │ advance (stage by stage) ──▶ completed (candidate active)
        └──reject/rollback───┴──reject / rollback──▶ rejected / rolled_back
    """

    STATUS_REQUESTED = "requested"
    STATUS_RUNNING = "running"
    STATUS_PAUSED = "paused"
    STATUS_COMPLETED = "completed"
    STATUS_ROLLED_BACK = "rolled_back"
    STATUS_REJECTED = "rejected"
    STATUSES = [
        (s, s)
        for s in (
            STATUS_REQUESTED,
            STATUS_RUNNING,
            STATUS_PAUSED,
            STATUS_COMPLETED,
            STATUS_ROLLED_BACK,
            STATUS_REJECTED,
        )
    ]
    IN_FLIGHT = (STATUS_REQUESTED, STATUS_RUNNING, STATUS_PAUSED)
    # States in which the candidate is served (or shadowed) per the current stage.
    LIVE = (STATUS_RUNNING, STATUS_PAUSED)

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="rollouts")
    candidate = models.ForeignKey(RouterVersion, on_delete=models.PROTECT, related_name="rollouts_as_candidate")
    baseline = models.ForeignKey(RouterVersion, on_delete=models.PROTECT, related_name="rollouts_as_baseline")
    status = models.CharField(max_length=16, choices=STATUSES, default=STATUS_REQUESTED)
    current_stage = models.PositiveSmallIntegerField(default=0, help_text="Order of the stage being run")
    reason = models.TextField(blank=True, help_text="Why the requester wants this rollout")
    # Global cost guardrail: the candidate's cost per request may be at most this × the baseline's.
    max_cost_ratio = models.FloatField(default=1.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Set when an API key requested it; four-eyes then treats the key's creator as the requester.
    created_by_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The gate evidence last computed by a transition (the full evidence lives in the audit rows).
    evidence = models.JSONField(default=dict, blank=True)
    evidence_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One rollout in flight per application: the routing config has one candidate.
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(status__in=["requested", "running", "paused"]),
                name="rollout_one_in_flight",
            ),
            models.CheckConstraint(condition=~Q(candidate=models.F("baseline")), name="rollout_candidate_not_baseline"),
            models.CheckConstraint(condition=Q(max_cost_ratio__gt=0), name="rollout_max_cost_ratio_positive"),
        ]
        indexes = [
            # The rollouts list of an application, newest first.
            models.Index(fields=["application", "-created_at"], name="rollout_app_created"),
        ]

    def __str__(self) -> str:
        return f"{self.candidate.name} vs {self.baseline.name} ({self.status})"

    @property
    def is_in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT


class RolloutStage(models.Model):
    ADVANCE_AUTO = "auto"
    ADVANCE_MANUAL = "manual"
    ADVANCES = [(ADVANCE_AUTO, "automatic when gates pass"), (ADVANCE_MANUAL, "a person approves entering it")]

    VERDICT_PASS = "pass"  # noqa: S105 - a gate verdict, not a password
    VERDICT_FAIL = "fail"
    VERDICT_INCONCLUSIVE = "inconclusive"
    VERDICTS = [(v, v) for v in ("", VERDICT_PASS, VERDICT_FAIL, VERDICT_INCONCLUSIVE)]

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=32)
    weight_bp = models.PositiveIntegerField(help_text="Candidate's share of traffic in basis points; 0 = dark")
    min_duration = models.DurationField(default=timedelta(hours=24))
    min_judged_per_segment = models.PositiveIntegerField(default=300)
    margin = models.FloatField(help_text="Non-inferiority margin δ on quality loss per request")
    alpha = models.FloatField(help_text="Error rate α of the stage's gate")
    # How the rollout *enters* this stage: a person's approval (manual) or gates alone (auto).
    advance = models.CharField(max_length=8, choices=ADVANCES, default=ADVANCE_AUTO)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=16, choices=VERDICTS, blank=True, default="")

    class Meta:
        ordering = ["rollout", "order"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "order"], name="rolloutstage_order_unique"),
            models.CheckConstraint(condition=Q(weight_bp__lte=10000), name="rolloutstage_weight_le_10000"),
            models.CheckConstraint(condition=Q(alpha__gt=0) & Q(alpha__lt=1), name="rolloutstage_alpha_open_unit"),
            models.CheckConstraint(condition=Q(margin__gte=0) & Q(margin__lte=1), name="rolloutstage_margin_unit"),
        ]

    def __str__(self) -> str:
        return f"{self.order}: {self.name}"

    @property
    def is_dark(self) -> bool:
        return self.weight_bp == 0


class Approval(models.Model):
    """A person's approval to enter `stage`, bound to the hash of the evidence they saw.

    Used once (by the advance it authorises); void if the gate verdicts change first.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="approvals")
    stage = models.ForeignKey(RolloutStage, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    evidence_hash = models.CharField(max_length=64)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One pending approval per stage: a second one would be ambiguous about which evidence counts.
            models.UniqueConstraint(
                fields=["stage"], condition=Q(used_at__isnull=True, void_reason=""), name="approval_one_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"approval of {self.stage} by {self.approver}"

    @property
    def is_pending(self) -> bool:
        return self.used_at is None and not self.void_reason


class AppendOnlyError(Exception):
    pass


class AuditEvent(models.Model):
    """Who did what to a rollout or router version, when, why, and on which evidence.

    Append-only: a trigger (migration 0003) makes PostgreSQL refuse UPDATE and DELETE;
    `save()` and `delete()` refuse too, so the ORM fails before the database has to.
    Foreign keys PROTECT, since a cascade would be a DELETE the database refuses.
    """

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    subject = models.CharField(max_length=100, blank=True, help_text='e.g. "router_version:v13"')
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_label = models.CharField(max_length=150, help_text='username, "key:<prefix>" or "system"')
    action = models.CharField(max_length=32)
    reason = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    evidence_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # A rollout's timeline on its detail page and API.
            models.Index(fields=["rollout", "created_at"], name="auditevent_rollout_time"),
            # The application's audit log, newest first.
            models.Index(fields=["application", "-created_at"], name="auditevent_app_time"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("Audit events are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")
