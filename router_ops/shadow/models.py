"""Sampling policy, the shadow outbox, shadow answers and the daily budget ledger.

`ShadowSample` is both the record of a sampling decision (with its inclusion
probability π, so every estimate can be re-weighted to real traffic) and the
transactional outbox row of the shadow job: it is inserted in the ingestion
transaction and walked through its states by the relay and the tasks with
conditional UPDATEs (see outbox.py), never by check-then-act.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.ingest.models import Decision

UNIT = [MinValueValidator(0.0), MaxValueValidator(1.0)]


def _unit_check(field: str, name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__gte": 0}) & Q(**{f"{field}__lte": 1}), name=name)


class SamplingPolicy(models.Model):
    """How an application spends its shadow budget (DESIGN.md §4). One per application."""

    application = models.OneToOneField(Application, on_delete=models.CASCADE, related_name="sampling_policy")
    base_rate = models.FloatField(
        default=0.02, validators=UNIT, help_text="Uniform rate every cheap-routed decision gets (0–1)"
    )
    min_judged_per_segment = models.PositiveIntegerField(
        default=50, help_text="Daily target of judged pairs per segment; rare segments get higher rates to reach it"
    )
    divergence_rate = models.FloatField(
        default=0.25,
        validators=UNIT,
        help_text="Rate for decisions a shadow router would have routed differently (0–1)",
    )
    reverse_rate = models.FloatField(
        default=0.01, validators=UNIT, help_text="Rate for strong-routed decisions mirrored onto the cheap tier (0–1)"
    )
    daily_budget_usd = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        default=Decimal("10"),
        validators=[MinValueValidator(0)],
        help_text="Cap on shadow + judge spend per UTC day",
    )
    opt_out_segments = ArrayField(
        models.SlugField(max_length=64),
        default=list,
        blank=True,
        help_text="Slugs of segments whose traffic is never mirrored (e.g. tenants who opted out)",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "sampling policies"
        constraints = [
            _unit_check("base_rate", "samplingpolicy_base_rate_0_1"),
            _unit_check("divergence_rate", "samplingpolicy_divergence_rate_0_1"),
            _unit_check("reverse_rate", "samplingpolicy_reverse_rate_0_1"),
            models.CheckConstraint(condition=Q(daily_budget_usd__gte=0), name="samplingpolicy_budget_ge0"),
        ]

    def __str__(self) -> str:
        return f"sampling policy of {self.application.slug}"


class ShadowSample(models.Model):
    """A sampled decision and its pending shadow (then judge) job.

    Shadow:  pending ──relay──▶ enqueued ──task claims──▶ running ──▶ done | failed
    Judge (after the shadow is done): the same walk in `judge_status`.
    A row `enqueued`/`running` whose lease is older than the stale timeout is sent
    again by the relay: a lost message or a killed worker delays the job, never loses it.
    """

    DIRECTION_UP = "cheap_to_strong"
    DIRECTION_DOWN = "strong_to_cheap"  # reverse sampling: measures overspend
    DIRECTIONS = [(DIRECTION_UP, "cheap → strong"), (DIRECTION_DOWN, "strong → cheap (reverse)")]

    REASON_BASE = "base"
    REASON_QUOTA = "quota"
    REASON_DIVERGENCE = "divergence"
    REASON_REVERSE = "reverse"
    REASONS = [(r, r) for r in (REASON_BASE, REASON_QUOTA, REASON_DIVERGENCE, REASON_REVERSE)]

    PENDING = "pending"
    ENQUEUED = "enqueued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STATUSES = [(s, s) for s in (PENDING, ENQUEUED, RUNNING, DONE, FAILED)]
    JUDGE_NONE = ""  # the shadow is not done yet
    JUDGE_STATUSES = [(JUDGE_NONE, "not yet"), *STATUSES]

    VERDICTS = [(v, v) for v in ("primary_better", "equivalent", "shadow_better")]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    decision = models.OneToOneField(Decision, on_delete=models.CASCADE, related_name="shadow_sample")
    direction = models.CharField(max_length=16, choices=DIRECTIONS)
    primary_tier = models.CharField(max_length=32)
    shadow_tier = models.CharField(max_length=32)
    inclusion_probability = models.FloatField(help_text="π: the probability this decision had of being sampled")
    reason = models.CharField(max_length=16, choices=REASONS, help_text="Which rule gave the largest π")
    # Copied from the decision at sampling time: rollups and quota counts by segment need no join.
    segment_ids = ArrayField(models.IntegerField(), default=list, blank=True)
    created_at = models.DateTimeField(db_default=models.functions.Now())

    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_default=PENDING)
    attempts = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Shadow task claims (deliveries that ran)"
    )
    sends = models.PositiveIntegerField(default=0, db_default=0, help_text="Times the relay handed the job to Celery")
    lease_at = models.DateTimeField(null=True, blank=True, help_text="When the job was last enqueued or claimed")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="", db_default="")
    # The budget the current attempt holds (budget.py): a claim that takes the job over
    # releases it from that day's ledger. The day means something only while the amount is > 0.
    shadow_reserved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0, db_default=0)
    shadow_reserved_day = models.DateField(null=True, blank=True)

    judge_status = models.CharField(max_length=16, choices=JUDGE_STATUSES, blank=True, default="", db_default="")
    judge_attempts = models.PositiveIntegerField(default=0, db_default=0)
    judge_lease_at = models.DateTimeField(null=True, blank=True)
    judge_error = models.TextField(blank=True, default="", db_default="")
    # The sum of the reservations of the judge attempt's LLM judges, all on one day.
    judge_reserved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0, db_default=0)
    judge_reserved_day = models.DateField(null=True, blank=True)
    # The pair's verdict, from the first judge that decided it (denormalised for rollups).
    verdict = models.CharField(max_length=16, choices=VERDICTS, blank=True, default="", db_default="")
    materially_disagree = models.BooleanField(null=True, blank=True)
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(inclusion_probability__gt=0) & Q(inclusion_probability__lte=1),
                name="shadowsample_pi_in_0_1",
            ),
            models.CheckConstraint(
                condition=Q(direction__in=["cheap_to_strong", "strong_to_cheap"]), name="shadowsample_direction_known"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "enqueued", "running", "done", "failed"]),
                name="shadowsample_status_known",
            ),
            # A judge job exists only once the shadow answer does.
            models.CheckConstraint(
                condition=Q(judge_status="") | Q(status="done"), name="shadowsample_judge_after_shadow"
            ),
        ]
        indexes = [
            # outbox_relay: `WHERE status = 'pending' ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED`.
            models.Index(fields=["id"], condition=Q(status="pending"), name="shadowsample_pending"),
            # outbox_relay: stale leases, `WHERE status IN ('enqueued','running') AND lease_at < now() - T`.
            models.Index(
                fields=["lease_at"], condition=Q(status__in=["enqueued", "running"]), name="shadowsample_in_flight"
            ),
            # outbox_relay, judge side: `WHERE judge_status = 'pending'` and stale judge leases.
            models.Index(
                fields=["judge_lease_at"],
                condition=Q(judge_status__in=["pending", "enqueued", "running"]),
                name="shadowsample_judge_open",
            ),
            # Dashboards and rollups: an application's samples over time.
            models.Index(fields=["application", "created_at"], name="shadowsample_app_created"),
        ]

    def __str__(self) -> str:
        return f"sample {self.pk} of decision {self.decision_id} ({self.status})"


class ShadowRun(models.Model):
    """The shadow call's answer: the other tier's model on the same prompt."""

    sample = models.OneToOneField(ShadowSample, on_delete=models.CASCADE, related_name="run")
    endpoint = models.ForeignKey(ModelEndpoint, null=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200, help_text="As the provider reported it")
    response = models.TextField()
    prompt_tokens = models.IntegerField()
    completion_tokens = models.IntegerField()
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8)
    latency_ms = models.FloatField()
    attempts = models.PositiveIntegerField(help_text="HTTP attempts of the successful call")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="shadowrun_cost_ge0"),
            models.CheckConstraint(
                condition=Q(prompt_tokens__gte=0) & Q(completion_tokens__gte=0), name="shadowrun_tokens_ge0"
            ),
        ]

    def __str__(self) -> str:
        return f"shadow run of sample {self.sample_id}"


class BudgetDay(models.Model):
    """Shadow + judge spend of one application on one UTC day.

    `reserved_usd` holds the maximum cost of calls in flight; a call starts only if
    a conditional UPDATE can reserve it under the cap (budget.py), so concurrent
    workers cannot overspend. A killed worker's reservations stay until its jobs'
    leases go stale and they are claimed again.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0, db_default=0)
    shadow_spent_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0, db_default=0)
    judge_spent_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0, db_default=0)
    calls = models.PositiveIntegerField(default=0, db_default=0)
    refused = models.PositiveIntegerField(default=0, db_default=0, help_text="Calls not made for lack of budget")

    class Meta:
        ordering = ["application", "-day"]
        constraints = [
            models.UniqueConstraint(fields=["application", "day"], name="budgetday_unique"),
            models.CheckConstraint(condition=Q(reserved_usd__gte=0), name="budgetday_reserved_ge0"),
        ]

    def __str__(self) -> str:
        return f"{self.application.slug} {self.day}"

    @property
    def spent_usd(self) -> Decimal:
        return self.shadow_spent_usd + self.judge_spent_usd


class SegmentDayCount(models.Model):
    """Quota bookkeeping per (application, UTC day, segment): cheap-routed decisions seen
    (`eligible`) and sampled. The quota rate of a segment is derived from these.

    Updated by one upsert per ingested batch, in the ingestion transaction, with keys in
    sorted order so concurrent batches cannot deadlock on them.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    segment_id = models.IntegerField()
    eligible = models.BigIntegerField(default=0)
    sampled = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "day", "segment_id"], name="segmentdaycount_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.application_id}:{self.day}:{self.segment_id}"
