"""Writes on router versions and rollouts. Every transition writes one AuditEvent in the
same transaction, and every rollout transition locks the rollout row first, so two
people clicking at once serialise instead of both acting on stale state.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone
from rest_framework import exceptions

from router_ops.api.errors import Conflict
from router_ops.applications.models import Application
from router_ops.rollouts import gates
from router_ops.rollouts.actors import (
    ACTION_ADVANCE,
    ACTION_APPROVE,
    ACTION_PAUSE,
    ACTION_REJECT,
    ACTION_REQUEST,
    ACTION_RESUME,
    ACTION_ROLLBACK,
    Actor,
)
from router_ops.rollouts.models import Approval, AuditEvent, Rollout, RolloutStage, RouterVersion
from router_ops.rollouts.plans import PlanError, plan_build

logger = logging.getLogger(__name__)


class DetailedConflict(Conflict):
    """A 409 whose details keep their JSON types (DRF would turn numbers into strings)."""

    def __init__(self, details: dict):
        super().__init__()
        self.detail = details

    def get_codes(self):
        return self.default_code


class RequirementsUnmet(DetailedConflict):
    default_detail = "The current stage's requirements do not hold yet; see details."
    default_code = "requirements_unmet"


class StaleEvidence(DetailedConflict):
    default_detail = "The evidence changed since you looked (gate verdicts differ): review it and approve again."
    default_code = "stale_evidence"


def _conflict(message: str, code: str) -> Conflict:
    return Conflict(message, code=code)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise exceptions.ValidationError({"reason": ["Give a reason: it is kept in the audit log."]})
    return reason


def audit_record(
    *,
    application: Application,
    actor: Actor,
    action: str,
    rollout: Rollout | None = None,
    subject: str = "",
    reason: str = "",
    evidence: dict | None = None,
) -> AuditEvent:
    evidence = evidence or {}
    return AuditEvent.objects.create(
        application=application,
        rollout=rollout,
        subject=subject,
        actor_user=actor.user,
        actor_key=actor.api_key,
        actor_label=actor.label,
        action=action,
        reason=reason,
        evidence=evidence,
        evidence_hash=evidence.get("hash", ""),
    )


# ---------------------------------------------------------------- router versions

# Status changes a person may make directly. `canary` and `active` are set by rollouts
# only (and `active` once by router_version_activate_initial, when nothing is active).
MANUAL_TRANSITIONS = {
    RouterVersion.STATUS_DRAFT: {RouterVersion.STATUS_SHADOW, RouterVersion.STATUS_RETIRED},
    RouterVersion.STATUS_SHADOW: {RouterVersion.STATUS_DRAFT, RouterVersion.STATUS_RETIRED},
    RouterVersion.STATUS_RETIRED: {RouterVersion.STATUS_DRAFT},
}


def _version_subject(version: RouterVersion) -> str:
    return f"router_version:{version.name}"


def _in_flight_rollout_of(version: RouterVersion) -> Rollout | None:
    return (
        Rollout.objects.filter(status__in=Rollout.IN_FLIGHT).filter(Q(candidate=version) | Q(baseline=version)).first()
    )


@transaction.atomic
def router_version_create(
    *,
    application: Application,
    actor: Actor,
    name: str,
    status: str = RouterVersion.STATUS_DRAFT,
    config=None,
    notes="",
) -> RouterVersion:
    if status not in (RouterVersion.STATUS_DRAFT, RouterVersion.STATUS_SHADOW):
        raise exceptions.ValidationError(
            {"status": ['A new version is "draft" or "shadow"; it becomes canary and active through a rollout.']}
        )
    try:
        with transaction.atomic():
            version = RouterVersion.objects.create(
                application=application, name=name, status=status, config=config or {}, notes=notes
            )
    except IntegrityError:
        raise _conflict(f"A router version named {name!r} already exists.", "duplicate_name") from None
    audit_record(
        application=application,
        actor=actor,
        action="version_create",
        subject=_version_subject(version),
        evidence={"status": status, "config": version.config},
    )
    return version


@transaction.atomic
def router_version_update(*, version: RouterVersion, actor: Actor, **fields) -> RouterVersion:
    """Edit notes always; name and config while draft/shadow/retired; status per MANUAL_TRANSITIONS.

    A live version's name and config are what its evidence was gathered on: changing
    them would make the evidence describe a different router.
    """
    version = RouterVersion.objects.select_for_update().get(pk=version.pk)
    changes: dict = {}
    live = version.status in (RouterVersion.STATUS_CANARY, RouterVersion.STATUS_ACTIVE)
    for field in ("name", "config"):
        if field in fields and fields[field] != getattr(version, field):
            if live:
                raise _conflict(
                    f"The {field} of a {version.status} version cannot change: register a new version instead.",
                    "version_live",
                )
            changes[field] = fields[field]
    if "notes" in fields and fields["notes"] != version.notes:
        changes["notes"] = fields["notes"]
    if "status" in fields and fields["status"] != version.status:
        new = fields["status"]
        if new not in MANUAL_TRANSITIONS.get(version.status, set()):
            raise _conflict(
                f"A {version.status} version cannot be set to {new} directly: "
                + ("start a rollout to make it canary and active." if new in ("canary", "active") else "")
                + (" End its rollout first." if live else ""),
                "invalid_transition",
            )
        if _in_flight_rollout_of(version) is not None:
            raise _conflict("This version is part of a rollout in flight; end the rollout first.", "in_rollout")
        changes["status"] = new
    if not changes:
        return version
    before = {field: getattr(version, field) for field in changes}
    for field, value in changes.items():
        setattr(version, field, value)
    try:
        with transaction.atomic():
            version.save(update_fields=list(changes))
    except IntegrityError:
        raise _conflict(f"A router version named {changes.get('name')!r} already exists.", "duplicate_name") from None
    audit_record(
        application=version.application,
        actor=actor,
        action="version_update",
        subject=_version_subject(version),
        reason=fields.get("reason", ""),
        evidence={"before": before, "after": changes},
    )
    return version


@transaction.atomic
def router_version_delete(*, version: RouterVersion, actor: Actor) -> None:
    """Only versions nothing depends on: not active or canary, never in a rollout, no decisions."""
    version = RouterVersion.objects.select_for_update().get(pk=version.pk)
    if version.status in (RouterVersion.STATUS_ACTIVE, RouterVersion.STATUS_CANARY):
        raise _conflict(
            f"A {version.status} version cannot be deleted: roll out its successor (or roll back) first.",
            "version_live",
        )
    subject, application = _version_subject(version), version.application
    try:
        with transaction.atomic():
            version.delete()
    except ProtectedError:
        raise _conflict(
            "This version is referenced by decisions or rollouts; retire it instead (status: retired).",
            "version_referenced",
        ) from None
    audit_record(application=application, actor=actor, action="version_delete", subject=subject)


@transaction.atomic
def router_version_activate_initial(*, version: RouterVersion, actor: Actor, reason: str) -> RouterVersion:
    """Make the application's first active version. Afterwards, only rollouts activate.

    There is nothing to compare the first version with, so no gate applies; once a
    version is active every change of the active version goes through a rollout.
    """
    reason = _require_reason(reason)
    version = RouterVersion.objects.select_for_update().get(pk=version.pk)
    active = RouterVersion.objects.filter(application_id=version.application_id, status=RouterVersion.STATUS_ACTIVE)
    if active.exists():
        raise _conflict(
            f"{version.application.slug} already has an active version ({active.first().name}): "
            "request a rollout to replace it.",
            "active_exists",
        )
    if version.status not in (RouterVersion.STATUS_DRAFT, RouterVersion.STATUS_SHADOW):
        raise _conflict(f"A {version.status} version cannot be activated.", "invalid_transition")
    before = version.status
    version.status = RouterVersion.STATUS_ACTIVE
    try:
        with transaction.atomic():
            version.save(update_fields=["status"])
    except IntegrityError:  # a concurrent activation won the partial unique index
        raise _conflict("Another version was activated at the same time.", "active_exists") from None
    audit_record(
        application=version.application,
        actor=actor,
        action="version_activate_initial",
        subject=_version_subject(version),
        reason=reason,
        evidence={"before": before, "after": RouterVersion.STATUS_ACTIVE},
    )
    return version


# ---------------------------------------------------------------- rollouts


def _locked(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_for_update().select_related("candidate", "baseline", "application").get(pk=rollout.pk)


def _stage(rollout: Rollout, order: int) -> RolloutStage | None:
    return RolloutStage.objects.filter(rollout=rollout, order=order).first()


def _pending_approval(stage: RolloutStage) -> Approval | None:
    return Approval.objects.filter(stage=stage, used_at__isnull=True, void_reason="").first()


@transaction.atomic
def rollout_request(
    *,
    application: Application,
    actor: Actor,
    candidate: RouterVersion,
    stages: list[dict] | None = None,
    reason: str = "",
    max_cost_ratio: float = 1.0,
) -> Rollout:
    """Request a rollout of `candidate` against the active version.

    1. The actor may request (operator, admin, or an admin-scoped key).
    2. The plan is validated (default: dark → 1 % → 5 % → 25 % → 50 % → 100 %).
    3. The candidate is a draft or shadow version of the application; an active
       baseline exists; no other rollout is in flight (a partial unique index
       settles races).
    4. The rollout waits for a different person's approval to start.
    """
    actor.require(application, ACTION_REQUEST)
    if candidate.application_id != application.id:
        raise exceptions.NotFound("No such router version.")
    try:
        plan = plan_build(stages)
    except PlanError as exc:
        raise exceptions.ValidationError({"stages": exc.errors}) from None
    if not (isinstance(max_cost_ratio, (int, float)) and not isinstance(max_cost_ratio, bool) and max_cost_ratio > 0):
        raise exceptions.ValidationError({"max_cost_ratio": ["Must be a positive number."]})
    candidate = RouterVersion.objects.select_for_update().get(pk=candidate.pk)
    if candidate.status not in (RouterVersion.STATUS_DRAFT, RouterVersion.STATUS_SHADOW):
        raise _conflict(
            f"Only a draft or shadow version can be rolled out; {candidate.name} is {candidate.status}.",
            "invalid_candidate",
        )
    baseline = RouterVersion.objects.filter(application=application, status=RouterVersion.STATUS_ACTIVE).first()
    if baseline is None:
        raise _conflict(
            "There is no active version to compare against: activate the first version "
            "(POST /api/v1/router-versions/{id}/activate/) before rolling out another.",
            "no_baseline",
        )
    in_flight = Rollout.objects.filter(application=application, status__in=Rollout.IN_FLIGHT).first()
    if in_flight is not None:
        raise _conflict(
            f"Rollout {in_flight.pk} ({in_flight.candidate.name}) is still {in_flight.status}; "
            "finish or roll it back first.",
            "rollout_in_flight",
        )
    try:
        with transaction.atomic():
            rollout = Rollout.objects.create(
                application=application,
                candidate=candidate,
                baseline=baseline,
                reason=reason.strip(),
                max_cost_ratio=float(max_cost_ratio),
                created_by=actor.user,
                created_by_key=actor.api_key,
            )
    except IntegrityError:
        raise _conflict("Another rollout was requested at the same time.", "rollout_in_flight") from None
    RolloutStage.objects.bulk_create(
        [
            RolloutStage(
                rollout=rollout,
                order=order,
                name=s["name"],
                weight_bp=s["weight_bp"],
                min_duration=timedelta(seconds=s["min_duration_s"]),
                min_judged_per_segment=s["min_judged_per_segment"],
                margin=float(s["margin"]),
                alpha=float(s["alpha"]),
                advance=s["advance"],
            )
            for order, s in enumerate(plan)
        ]
    )
    evidence = gates.rollout_gate_evidence(rollout)
    _remember(rollout, evidence)
    audit_record(
        application=application,
        actor=actor,
        action="request",
        rollout=rollout,
        reason=rollout.reason,
        evidence=evidence,
    )
    return rollout


def _remember(rollout: Rollout, evidence: dict) -> None:
    rollout.evidence = evidence
    rollout.evidence_hash = evidence["hash"]
    rollout.save(update_fields=["evidence", "evidence_hash", "status", "current_stage", "ended_at", "updated_at"])


def _start(rollout: Rollout, approval: Approval, now: datetime) -> None:
    first = approval.stage
    first.started_at = now
    first.save(update_fields=["started_at"])
    approval.used_at = now
    approval.save(update_fields=["used_at"])
    RouterVersion.objects.filter(pk=rollout.candidate_id).update(status=RouterVersion.STATUS_CANARY)
    rollout.candidate.status = RouterVersion.STATUS_CANARY
    rollout.status = Rollout.STATUS_RUNNING
    rollout.current_stage = first.order


def rollout_approve(*, rollout: Rollout, actor: Actor, evidence_hash: str, reason: str = "", now=None) -> Approval:
    """Approve entering the next stage (for a requested rollout: starting it).

    1. Only a person with the approver (or admin) role, who is not the requester
       (nor the creator of the key that requested it): four-eyes.
    2. The approval is bound to the evidence the approver saw: `evidence_hash`
       must equal the current evidence's hash, or the approval is refused (409
       stale_evidence) and the approver looks again.
    3. A requested rollout starts at once (its first stage runs). A running one
       advances as soon as the stage's other requirements hold — now, if they do.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rollout = _locked(rollout)
        actor.require(rollout.application, ACTION_APPROVE)
        if not actor.is_person:
            raise exceptions.PermissionDenied("Approvals must come from a person.", code="person_required")
        requesters = {rollout.created_by_id} if rollout.created_by_id else set()
        if rollout.created_by_key_id and rollout.created_by_key.created_by_id:
            requesters.add(rollout.created_by_key.created_by_id)
        if actor.user.pk in requesters:
            raise exceptions.PermissionDenied(
                "Four-eyes: the person who requested a rollout cannot approve it; ask another approver.",
                code="four_eyes",
            )
        if rollout.status == Rollout.STATUS_REQUESTED:
            target = _stage(rollout, 0)
        elif rollout.status in Rollout.LIVE:
            target = _stage(rollout, rollout.current_stage + 1)
            if target is None:
                raise _conflict(
                    "This is the last stage: nothing is left to approve; the rollout completes after its soak.",
                    "nothing_to_approve",
                )
            if target.advance != RolloutStage.ADVANCE_MANUAL:
                raise _conflict(
                    f"Stage {target.name} is entered automatically when the gates pass; it needs no approval.",
                    "approval_not_needed",
                )
        else:
            raise _conflict(f"A {rollout.status} rollout cannot be approved.", "rollout_ended")
        evidence = gates.rollout_gate_evidence(rollout)
        if (evidence_hash or "").strip() != evidence["hash"]:
            raise StaleEvidence({"current_evidence_hash": evidence["hash"], "sent_evidence_hash": evidence_hash})
        if _pending_approval(target) is not None:
            raise _conflict(f"Entering {target.name} is already approved and waits for its gates.", "already_approved")
        approval = Approval.objects.create(
            rollout=rollout, stage=target, approver=actor.user, evidence_hash=evidence["hash"], reason=reason.strip()
        )
        if rollout.status == Rollout.STATUS_REQUESTED:
            _start(rollout, approval, now)
            # The audit row keeps the evidence the approver saw; the rollout remembers the new stage's.
            audit_record(
                application=rollout.application,
                actor=actor,
                action="approve",
                rollout=rollout,
                reason=approval.reason,
                evidence={**evidence, "started_stage": target.name},
            )
            _remember(rollout, gates.rollout_gate_evidence(rollout))
            return approval
        audit_record(
            application=rollout.application,
            actor=actor,
            action="approve",
            rollout=rollout,
            reason=approval.reason,
            evidence={**evidence, "approved_stage": target.name},
        )
        if rollout.status == Rollout.STATUS_RUNNING:
            _advance_locked(rollout, actor, now, reason="")
    return approval


