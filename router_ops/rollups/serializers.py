"""Documentation serializers for GET /api/v1/segments/stats (API.md)."""

from __future__ import annotations

from rest_framework import serializers


class RateSerializer(serializers.Serializer):
    estimate = serializers.FloatField(allow_null=True, help_text="Traffic-weighted (Hájek) estimate; null without data")
    low = serializers.FloatField(help_text="95 % interval, lower bound")
    high = serializers.FloatField(help_text="95 % interval, upper bound")
    n = serializers.IntegerField(help_text="Judged pairs the rate rests on")
    effective_n = serializers.FloatField(help_text="Design-effect-adjusted sample size")


class SegmentStatsEntrySerializer(serializers.Serializer):
    segment = serializers.CharField()
    name = serializers.CharField()
    traffic_share = serializers.FloatField()
    decisions = serializers.IntegerField()
    cheap_share = serializers.FloatField(allow_null=True)
    shadow_samples = serializers.IntegerField()
    judged = serializers.IntegerField()
    disagreement_rate = RateSerializer()
    regret_rate = RateSerializer()
    overspend_rate = RateSerializer()
    impact = serializers.FloatField(allow_null=True, help_text="traffic share × cheap share × regret")
    status = serializers.ChoiceField(choices=["ok", "watch", "alert", "insufficient_data"])
    status_reason = serializers.CharField()
    cost_usd = serializers.FloatField()
    savings_usd = serializers.FloatField(help_text="All-strong counterfactual cost minus actual cost")
    strong_cost_usd = serializers.FloatField()
    shadow_cost_usd = serializers.FloatField()
    feedback_negative = serializers.IntegerField()
    feedback_total = serializers.IntegerField()


class SegmentStatsSerializer(serializers.Serializer):
    window = serializers.CharField()
    router_version = serializers.CharField(allow_null=True)
    overall = SegmentStatsEntrySerializer()
    segments = SegmentStatsEntrySerializer(many=True)
