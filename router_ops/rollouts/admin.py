"""Admin for router versions and rollouts. Rollout actions ask for a reason (and, to
approve, show the evidence whose hash the approval is bound to), then call the same
services as the API: roles and four-eyes hold here too. Audit events are read-only."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from rest_framework.exceptions import APIException

from router_ops.rollouts import gates, services
from router_ops.rollouts.actors import Actor
from router_ops.rollouts.models import Approval, AuditEvent, Rollout, RolloutStage, RouterVersion


@admin.register(RouterVersion)
class RouterVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "application", "status", "created_at"]
    list_filter = ["application", "status"]
    search_fields = ["name", "notes"]
    # Status changes go through services (rollouts, or the API's guarded transitions).
    readonly_fields = ["status", "created_at"]


class RolloutStageInline(admin.TabularInline):
    model = RolloutStage
    extra = 0
    can_delete = False
    readonly_fields = [
        "order",
        "name",
        "weight_bp",
        "min_duration",
        "min_judged_per_segment",
        "margin",
        "alpha",
        "advance",
        "started_at",
        "ended_at",
        "verdict",
    ]

    def has_add_permission(self, request, obj=None):
        return False


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    can_delete = False
    readonly_fields = ["stage", "approver", "evidence_hash", "reason", "created_at", "used_at", "void_reason"]

    def has_add_permission(self, request, obj=None):
        return False


# action name → (service, needs evidence hash, label)
ACTIONS = {
    "approve": (services.rollout_approve, True, "Approve the next stage"),
    "reject": (services.rollout_reject, False, "Reject"),
    "advance": (services.rollout_advance, False, "Advance when requirements hold"),
    "pause": (services.rollout_pause, False, "Pause"),
    "resume": (services.rollout_resume, False, "Resume"),
    "rollback": (services.rollout_rollback, False, "Roll back"),
}


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = ["id", "application", "candidate", "baseline", "status", "current_stage", "created_by", "created_at"]
    list_filter = ["application", "status"]
    readonly_fields = [
        "application",
        "candidate",
        "baseline",
        "status",
        "current_stage",
        "reason",
        "max_cost_ratio",
        "created_by",
        "created_by_key",
        "evidence_hash",
        "evidence",
        "created_at",
        "updated_at",
        "ended_at",
    ]
    inlines = [RolloutStageInline, ApprovalInline]
    actions = [f"action_{name}" for name in ACTIONS]

    def has_add_permission(self, request):
        return False  # requested through the API (or the rollout pages), which build and validate the plan

    def has_delete_permission(self, request, obj=None):
        return False  # history: the audit log points at it

    def _run(self, request, queryset, name):
        service, needs_hash, label = ACTIONS[name]
        if "confirm" not in request.POST:
            rows = [(rollout, gates.rollout_gate_evidence(rollout)) for rollout in queryset]
            return TemplateResponse(
                request,
                "admin/rollouts/confirm_action.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"{label}: confirm",
                    "action": f"action_{name}",
                    "label": label,
                    "needs_hash": needs_hash,
                    "rows": [(r, e, json.dumps(e, indent=2, sort_keys=True)) for r, e in rows],
                    "opts": self.model._meta,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        actor = Actor(user=request.user)
        reason = request.POST.get("reason", "")
        for rollout in queryset:
            kwargs = {"rollout": rollout, "actor": actor, "reason": reason}
            if needs_hash:
                kwargs["evidence_hash"] = request.POST.get(f"evidence_hash_{rollout.pk}", "")
            try:
                service(**kwargs)
            except APIException as exc:
                self.message_user(request, f"Rollout {rollout.pk}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Rollout {rollout.pk}: {label.lower()} done.", messages.SUCCESS)
        return None

    @admin.action(description="Approve the next stage (four-eyes; bound to the evidence shown)")
    def action_approve(self, request, queryset):
        return self._run(request, queryset, "approve")

    @admin.action(description="Reject (with a reason)")
    def action_reject(self, request, queryset):
        return self._run(request, queryset, "reject")

    @admin.action(description="Advance when requirements hold")
    def action_advance(self, request, queryset):
        return self._run(request, queryset, "advance")

    @admin.action(description="Pause (with a reason)")
    def action_pause(self, request, queryset):
        return self._run(request, queryset, "pause")

    @admin.action(description="Resume (with a reason)")
    def action_resume(self, request, queryset):
        return self._run(request, queryset, "resume")

    @admin.action(description="Roll back (with a reason)")
    def action_rollback(self, request, queryset):
        return self._run(request, queryset, "rollback")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "application", "rollout", "subject", "actor_label", "action", "reason"]
    list_filter = ["application", "action"]
    search_fields = ["actor_label", "reason", "subject"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
