from django import forms
from django.contrib import admin, messages

from router_ops.applications.models import ApiKey, Application, Membership, ModelEndpoint
from router_ops.applications.services import api_key_create, api_key_revoke
from router_ops.applications.ssrf import base_url_check


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ModelEndpointInline(admin.TabularInline):
    model = ModelEndpoint
    extra = 0
    fields = [
        "name",
        "tier",
        "provider",
        "base_url",
        "model",
        "api_key_env",
        "input_price_per_mtok",
        "output_price_per_mtok",
    ]


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    inlines = [ModelEndpointInline, MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with the "create key" form below (the plaintext is shown once
    as a message) and revoked with an action; a key's hash is never editable."""

    list_display = ["masked", "application", "name", "scopes", "created_at", "revoked_at"]
    list_filter = ["application", "revoked_at"]
    search_fields = ["prefix", "name", "application__slug"]
    fields = ["application", "name", "scopes", "prefix", "created_at", "created_by", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="key")
    def masked(self, obj):
        return f"ro_{obj.prefix}_…"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["prefix", "created_at", "created_by", "revoked_at"]
        return self.fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        api_key, plaintext = api_key_create(
            application=obj.application, scopes=obj.scopes, name=obj.name, created_by=request.user
        )
        obj.pk = api_key.pk
        messages.warning(request, f"New API key (shown once, copy it now): {plaintext}")

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class ModelEndpointForm(forms.ModelForm):
    class Meta:
        model = ModelEndpoint
        fields = [
            "application",
            "name",
            "tier",
            "provider",
            "base_url",
            "model",
            "api_key_env",
            "input_price_per_mtok",
            "output_price_per_mtok",
            "timeout_s",
            "max_concurrency",
        ]

    def clean_base_url(self):
        value = self.cleaned_data["base_url"]
        try:
            base_url_check(value, resolve=False)  # the allowlist; DNS is checked at call time
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    form = ModelEndpointForm
    list_display = ["name", "application", "tier", "model", "base_url", "input_price_per_mtok", "output_price_per_mtok"]
    list_filter = ["application", "tier", "provider"]
    search_fields = ["name", "model"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "application", "role"]
    list_filter = ["application", "role"]
    search_fields = ["user__username", "application__slug"]
