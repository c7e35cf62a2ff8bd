"""Segments (named rules over decisions) and dimensions (attributes sliced automatically)."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

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
    rule = models.TextField(validators=[validate_rule], help_text='e.g. channel == "api" and user_tier == "enterprise"')
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
        models.FloatField(),
        default=list,
        blank=True,
        validators=[validate_bucket_edges],
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


class DiscoveryRun(models.Model):
    """One scan for under-performing slices (segments/discovery.py) and what it saw.

    pending ──task claims──▶ running ──▶ done | failed. At most one open (pending or
    running) run per application, guarded by a partial unique constraint, so the
    hourly sweep and a button press cannot start two.
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STATUSES = [(s, s) for s in (PENDING, RUNNING, DONE, FAILED)]
    TRIGGERS = [(t, t) for t in ("schedule", "api", "page", "admin")]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="discovery_runs")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    trigger = models.CharField(max_length=16, choices=TRIGGERS, default="schedule")
    window = models.DurationField(
        help_text="Judged samples of decisions that occurred in this window before `window_end`"
    )
    window_end = models.DateTimeField(null=True, blank=True, help_text="Fixed when the run starts")
    q = models.FloatField(default=0.05, validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)])
    min_share = models.FloatField(default=0.01, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    min_n_eff = models.FloatField(default=30.0, validators=[MinValueValidator(1.0)])
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # What the scan saw.
    samples = models.PositiveIntegerField(default=0, help_text="Judged cheap-routed samples")
    n_eff = models.FloatField(default=0.0)
    overall_regret = models.FloatField(null=True, blank=True)
    candidates = models.PositiveIntegerField(default=0)
    tested = models.PositiveIntegerField(default=0)
    discoveries = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(status__in=["pending", "running"]),
                name="discoveryrun_one_open_per_app",
            ),
            models.CheckConstraint(condition=Q(q__gt=0) & Q(q__lt=1), name="discoveryrun_q_0_1"),
        ]
        indexes = [
            # discovery_latest_run: an application's newest finished run.
            models.Index(fields=["application", "status", "-finished_at"], name="discoveryrun_app_latest"),
        ]

    def __str__(self) -> str:
        return f"discovery run {self.pk} of {self.application.slug} ({self.status})"


class Discovery(models.Model):
    """One slice a discovery run tested: its regret against its complement.

    `rank` is set on discoveries (significant after Benjamini–Hochberg), 1 = most
    impact; `explained_by` names a smaller discovery that accounts for this one.
    """

    run = models.ForeignKey(DiscoveryRun, on_delete=models.CASCADE, related_name="findings")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    rule = models.TextField()
    kind = models.CharField(max_length=8, choices=[("single", "single"), ("cross", "cross")])
    traffic_share = models.FloatField(help_text="Estimated share of cheap-routed traffic in the slice")
    regret = models.FloatField()
    regret_low = models.FloatField()
    regret_high = models.FloatField()
    complement_regret = models.FloatField()
    excess_regret = models.FloatField(help_text="regret − complement regret")
    p_value = models.FloatField()
    adjusted_p_value = models.FloatField(help_text="Benjamini–Hochberg adjusted")
    n = models.PositiveIntegerField()
    n_eff = models.FloatField()
    impact = models.FloatField(help_text="traffic share × excess regret")
    significant = models.BooleanField()
    explained_by = models.TextField(blank=True)
    rank = models.PositiveIntegerField(null=True, blank=True)
    promoted_segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["run", "rank", "adjusted_p_value", "id"]
        verbose_name_plural = "discoveries"
        constraints = [
            models.UniqueConstraint(fields=["run", "rank"], name="discovery_rank_unique_per_run"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank or '–'} {self.rule}"


class EvalSet(models.Model):
    """An uploaded offline evaluation set: items with the traffic's attributes and
    whether the router's offline choice was right (segments/evalsets.py)."""

    FORMATS = [("jsonl", "JSON Lines"), ("csv", "CSV")]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="eval_sets")
    name = models.CharField(max_length=200)
    format = models.CharField(max_length=8, choices=FORMATS)
    filename = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    items_count = models.PositiveIntegerField(default=0, help_text="Rows kept")
    rejected_count = models.PositiveIntegerField(default=0, help_text="Rows refused")
    errors = models.JSONField(default=list, blank=True, help_text="The first line-numbered errors")
    correct_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["application", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(correct_count__lte=F("items_count")), name="evalset_correct_le_items")
        ]

    def __str__(self) -> str:
        return f"{self.application.slug}:{self.name}"

    @property
    def offline_accuracy(self) -> float | None:
        return self.correct_count / self.items_count if self.items_count else None


class EvalItem(models.Model):
    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="items")
    line = models.PositiveIntegerField(help_text="Line of the uploaded file")
    prompt = models.TextField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    routed_to = models.CharField(max_length=32, help_text="The router's offline choice")
    correct = models.BooleanField(help_text="Whether that choice was right")

    class Meta:
        ordering = ["eval_set", "line"]
        # evalset_compare reads an eval set's items; the FK index serves it.

    def __str__(self) -> str:
        return f"item at line {self.line}"
