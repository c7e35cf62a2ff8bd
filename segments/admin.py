"""Django admin for segments and dimensions. Writes go through the services."""

from __future__ import annotations

from django.contrib import admin, messages

from segments.models import Dimension, Segment
from segments.services import segment_backfill_request

BACKFILL_FIELDS = (
    "backfill_status", "backfill_progress", "backfill_processed", "backfill_total", "backfill_through_id",
    "backfill_upto_id", "backfill_started_at", "backfill_finished_at", "backfill_error",
)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("slug", "application", "name", "active", "backfill_status", "backfill_progress", "updated_at")
    list_filter = ("application", "active", "backfill_status")
    search_fields = ("slug", "name", "rule")
    list_select_related = ("application",)
    readonly_fields = ("created_at", "updated_at", *BACKFILL_FIELDS)
    fieldsets = (
        (None, {"fields": ("application", "slug", "name", "rule", "active", "created_at", "updated_at")}),
        ("Membership backfill", {"fields": BACKFILL_FIELDS}),
    )
    actions = ["rerun_backfill"]

    @admin.display(description="progress")
    def backfill_progress(self, segment: Segment) -> str:
        percent = segment.backfill_percent
        if percent is None:
            return "—"
        return f"{percent:.1f} % ({segment.backfill_processed:,} / {segment.backfill_total or 0:,})"

    def save_model(self, request, obj, form, change):
        # The form validated the rule (model field validator); a new segment, a new
        # rule or a reactivation needs its membership backfilled.
        super().save_model(request, obj, form, change)
        if not change or "rule" in form.changed_data or ("active" in form.changed_data and obj.active):
            segment_backfill_request(segment=obj)

    @admin.action(description="Re-run membership backfill")
    def rerun_backfill(self, request, queryset):
        count = 0
        for segment in queryset:
            segment_backfill_request(segment=segment)
            count += 1
        self.message_user(request, f"Backfill queued for {count} segment(s).", messages.SUCCESS)


@admin.register(Dimension)
class DimensionAdmin(admin.ModelAdmin):
    list_display = ("path", "application", "min_share", "bucket_edges", "active")
    list_filter = ("application", "active")
    search_fields = ("path",)
    list_select_related = ("application",)
