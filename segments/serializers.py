"""Explicit input and output serializers of the segments API (API.md)."""

from __future__ import annotations

import math

from rest_framework import serializers

from segments import dsl
from segments.models import MAX_BUCKET_EDGES, Dimension, Segment


class RejectUnknownFields:
    """API.md: unknown fields are rejected with 400 and named."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({field: ["Unknown field."] for field in unknown})
        return super().to_internal_value(data)


def validate_rule_text(value: str) -> str:
    try:
        dsl.parse(value)
    except dsl.RuleError as exc:
        raise serializers.ValidationError(f"Invalid rule at {exc}.") from None
    return value.strip()


class SegmentInSerializer(RejectUnknownFields, serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    rule = serializers.CharField(
        max_length=dsl.MAX_RULE_LENGTH, trim_whitespace=False, help_text=dsl.__doc__.split("\n\n")[0]
    )
    active = serializers.BooleanField(required=False)

    def validate_rule(self, value: str) -> str:
        return validate_rule_text(value)


class BackfillSerializer(serializers.Serializer):
    status = serializers.CharField(source="backfill_status")
    processed = serializers.IntegerField(source="backfill_processed")
    total = serializers.IntegerField(source="backfill_total", allow_null=True)
    percent = serializers.FloatField(source="backfill_percent", allow_null=True)
    through_id = serializers.IntegerField(source="backfill_through_id")
    started_at = serializers.DateTimeField(source="backfill_started_at", allow_null=True)
    finished_at = serializers.DateTimeField(source="backfill_finished_at", allow_null=True)
    error = serializers.CharField(source="backfill_error")


class SegmentOutSerializer(serializers.ModelSerializer):
    backfill = BackfillSerializer(source="*", read_only=True)

    class Meta:
        model = Segment
        fields = ["id", "slug", "name", "rule", "active", "created_at", "updated_at", "backfill"]
        read_only_fields = fields


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise serializers.ValidationError("Must be a finite number.")
    return value


class DimensionInSerializer(RejectUnknownFields, serializers.Serializer):
    path = serializers.CharField(max_length=200, help_text="tenant, attributes.client.name, prompt_tokens, …")
    min_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    bucket_edges = serializers.ListField(
        child=serializers.FloatField(validators=[_finite]), max_length=MAX_BUCKET_EDGES, required=False
    )
    active = serializers.BooleanField(required=False)

    def validate_path(self, value: str) -> str:
        try:
            dsl.parse_path(value.strip())
        except dsl.RuleError:
            raise serializers.ValidationError(
                "Not a field or attribute path; e.g. tenant, attributes.client.name or prompt_tokens."
            ) from None
        return value.strip()

    def validate_bucket_edges(self, value: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise serializers.ValidationError("Bucket edges must be strictly increasing.")
        return value


class DimensionOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dimension
        fields = ["id", "path", "min_share", "bucket_edges", "active", "created_at"]
        read_only_fields = fields


class SliceSerializer(serializers.Serializer):
    label = serializers.CharField()
    count = serializers.IntegerField()
    share = serializers.FloatField()
    rule = serializers.CharField(help_text="A segment rule selecting exactly this slice")


class DimensionSlicesSerializer(serializers.Serializer):
    dimension_id = serializers.IntegerField()
    path = serializers.CharField()
    total = serializers.IntegerField()
    min_share = serializers.FloatField()
    slices = SliceSerializer(many=True)


# --- discovery ----------------------------------------------------------------------------


class DiscoveryRunOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    window_seconds = serializers.SerializerMethodField()
    window_end = serializers.DateTimeField(allow_null=True)
    q = serializers.FloatField()
    min_share = serializers.FloatField()
    min_n_eff = serializers.FloatField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    samples = serializers.IntegerField(help_text="Judged cheap-routed samples in the window")
    n_eff = serializers.FloatField()
    overall_regret = serializers.FloatField(allow_null=True)
    candidates = serializers.IntegerField(help_text="Distinct frequent slices and crosses")
    tested = serializers.IntegerField(help_text="Slices with enough effective samples to test")
    discoveries = serializers.IntegerField(help_text="Significant after Benjamini–Hochberg at q")

    def get_window_seconds(self, run) -> int:
        return int(run.window.total_seconds())


class IntervalSerializer(serializers.Serializer):
    estimate = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()


class DiscoveryOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True, help_text="1 = most impact; null when not significant")
    rule = serializers.CharField(help_text="A segment rule selecting the slice")
    kind = serializers.CharField(help_text="single or cross (two-way)")
    traffic_share = serializers.FloatField()
    regret = serializers.SerializerMethodField()
    complement_regret = serializers.FloatField()
    excess_regret = serializers.FloatField()
    impact = serializers.FloatField(help_text="traffic_share × excess_regret")
    p_value = serializers.FloatField()
    adjusted_p_value = serializers.FloatField()
    significant = serializers.BooleanField()
    explained_by = serializers.CharField(help_text="A smaller discovery that accounts for this one, if any")
    n = serializers.IntegerField()
    n_eff = serializers.FloatField()
    promoted_segment = serializers.SerializerMethodField()

    def get_regret(self, finding) -> dict:
        return {"estimate": finding.regret, "low": finding.regret_low, "high": finding.regret_high}

    def get_promoted_segment(self, finding) -> str | None:
        return finding.promoted_segment.slug if finding.promoted_segment_id and finding.promoted_segment else None


class DiscoveryListOutSerializer(serializers.Serializer):
    run = DiscoveryRunOutSerializer(allow_null=True)
    open_run = DiscoveryRunOutSerializer(allow_null=True)
    findings = DiscoveryOutSerializer(many=True)


class DiscoveryRunInSerializer(RejectUnknownFields, serializers.Serializer):
    window = serializers.CharField(required=False, help_text="e.g. 24h, 7d (default 7d)")
    q = serializers.FloatField(required=False, min_value=0.0001, max_value=0.5)
    min_share = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    min_n_eff = serializers.FloatField(required=False, min_value=1.0, max_value=1_000_000)


class DiscoveryPromoteInSerializer(RejectUnknownFields, serializers.Serializer):
    slug = serializers.SlugField(max_length=64, required=False)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


# --- eval sets ------------------------------------------------------------------------------


class EvalSetOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    format = serializers.CharField()
    filename = serializers.CharField()
    created_at = serializers.DateTimeField()
    items = serializers.IntegerField(source="items_count")
    rejected = serializers.IntegerField(source="rejected_count")
    offline_accuracy = serializers.FloatField(allow_null=True)
    errors = serializers.ListField(child=serializers.CharField(), help_text="The first line-numbered errors")


class CategorySerializer(serializers.Serializer):
    value = serializers.CharField()
    eval_count = serializers.IntegerField()
    eval_share = serializers.FloatField()
    eval_accuracy = serializers.FloatField(allow_null=True)
    traffic_count = serializers.IntegerField()
    traffic_share = serializers.FloatField()
    psi_term = serializers.FloatField()
    under_covered = serializers.BooleanField()


class ReweightedSerializer(serializers.Serializer):
    estimate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField()
    high = serializers.FloatField()
    covered_share = serializers.FloatField()
    uncovered = serializers.DictField(child=serializers.FloatField())


class DimensionComparisonSerializer(serializers.Serializer):
    path = serializers.CharField()
    psi = serializers.FloatField(allow_null=True)
    psi_level = serializers.CharField(allow_null=True)
    reweighted_accuracy = ReweightedSerializer(source="reweighted", allow_null=True)
    under_covered = serializers.ListField(child=serializers.CharField())
    categories = CategorySerializer(many=True)


class SegmentComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    rule = serializers.CharField()
    evaluable = serializers.BooleanField(help_text="False when the rule names decision fields eval items lack")
    traffic_count = serializers.IntegerField()
    traffic_share = serializers.FloatField()
    eval_count = serializers.IntegerField(allow_null=True)
    eval_share = serializers.FloatField(allow_null=True)
    eval_accuracy = serializers.FloatField(allow_null=True)
    under_covered = serializers.BooleanField()


class EvalSetComparisonSerializer(serializers.Serializer):
    eval_set_id = serializers.IntegerField()
    window_seconds = serializers.SerializerMethodField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    eval_items = serializers.IntegerField()
    traffic_decisions = serializers.IntegerField()
    offline_accuracy = serializers.FloatField(allow_null=True)
    headline = serializers.CharField()
    headline_dimension = serializers.CharField(allow_null=True)
    dimensions = DimensionComparisonSerializer(many=True)
    segments = SegmentComparisonSerializer(many=True)

    def get_window_seconds(self, comparison) -> int:
        return int(comparison.window.total_seconds())
