"""Judges, their versioned rubric prompts, and the judgments they produce."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from router_ops.applications.models import Application
from router_ops.shadow.models import ShadowSample


class JudgePrompt(models.Model):
    """A versioned rubric for pairwise LLM judges. Versions are never edited in place:
    a judgment records the version it used, so a new rubric is a new version."""

    version = models.CharField(max_length=64, unique=True)
    text = models.TextField(help_text="Instruction given to the judge; must ask for a final 'Verdict: A|B|tie' line")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.version


class Judge(models.Model):
    KIND_PAIRWISE_LLM = "pairwise_llm"
    KIND_EXACT = "exact_match"
    KIND_NORMALISED = "normalised_match"
    KIND_NUMERIC = "numeric_answer"
    KIND_JSON = "json_valid"
    KIND_RECORDED = "recorded"
    KINDS = [
        (KIND_PAIRWISE_LLM, "pairwise LLM (order swapped)"),
        (KIND_EXACT, "exact match"),
        (KIND_NORMALISED, "normalised match"),
        (KIND_NUMERIC, "numeric final answer"),
        (KIND_JSON, "JSON validity"),
        (KIND_RECORDED, "recorded grades (replay)"),
    ]
    # Cheap, local judges that decide first when they can.
    DETERMINISTIC = (KIND_EXACT, KIND_NORMALISED, KIND_NUMERIC, KIND_JSON)

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="judges")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=KINDS)
    model = models.CharField(max_length=100, blank=True, help_text="Name of a model endpoint (LLM judges)")
    prompt_version = models.CharField(max_length=64, blank=True, help_text="JudgePrompt version (LLM judges)")
    config = models.JSONField(
        default=dict, blank=True, help_text="Kind-specific options, e.g. a recorded judge's source"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application", "id"]
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="judge_name_unique_per_app"),
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "pairwise_llm",
                        "exact_match",
                        "normalised_match",
                        "numeric_answer",
                        "json_valid",
                        "recorded",
                    ]
                ),
                name="judge_kind_known",
            ),
            models.CheckConstraint(
                condition=~Q(kind="pairwise_llm") | (~Q(model="") & ~Q(prompt_version="")),
                name="judge_llm_has_model_and_prompt",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Judgment(models.Model):
    """One judge's verdict on one (primary, shadow) pair. UNIQUE (sample, judge): a
    redelivered judge task cannot produce a second judgment."""

    PRIMARY_BETTER = "primary_better"
    EQUIVALENT = "equivalent"
    SHADOW_BETTER = "shadow_better"
    VERDICTS = [(v, v) for v in (PRIMARY_BETTER, EQUIVALENT, SHADOW_BETTER)]
    OK = "ok"
    FAILED = "failed"
    STATUSES = [(OK, OK), (FAILED, FAILED)]

    sample = models.ForeignKey(ShadowSample, on_delete=models.CASCADE, related_name="judgments")
    # PROTECT: a judge with judgments is retired (active=False), never deleted, so history stays traceable.
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="judgments")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    judge_kind = models.CharField(max_length=32)
    prompt_version = models.CharField(max_length=64, blank=True, help_text="Rubric version used (LLM judges)")
    status = models.CharField(max_length=8, choices=STATUSES)
    verdict = models.CharField(max_length=16, choices=VERDICTS, blank=True)
    materially_disagree = models.BooleanField(null=True)
    swap_consistent = models.BooleanField(null=True, help_text="Both orders agreed (pairwise LLM judges)")
    replies = models.JSONField(default=list, blank=True, help_text="Raw judge replies per order: [{order, reply}, …]")
    rationale = models.TextField(blank=True)
    error = models.TextField(blank=True)
    calls = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    latency_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["sample", "judge"], name="judgment_one_per_sample_and_judge"),
            # A verdict only when the judge succeeded; a failure is never a verdict.
            models.CheckConstraint(
                condition=(Q(status="ok") & ~Q(verdict="")) | (Q(status="failed") & Q(verdict="")),
                name="judgment_verdict_iff_ok",
            ),
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="judgment_cost_ge0"),
        ]
        indexes = [
            # Agreement / position-bias metrics per judge over time.
            models.Index(fields=["judge", "created_at"], name="judgment_judge_created"),
            # Rollups and dashboards of an application over time.
            models.Index(fields=["application", "created_at"], name="judgment_app_created"),
        ]

    def __str__(self) -> str:
        return f"{self.judge_id} on sample {self.sample_id}: {self.verdict or self.status}"
