"""Decisions and feedback are history: viewable and searchable, never edited by hand."""

from django.contrib import admin

from router_ops.ingest.models import Decision, Feedback


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["decision_id", "application", "occurred_at", "router_version", "routed_to", "router_score", "model"]
    list_filter = ["application", "routed_to", "router_version"]
    search_fields = ["decision_id", "unit_id"]
    date_hierarchy = "occurred_at"
    list_select_related = ["application", "router_version"]
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is too slow


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ["decision_key", "application", "kind", "value", "occurred_at", "attached"]
    list_filter = ["application", "kind"]
    search_fields = ["decision_key", "feedback_id"]
    list_select_related = ["application"]

    @admin.display(boolean=True)
    def attached(self, obj):
        return obj.decision_id is not None
