from django.contrib import admin

from router_ops.review.models import ReviewItem, ReviewLabel


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["id", "application", "sample", "stratum", "primary_is_a", "created_at"]
    list_filter = ["application"]
    raw_id_fields = ["sample"]


@admin.register(ReviewLabel)
class ReviewLabelAdmin(admin.ModelAdmin):
    list_display = ["item", "reviewer", "choice", "verdict", "created_at"]
    list_filter = ["verdict"]

    def has_change_permission(self, request, obj=None):
        return False  # a label is a record of what a person said
