"""Admin for judges and judgments. Judgments and prompt versions are history: read-only."""

from __future__ import annotations

from django.contrib import admin

from router_ops.judging.models import Judge, JudgePrompt, Judgment


@admin.register(JudgePrompt)
class JudgePromptAdmin(admin.ModelAdmin):
    list_display = ["version", "created_at"]
    search_fields = ["version", "text"]

    def get_readonly_fields(self, request, obj=None):
        # A version cited by judgments must keep its text: add a new version instead.
        return ["version", "text"] if obj is not None else []


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    list_display = ["name", "application", "kind", "model", "prompt_version", "active"]
    list_filter = ["kind", "active", "application"]
    search_fields = ["name", "model"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "judge",
        "sample",
        "status",
        "verdict",
        "swap_consistent",
        "cost_usd",
        "latency_ms",
        "created_at",
    ]
    list_filter = ["status", "verdict", "swap_consistent", "judge_kind", "judge"]
    search_fields = ["sample__decision__decision_id", "rationale", "error"]
    raw_id_fields = ["sample"]
    list_select_related = ["judge", "sample"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
