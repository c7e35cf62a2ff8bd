from django.contrib import admin

from router_ops.alerts.models import AlertEvent, AlertRule


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["application", "name", "window", "webhook_url", "active"]
    list_filter = ["active", "application"]


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["application", "segment_slug", "from_status", "to_status", "at", "delivered_ok"]
    list_filter = ["application", "to_status"]
    readonly_fields = [f.name for f in AlertEvent._meta.fields]

    def has_add_permission(self, request):
        return False
