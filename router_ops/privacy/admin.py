from django.contrib import admin

from router_ops.privacy.models import PrivacySettings


@admin.register(PrivacySettings)
class PrivacySettingsAdmin(admin.ModelAdmin):
    list_display = ("application", "store_text", "retention_days", "text_purged_before", "updated_at")
    readonly_fields = ("text_purged_before", "updated_at")
