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
    rule = serializers.CharField(max_length=dsl.MAX_RULE_LENGTH, trim_whitespace=False, help_text=dsl.__doc__.split("\n\n")[0])
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
