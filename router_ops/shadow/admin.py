"""Admin for the shadow pipeline. Samples, runs and the ledger are history: read-only."""

from __future__ import annotations

from django.contrib import admin

from router_ops.shadow.models import BudgetDay, SamplingPolicy, SegmentDayCount, ShadowRun, ShadowSample


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the pipeline; editing them would corrupt estimates and spend."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SamplingPolicy)
class SamplingPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "application",
        "base_rate",
        "min_judged_per_segment",
        "divergence_rate",
        "reverse_rate",
        "daily_budget_usd",
        "updated_at",
    ]
    search_fields = ["application__slug"]
    list_select_related = ["application"]


@admin.register(ShadowSample)
class ShadowSampleAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "application",
        "decision",
        "direction",
        "reason",
        "inclusion_probability",
        "status",
        "judge_status",
        "verdict",
        "created_at",
    ]
    list_filter = ["status", "judge_status", "direction", "reason", "verdict", "application"]
    search_fields = ["decision__decision_id", "error", "judge_error"]
    list_select_related = ["application", "decision"]
    raw_id_fields = ["decision"]
    date_hierarchy = "created_at"


@admin.register(ShadowRun)
class ShadowRunAdmin(ReadOnlyAdmin):
    list_display = [
        "sample",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
        "attempts",
        "created_at",
    ]
    list_filter = ["model"]
    search_fields = ["sample__decision__decision_id", "model"]
    raw_id_fields = ["sample", "endpoint"]


@admin.register(BudgetDay)
class BudgetDayAdmin(ReadOnlyAdmin):
    list_display = ["application", "day", "shadow_spent_usd", "judge_spent_usd", "reserved_usd", "calls", "refused"]
    list_filter = ["application"]
    date_hierarchy = "day"


@admin.register(SegmentDayCount)
class SegmentDayCountAdmin(ReadOnlyAdmin):
    list_display = ["application", "day", "segment_id", "eligible", "sampled"]
    list_filter = ["application", "day"]