def _advance_locked(rollout: Rollout, actor: Actor, now: datetime, *, reason: str) -> list[dict]:
    """Advance if every requirement holds; else void stale approvals and return what is unmet."""
    stage = _stage(rollout, rollout.current_stage)
    following = _stage(rollout, rollout.current_stage + 1)
    evidence = gates.rollout_gate_evidence(rollout)
    unmet: list[dict] = []
    ready_at = stage.started_at + stage.min_duration
    if now < ready_at:
        unmet.append(
            {
                "requirement": "min_duration",
                "message": f"Stage {stage.name} runs until {ready_at.isoformat()}.",
                "remaining_s": int((ready_at - now).total_seconds()),
            }
        )
    if stage.weight_bp < 10000 and evidence["overall"] != gates.PASS:
        unmet.append(
            {
                "requirement": "gates",
                "message": f"Gates are {evidence['overall']}.",
                "failing": evidence["failing_segments"],
            }
        )
    if stage.weight_bp >= 10000 and evidence["overall"] == gates.FAIL:
        unmet.append({"requirement": "gates", "message": "A gate fails.", "failing": evidence["failing_segments"]})
    approval = None
    if following is not None and following.advance == RolloutStage.ADVANCE_MANUAL:
        approval = _pending_approval(following)
        if approval is not None and approval.evidence_hash != evidence["hash"]:
            approval.void_reason = "The gate verdicts changed after the approval; approve the new evidence."
            approval.save(update_fields=["void_reason"])
            audit_record(
                application=rollout.application,
                actor=actor,
                action="approval_void",
                rollout=rollout,
                reason=approval.void_reason,
                evidence=evidence,
            )
            approval = None
        if approval is None:
            unmet.append(
                {"requirement": "approval", "message": f"Entering {following.name} needs an approver's approval."}
            )
    if unmet:
        return unmet
    stage.ended_at = now
    stage.verdict = evidence["overall"] if evidence["overall"] in (gates.PASS, gates.FAIL) else ""
    stage.save(update_fields=["ended_at", "verdict"])
    if following is None:
        _complete(rollout, now)
        action = "complete"
    else:
        following.started_at = now
        following.save(update_fields=["started_at"])
        if approval is not None:
            approval.used_at = now
            approval.save(update_fields=["used_at"])
        rollout.current_stage = following.order
        action = "advance"
    audit_record(
        application=rollout.application,
        actor=actor,
        action=action,
        rollout=rollout,
        reason=reason,
        evidence={**evidence, "entered_stage": following.name if following else None},
    )
    _remember(rollout, gates.rollout_gate_evidence(rollout) if following else evidence)
    return []


