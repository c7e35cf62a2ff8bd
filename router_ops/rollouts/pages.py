"""Server-rendered rollout pages: the list, the detail (timeline, gates, evidence) and the
action forms. Thin: the services decide who may do what (roles, four-eyes, stale
evidence), and their refusals are shown as messages."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from router_ops.rollouts import gates, selectors, services
from router_ops.rollouts.actors import (
    ACTION_APPROVE,
    ACTION_PAUSE,
    ACTION_REJECT,
    ACTION_RESUME,
    ACTION_ROLLBACK,
    Actor,
)
from router_ops.rollouts.models import Approval, Rollout, RolloutStage

ACTIONS = {
    ACTION_APPROVE: services.rollout_approve,
    ACTION_REJECT: services.rollout_reject,
    ACTION_PAUSE: services.rollout_pause,
    ACTION_RESUME: services.rollout_resume,
    ACTION_ROLLBACK: services.rollout_rollback,
}
PAST = {
    ACTION_APPROVE: "Approved",
    ACTION_REJECT: "Rejected",
    ACTION_PAUSE: "Paused",
    ACTION_RESUME: "Resumed",
    ACTION_ROLLBACK: "Rolled back",
}


def _application(request, slug: str):
    application = selectors.application_for_member(user=request.user, slug=slug)
    if application is None:
        raise Http404("No such application among yours.")
    return application


def _rollout(application, pk: int) -> Rollout:
    try:
        return selectors.rollout_get(application=application, pk=pk)
    except APIException:
        raise Http404("No such rollout.") from None


def _error_text(exc: APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        if "unmet" in detail:
            return "; ".join(item["message"] for item in detail["unmet"])
        if "current_evidence_hash" in detail:
            return str(exc.default_detail)
        return "; ".join(
            f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}" for field, msgs in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(map(str, detail))
    return str(detail)


def _available_actions(rollout: Rollout, stages: list[RolloutStage], actor: Actor) -> list[str]:
    """Buttons worth showing (the services still check everything)."""
    allowed = actor.allowed_actions(rollout.application)
    shown: list[str] = []
    if rollout.status == Rollout.STATUS_REQUESTED:
        shown = [ACTION_APPROVE, ACTION_REJECT]
    elif rollout.status in Rollout.LIVE:
        following = next((s for s in stages if s.order == rollout.current_stage + 1), None)
        pending = (
            following is not None
            and Approval.objects.filter(stage=following, used_at__isnull=True, void_reason="").exists()
        )
        if following is not None and following.advance == RolloutStage.ADVANCE_MANUAL and not pending:
            shown.append(ACTION_APPROVE)
        shown.append(ACTION_PAUSE if rollout.status == Rollout.STATUS_RUNNING else ACTION_RESUME)
        shown += [ACTION_REJECT, ACTION_ROLLBACK]
    return [a for a in shown if a in allowed]


@login_required
def rollouts_list(request, slug: str):
    application = _application(request, slug)
    rollouts = list(selectors.rollouts_list(application=application).prefetch_related("stages"))
    for rollout in rollouts:
        rollout.stage_now = next((s for s in rollout.stages.all() if s.order == rollout.current_stage), None)
    return render(request, "rollouts/list.html", {"application": application, "rollouts": rollouts})


@login_required
def rollout_detail(request, slug: str, pk: int):
    application = _application(request, slug)
    rollout = _rollout(application, pk)
    stages = selectors.rollout_stages(rollout=rollout)
    evidence = gates.rollout_gate_evidence(rollout)
    actor = Actor(user=request.user)
    for stage in stages:
        if rollout.status in Rollout.LIVE and stage.order == rollout.current_stage:
            stage.state = "current"
        elif stage.ended_at is not None or (stage.started_at is not None and stage.order < rollout.current_stage):
            stage.state = "done"
        else:
            stage.state = "pending"
        stage.approval = next((a for a in rollout.approvals.all() if a.stage_id == stage.pk and a.is_pending), None)
    context = {
        "application": application,
        "rollout": rollout,
        "stages": stages,
        "evidence": evidence,
        "evidence_json": json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False),
        "events": list(selectors.rollout_events(rollout=rollout).select_related("actor_user")),
        "actions": _available_actions(rollout, stages, actor),
        "role": actor.role(application),
    }
    return render(request, "rollouts/detail.html", context)


@login_required
@require_POST
def rollout_action(request, slug: str, pk: int, action: str):
    application = _application(request, slug)
    rollout = _rollout(application, pk)
    service = ACTIONS.get(action)
    if service is None:
        raise Http404("No such action.")
    actor = Actor(user=request.user)
    reason = request.POST.get("reason", "")
    kwargs = {"rollout": rollout, "actor": actor, "reason": reason}
    if action == ACTION_APPROVE:
        kwargs["evidence_hash"] = request.POST.get("evidence_hash", "")
        if not reason.strip():
            messages.error(request, "Give a reason: it is kept in the audit log.")
            return redirect("rollouts:detail", slug=application.slug, pk=rollout.pk)
    try:
        service(**kwargs)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    except APIException as exc:
        messages.error(request, f"{action.capitalize()} refused: {_error_text(exc)}")
    else:
        rollout.refresh_from_db()
        stage = RolloutStage.objects.filter(rollout=rollout, order=rollout.current_stage).first()
        where = f" Now {rollout.status}" + (f" at stage {stage.name}." if stage and rollout.is_in_flight else ".")
        messages.success(request, f"{PAST[action]}.{where}")
    return redirect("rollouts:detail", slug=application.slug, pk=rollout.pk)
