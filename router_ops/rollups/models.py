"""Hourly aggregates that the dashboards, the stats API and the gates read.

One row per (application, hour, router version, segment, tier). Segment 0 is
"all traffic". Every measure is a sum, so rows add up across hours and segments.
The Hájek estimate of a rate and its design-based variance need only these sums
(see router_ops/stats/weighted.py): with w = 1/π over judged pairs,
Σw, Σw², and for each 0/1 outcome y, Σwy and Σw²y (y² = y).
"""

from __future__ import annotations

from django.db import models

from router_ops.applications.models import Application

ALL_TRAFFIC = 0


class HourlyRollup(models.Model):
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    router_version_id = models.BigIntegerField()
    segment_id = models.IntegerField()  # 0 = all traffic
    tier = models.CharField(max_length=32)  # the routed tier

    decisions = models.BigIntegerField(default=0)
    cost_usd = models.FloatField(default=0)
    # What the same requests would have cost on the strong tier (same token counts).
    strong_cost_usd = models.FloatField(default=0)
    sampled = models.BigIntegerField(default=0)
    judged = models.BigIntegerField(default=0)
    shadow_cost_usd = models.FloatField(default=0)
    judge_cost_usd = models.FloatField(default=0)
    feedback_negative = models.BigIntegerField(default=0)
    feedback_total = models.BigIntegerField(default=0)

    sum_w = models.FloatField(default=0)
    sum_w2 = models.FloatField(default=0)
    # "bad": regret for cheap-routed rows (shadow better), overspend for strong-routed (shadow no worse).
    sum_w_bad = models.FloatField(default=0)
    sum_w2_bad = models.FloatField(default=0)
    sum_w_disagree = models.FloatField(default=0)
    sum_w2_disagree = models.FloatField(default=0)
    # Unweighted counts, shown beside every rate.
    n_bad = models.BigIntegerField(default=0)
    n_disagree = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application", "hour", "router_version_id", "segment_id", "tier"], name="rollup_key_unique"
            )
        ]
        indexes = [
            # Every page query: one application, one version, a time window.
            models.Index(fields=["application", "router_version_id", "hour"], name="rollup_app_version_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.application_id}:{self.hour:%Y-%m-%d %H}:{self.router_version_id}:{self.segment_id}:{self.tier}"


class DirtyHour(models.Model):
    """An (application, hour) whose rollups must be recomputed: new decisions,
    samples, judgments or feedback arrived for it (late data included)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    marked_at = models.DateTimeField(db_default=models.functions.Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["application", "hour"], name="dirtyhour_unique")]

    def __str__(self) -> str:
        return f"{self.application_id}:{self.hour:%Y-%m-%d %H}"
