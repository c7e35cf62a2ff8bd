"""Routing decisions and the late feedback on them."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.db import models
from django.db.models import Q

from router_ops.applications.models import Application
from router_ops.rollouts.models import RouterVersion


class Decision(models.Model):
    """One routed request, as the production router reported it.

    `decision_id` is the client's idempotency key: unique per application.
    Rows are written by `decision_ingest_batch` in bulk (not through `save()`),
    so every default also lives in the database.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    decision_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(db_default=models.functions.Now())
    router_version = models.ForeignKey(RouterVersion, on_delete=models.PROTECT, related_name="+")
    unit_id = models.CharField(max_length=128)
    routed_to = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True, db_default="")
    router_score = models.FloatField(null=True, blank=True)
    prompt = models.TextField(null=True, blank=True)
    messages = models.JSONField(null=True, blank=True)
    response = models.TextField(null=True, blank=True)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    attributes = models.JSONField(default=dict, db_default={}, blank=True)
    segment_ids = ArrayField(models.IntegerField(), default=list, db_default=[], blank=True)
    # What candidate ("shadow") routers would have decided for the same request:
    # [{"router_version": "v13", "routed_to": "strong", "router_score": 0.72}, …]
    shadow_decisions = models.JSONField(default=list, db_default=[], blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "decision_id"], name="decision_id_unique_per_app"),
            models.CheckConstraint(
                condition=Q(prompt_tokens__gte=0) | Q(prompt_tokens__isnull=True), name="decision_prompt_tokens_ge0"
            ),
            models.CheckConstraint(
                condition=Q(completion_tokens__gte=0) | Q(completion_tokens__isnull=True),
                name="decision_completion_tokens_ge0",
            ),
            models.CheckConstraint(
                condition=Q(latency_ms__gte=0) | Q(latency_ms__isnull=True), name="decision_latency_ge0"
            ),
            models.CheckConstraint(condition=Q(cost_usd__gte=0) | Q(cost_usd__isnull=True), name="decision_cost_ge0"),
        ]
        indexes = [
            # Time-window scans per application (dashboards, rollups, retention).
            models.Index(fields=["application", "occurred_at"], name="decision_app_time"),
            # Append-mostly table: a tiny BRIN index serves "rows received since X" sweeps.
            BrinIndex(fields=["received_at"], name="decision_received_brin"),
            # Segment membership queries: segment_ids @> ARRAY[id].
            GinIndex(fields=["segment_ids"], name="decision_segments_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} → {self.routed_to}"


class Feedback(models.Model):
    """A late outcome signal. Kept as pending (decision NULL) until its decision arrives."""

    KINDS = ("thumbs_down", "thumbs_up", "retry", "regenerate", "escalation")

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    # The client's decision id, kept even when the decision is unknown yet.
    decision_key = models.CharField(max_length=128)
    decision = models.ForeignKey(Decision, null=True, blank=True, on_delete=models.CASCADE, related_name="feedback")
    # Optional client id that makes a resend harmless (an extension of API.md).
    feedback_id = models.CharField(max_length=128, null=True, blank=True)
    kind = models.CharField(max_length=64)
    value = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(db_default=models.functions.Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application", "feedback_id"],
                condition=Q(feedback_id__isnull=False),
                name="feedback_id_unique_per_app",
            ),
        ]
        indexes = [
            # Attaching pending feedback when its decision arrives.
            models.Index(
                fields=["application", "decision_key"], condition=Q(decision__isnull=True), name="feedback_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.decision_key}"