def _complete(rollout: Rollout, now: datetime) -> None:
    # Retire first: the partial unique index allows one active version at a time.
    RouterVersion.objects.filter(pk=rollout.baseline_id).update(status=RouterVersion.STATUS_RETIRED)
    RouterVersion.objects.filter(pk=rollout.candidate_id).update(status=RouterVersion.STATUS_ACTIVE)
    rollout.status = Rollout.STATUS_COMPLETED
    rollout.ended_at = now


def rollout_advance(*, rollout: Rollout, actor: Actor, reason: str = "", now=None) -> Rollout:
    """Move to the next stage (or complete after the last) when its requirements hold.

    1. The stage ran for its minimum duration.
    2. Its gates pass (at 100 %, where no baseline traffic is left, they must not fail).
    3. If the next stage is manual, an unused approval bound to the current evidence
       exists; an approval whose evidence no longer matches is voided (and audited).
    Unmet requirements answer 409 with the list; voids made on the way are kept.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rollout = _locked(rollout)
        actor.require(rollout.application, ACTION_ADVANCE)
        if rollout.status == Rollout.STATUS_REQUESTED:
            raise _conflict("The rollout waits for its approval before it starts.", "not_started")
        if rollout.status == Rollout.STATUS_PAUSED:
            raise _conflict("The rollout is paused; resume it first.", "paused")
        if rollout.status != Rollout.STATUS_RUNNING:
            raise _conflict(f"A {rollout.status} rollout cannot advance.", "rollout_ended")
        unmet = _advance_locked(rollout, actor, now, reason=(reason or "").strip())
    if unmet:
        raise RequirementsUnmet({"unmet": unmet})
    return rollout


def _pause_flip(rollout: Rollout, actor: Actor, reason: str, *, action: str, permission, source: str, target: str):
    """Pause and resume: lock, check the role and the state, flip the status, audit with fresh evidence."""
    reason = _require_reason(reason)
    rollout = _locked(rollout)
    actor.require(rollout.application, permission)
    if rollout.status != source:
        raise _conflict(
            f"Only a {source} rollout can be {action}d; this one is {rollout.status}.", "invalid_transition"
        )
    rollout.status = target
    evidence = gates.rollout_gate_evidence(rollout)
    _remember(rollout, evidence)
    audit_record(
        application=rollout.application, actor=actor, action=action, rollout=rollout, reason=reason, evidence=evidence
    )
    return rollout


@transaction.atomic
def rollout_pause(*, rollout: Rollout, actor: Actor, reason: str) -> Rollout:
    """Freeze the rollout: the current weights keep being served, nothing advances."""
    return _pause_flip(
        rollout, actor, reason, action="pause", permission=ACTION_PAUSE,
        source=Rollout.STATUS_RUNNING, target=Rollout.STATUS_PAUSED,
    )  # fmt: skip


@transaction.atomic
def rollout_resume(*, rollout: Rollout, actor: Actor, reason: str) -> Rollout:
    return _pause_flip(
        rollout, actor, reason, action="resume", permission=ACTION_RESUME,
        source=Rollout.STATUS_PAUSED, target=Rollout.STATUS_RUNNING,
    )  # fmt: skip


def _end(rollout: Rollout, *, status: str, retire_candidate: bool, now: datetime) -> None:
    stage = _stage(rollout, rollout.current_stage)
    if stage is not None and stage.started_at is not None and stage.ended_at is None:
        stage.ended_at = now
        stage.save(update_fields=["ended_at"])
    Approval.objects.filter(rollout=rollout, used_at__isnull=True, void_reason="").update(
        void_reason=f"The rollout was {status.replace('_', ' ')}."
    )
    # The candidate stops being served (weight 0) and shadowed: back to draft, or retired.
    new_status = RouterVersion.STATUS_RETIRED if retire_candidate else RouterVersion.STATUS_DRAFT
    RouterVersion.objects.filter(pk=rollout.candidate_id).update(status=new_status)
    rollout.candidate.status = new_status
    rollout.status = status
    rollout.ended_at = now


def _terminate_locked(*, rollout, actor, reason, retire_candidate, action, status, now, evidence=None) -> None:
    evidence = evidence or gates.rollout_gate_evidence(rollout)
    _end(rollout, status=status, retire_candidate=retire_candidate, now=now or timezone.now())
    _remember(rollout, evidence)
    audit_record(
        application=rollout.application,
        actor=actor,
        action=action,
        rollout=rollout,
        reason=reason,
        evidence={**evidence, "candidate_status": rollout.candidate.status},
    )


def _terminate(*, rollout, actor, reason, retire_candidate, action, status, now) -> Rollout:
    reason = _require_reason(reason)
    with transaction.atomic():
        rollout = _locked(rollout)
        actor.require(rollout.application, action)
        if not rollout.is_in_flight:
            raise _conflict(f"The rollout already ended ({rollout.status}).", "rollout_ended")
        _terminate_locked(
            rollout=rollout,
            actor=actor,
            reason=reason,
            retire_candidate=retire_candidate,
            action=action,
            status=status,
            now=now,
        )
    return rollout


def rollout_reject(*, rollout: Rollout, actor: Actor, reason: str, retire_candidate: bool = False, now=None) -> Rollout:
    """An approver declines the request or the next stage: the rollout ends, the candidate is unserved."""
    return _terminate(
        rollout=rollout,
        actor=actor,
        reason=reason,
        retire_candidate=retire_candidate,
        action=ACTION_REJECT,
        status=Rollout.STATUS_REJECTED,
        now=now,
    )


def rollout_rollback(
    *, rollout: Rollout, actor: Actor, reason: str, retire_candidate: bool = False, now=None
) -> Rollout:
    """Stop serving the candidate at once (weight 0); it returns to draft, or retired if asked."""
    return _terminate(
        rollout=rollout,
        actor=actor,
        reason=reason,
        retire_candidate=retire_candidate,
        action=ACTION_ROLLBACK,
        status=Rollout.STATUS_ROLLED_BACK,
        now=now,
    )


# ---------------------------------------------------------------- the periodic gate sweep

SWEEP_BATCH = 100
SWEEP_ROLLED_BACK = "rolled_back"
SWEEP_PAUSED = "paused"
SWEEP_ADVANCED = "advanced"
SWEEP_COMPLETED = "completed"
SWEEP_WAITING = "waiting"
SWEEP_SKIPPED = "skipped"


def rollout_alert(*, rollout: Rollout, kind: str, message: str, evidence: dict) -> None:
    """Tell people a rollout was stopped by the system: a WARNING log line and an audit row.

    The alerts app (router_ops/alerts) delivers it further when it has a sender: it
    can read `action="alert"` audit rows, or replace this hook's body with its send call.
    """
    logger.warning("rollout %s of %s: %s: %s", rollout.pk, rollout.application.slug, kind, message)
    audit_record(
        application=rollout.application,
        actor=Actor.system(),
        action="alert",
        rollout=rollout,
        reason=message,
        evidence={"kind": kind, "failing_segments": evidence.get("failing_segments", []), "hash": evidence["hash"]},
    )


def _quality_failures(evidence: dict) -> list[str]:
    """Segments whose gate fails clearly: the candidate is worse beyond the margin.

    The cost guardrail compares point estimates (no bound yet), so a candidate that
    costs the same as the baseline reads above 1.0 half the time: its failure blocks
    advancing (overall = fail) but is not "clear" enough to roll back automatically.
    """
    return [s["segment"] for s in evidence["segments"] if s["verdict"] == gates.FAIL]


def rollout_sweep_one(*, rollout_id: int, now: datetime | None = None) -> str:
    """Re-check one running rollout's gates and act on them as the system actor.

    1. Claim the row (FOR UPDATE SKIP LOCKED): a rollout someone is acting on right
       now is left to the next sweep; a second delivery of the task is harmless.
    2. A segment's gate fails clearly → roll back at once, naming
       the failing segments in the reason and the audit evidence, and alert.
    3. A sample-ratio mismatch → pause and alert: assignment is broken, so the
       evidence cannot be trusted either way; a person decides.
    4. Otherwise advance when the stage's requirements hold and the next stage is
       automatic, or manual with a pending approval, or this is the last stage
       (its soak done, the rollout completes).
    """
    now = now or timezone.now()
    system = Actor.system()
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("candidate", "baseline", "application")
            .filter(pk=rollout_id, status=Rollout.STATUS_RUNNING)
            .first()
        )
        if rollout is None:
            return SWEEP_SKIPPED
        evidence = gates.rollout_gate_evidence(rollout)
        failing = _quality_failures(evidence)
        stage = _stage(rollout, rollout.current_stage)
        if failing:
            reason = (
                f"Automatic rollback at stage {stage.name}: the gate fails clearly in {', '.join(failing)} "
                f"(candidate worse than {rollout.baseline.name} beyond the margin δ = {stage.margin})."
            )
            _terminate_locked(
                rollout=rollout,
                actor=system,
                reason=reason,
                retire_candidate=False,
                action=ACTION_ROLLBACK,
                status=Rollout.STATUS_ROLLED_BACK,
                now=now,
                evidence=evidence,
            )
            stage.verdict = gates.FAIL
            stage.save(update_fields=["verdict"])
            rollout_alert(rollout=rollout, kind="automatic_rollback", message=reason, evidence=evidence)
            return SWEEP_ROLLED_BACK
        if evidence["guardrails"].get("srm", {}).get("verdict") == gates.FAIL:
            srm = evidence["guardrails"]["srm"]
            reason = (
                f"Paused at stage {stage.name}: sample-ratio mismatch (p = {srm['p_value']} < {srm['threshold']}; "
                f"{srm['assigned_candidate']} candidate vs {srm['assigned_baseline']} baseline units for an "
                f"expected share of {srm['expected_share']}). Check assignment before resuming."
            )
            rollout.status = Rollout.STATUS_PAUSED
            paused = gates.rollout_gate_evidence(rollout)
            _remember(rollout, paused)
            audit_record(
                application=rollout.application,
                actor=system,
                action=ACTION_PAUSE,
                rollout=rollout,
                reason=reason,
                evidence=evidence,
            )
            rollout_alert(rollout=rollout, kind="sample_ratio_mismatch", message=reason, evidence=evidence)
            return SWEEP_PAUSED
        following = _stage(rollout, rollout.current_stage + 1)
        ready = (
            following is None
            or following.advance == RolloutStage.ADVANCE_AUTO
            or _pending_approval(following) is not None
        )
        if not ready:
            if evidence["hash"] != rollout.evidence_hash:
                _remember(rollout, evidence)  # the page shows what an approver would approve
            return SWEEP_WAITING
        unmet = _advance_locked(rollout, system, now, reason="Gates pass: advanced by the gate sweep.")
        if unmet:
            if evidence["hash"] != rollout.evidence_hash:
                _remember(rollout, evidence)
            return SWEEP_WAITING
        return SWEEP_COMPLETED if following is None else SWEEP_ADVANCED


def rollouts_sweep(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> dict[int, str]:
    """Sweep running rollouts (oldest first, at most `limit`): {rollout id: outcome}."""
    ids = list(
        Rollout.objects.filter(status=Rollout.STATUS_RUNNING)
        .order_by("updated_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    return {rollout_id: rollout_sweep_one(rollout_id=rollout_id, now=now) for rollout_id in ids}
