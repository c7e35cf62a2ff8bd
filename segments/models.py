"""Segments (named rules over decisions) and dimensions (attributes sliced automatically)."""

from __future__ import annotations

import math

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from router_ops.applications.models import Application
from segments import dsl

MAX_BUCKET_EDGES = 50


def validate_rule(value: str) -> None:
    try:
        dsl.parse(value)
    except dsl.RuleError as exc:
        raise ValidationError(str(exc), code="invalid_rule", params={"line": exc.line, "column": exc.column}) from None


def validate_path(value: str) -> None:
    try:
        dsl.parse_path(value)
    except dsl.RuleError:
        raise ValidationError(
            "Not a field or attribute path; e.g. tenant, attributes.client.name or prompt_tokens.", code="invalid_path"
        ) from None


def validate_bucket_edges(value: list[float]) -> None:
    if len(value) > MAX_BUCKET_EDGES:
        raise ValidationError(f"At most {MAX_BUCKET_EDGES} bucket edges.", code="too_many_edges")
    if any(not math.isfinite(edge) for edge in value):
        raise ValidationError("Bucket edges must be finite numbers.", code="edge_not_finite")
    if any(b <= a for a, b in zip(value, value[1:], strict=False)):
        raise ValidationError("Bucket edges must be strictly increasing.", code="edges_not_increasing")


class Segment(models.Model):
    """A named rule. Membership lives on `Decision.segment_ids`:

    - ingestion adds the ids of the *active* segments a decision matches;
    - a backfill (on create, on a rule change, on reactivation, or on demand)
      makes the membership of every decision up to its start agree with the
      current rule, whether the segment is active or not;
    - deactivating keeps the membership of decisions already tagged, so history
      stays traceable; deleting a segment removes its id everywhere.
    """

    BACKFILL_IDLE = "idle"
    BACKFILL_PENDING = "pending"
    BACKFILL_RUNNING = "running"
    BACKFILL_DONE = "done"
    BACKFILL_FAILED = "failed"
    BACKFILL_STATUSES = [
        (s, s) for s in (BACKFILL_IDLE, BACKFILL_PENDING, BACKFILL_RUNNING, BACKFILL_DONE, BACKFILL_FAILED)
    ]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="segments")
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    rule = models.TextField(validators=[validate_rule], help_text="e.g. channel == \"api\" and user_tier == \"enterprise\"")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Backfill progress: a cursor over decision ids, so a restarted task resumes.
    backfill_status = models.CharField(max_length=16, choices=BACKFILL_STATUSES, default=BACKFILL_IDLE)
    backfill_through_id = models.BigIntegerField(default=0, help_text="Decisions with id ≤ this are done")
    backfill_upto_id = models.BigIntegerField(null=True, blank=True, help_text="Last decision id this backfill covers")
    backfill_processed = models.BigIntegerField(default=0)
    backfill_total = models.BigIntegerField(null=True, blank=True)
    backfill_started_at = models.DateTimeField(null=True, blank=True)
    backfill_finished_at = models.DateTimeField(null=True, blank=True)
    backfill_error = models.TextField(blank=True)

    class Meta:
        ordering = ["application", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["application", "slug"], name="segment_slug_unique_per_app"),
            models.CheckConstraint(condition=Q(backfill_processed__gte=0), name="segment_backfill_processed_ge0"),
        ]
        indexes = [
            # segment_matcher's cache stamp: count and max(updated_at) of an application's segments.
            models.Index(fields=["application", "updated_at"], name="segment_app_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.application.slug}:{self.slug}"

    @property
    def display_name(self) -> str:
        return self.name or self.slug

    @property
    def backfill_percent(self) -> float | None:
        if self.backfill_status == self.BACKFILL_DONE:
            return 100.0
        if not self.backfill_total:
            return None
        return min(100.0, 100.0 * self.backfill_processed / self.backfill_total)


class Dimension(models.Model):
    """An attribute (or decision field) to slice traffic by, without writing rules.

    Each value whose share of traffic is at least `min_share` becomes a slice; a
    numeric path with `bucket_edges` is sliced into ranges instead.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="dimensions")
    path = models.CharField(
        max_length=200, validators=[validate_path], help_text="tenant, attributes.client.name, prompt_tokens, …"
    )
    min_share = models.FloatField(
        default=0.01, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)], help_text="0–1"
    )
    bucket_edges = ArrayField(
        models.FloatField(), default=list, blank=True, validators=[validate_bucket_edges],
        help_text="Increasing edges for numeric paths, e.g. 500, 2000, 8000",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application", "path"]
        constraints = [
            models.UniqueConstraint(fields=["application", "path"], name="dimension_path_unique_per_app"),
            models.CheckConstraint(condition=Q(min_share__gte=0) & Q(min_share__lte=1), name="dimension_min_share_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.application.slug}:{self.path}"

    def clean(self) -> None:
        if self.bucket_edges and self.path:
            try:
                path = dsl.parse_path(self.path)
            except dsl.RuleError:
                return
            if path.field and path.type == dsl.TEXT:
                raise ValidationError({"bucket_edges": f"'{self.path}' is text; only numeric paths are bucketed."})
