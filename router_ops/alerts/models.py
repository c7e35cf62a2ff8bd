"""Alert rules, the last status each rule saw per segment, and the history of transitions.

A transition is a row (healthchecks' `Flip`): `alerts_evaluate` moves a
segment's known status with a conditional UPDATE, and only the evaluation whose
UPDATE changed the row records the event, so concurrent or repeated evaluations
notify once.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from router_ops.applications.models import Application
from router_ops.rollups.selectors import parse_window


def validate_window(value: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        parse_window(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_window") from None


class AlertRule(models.Model):
    """Where an application's segment alerts go: a Slack-compatible webhook and/or email."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100, default="Segment regret")
    webhook_url = models.URLField(max_length=500, blank=True, help_text='Receives POST {"text": …} (Slack-compatible)')
    email_recipients = ArrayField(models.EmailField(), default=list, blank=True)
    window = models.CharField(
        max_length=8, default="24h", validators=[validate_window], help_text="Statistics window, e.g. 24h or 7d"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application", "id"]

    def __str__(self) -> str:
        return f"{self.application.slug}: {self.name}"


class SegmentAlertState(models.Model):
    """The status a rule last saw for one segment (the 'last known status')."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    segment_id = models.IntegerField()
    status = models.CharField(max_length=32)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "segment_id"], name="alertstate_one_per_rule_segment")]

    def __str__(self) -> str:
        return f"rule {self.rule_id} · segment {self.segment_id}: {self.status}"


class AlertEvent(models.Model):
    """One transition into or out of `alert`, with what was sent and how delivery went."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="events")
    segment_id = models.IntegerField()
    # Kept as text so the history survives a renamed or deleted segment.
    segment_slug = models.SlugField(max_length=64)
    segment_name = models.CharField(max_length=200)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32)
    at = models.DateTimeField(db_default=models.functions.Now())
    payload = models.JSONField(default=dict)
    # [{"channel": "webhook"|"email", "ok": bool, "attempts": n, "detail": "…"}]
    deliveries = models.JSONField(default=list)
    delivery_claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(from_status=models.F("to_status")), name="alertevent_is_a_change"),
        ]
        indexes = [
            # The alerts page: an application's history, newest first.
            models.Index(fields=["application", "-at"], name="alertevent_app_at"),
            # alerts_deliver_pending: events nobody has claimed yet.
            models.Index(fields=["id"], condition=Q(delivery_claimed_at__isnull=True), name="alertevent_unclaimed"),
        ]

    def __str__(self) -> str:
        return f"{self.segment_slug}: {self.from_status or '—'} → {self.to_status}"

    @property
    def delivered_ok(self) -> bool:
        return bool(self.deliveries) and all(d.get("ok") for d in self.deliveries)
