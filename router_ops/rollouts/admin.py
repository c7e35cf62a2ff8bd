from django.contrib import admin

from router_ops.rollouts.models import RouterVersion


@admin.register(RouterVersion)
class RouterVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "application", "status", "created_at"]
    list_filter = ["application", "status"]
    search_fields = ["name", "notes"]
    readonly_fields = ["created_at"]
