"""The rollout workflow through the real services: every transition writes exactly
one audit row with who, why and the evidence hash, in the same transaction."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import PermissionDenied, ValidationError

from router_ops.api.errors import Conflict
from router_ops.rollouts.models import Approval, AuditEvent, Rollout, RouterVersion
from router_ops.rollouts.selectors import routing_config
from router_ops.rollouts.services import (
    RequirementsUnmet,
    rollout_advance,
    rollout_approve,
    rollout_pause,
    rollout_reject,
    rollout_request,
    rollout_resume,
    rollout_rollback,
)
from tests.rollouts.conftest import versions_status

pytestmark = pytest.mark.django_db


def _events(rollout) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(rollout=rollout).order_by("id").values_list("action", "actor_label"))


def _request(owner, people, versions, **kwargs):
    return rollout_request(
        application=owner.application, actor=people.actor("otto"), candidate=versions["v13"], reason="cheaper", **kwargs
    )


def _weights(owner):
    return [(v["router_version"], v["weight_bp"]) for v in routing_config(application=owner.application)["versions"]]


def _approve(rollout, people, who="anna", now=None):
    rollout.refresh_from_db()
    return rollout_approve(rollout=rollout, actor=people.actor(who), evidence_hash=rollout.evidence_hash, now=now)


def test_request_creates_the_default_plan_and_one_audit_row(owner, people, versions):
    rollout = _request(owner, people, versions)
    stages = list(rollout.stages.values_list("name", "weight_bp", "advance", "min_judged_per_segment"))
    assert stages == [
        ("dark", 0, "manual", 400),
        ("1%", 100, "manual", 200),
        ("5%", 500, "auto", 300),
        ("25%", 2500, "manual", 400),
        ("50%", 5000, "auto", 500),
        ("100%", 10000, "manual", 0),
    ]
    assert rollout.status == "requested" and rollout.baseline == versions["v12"]
    event = AuditEvent.objects.get(rollout=rollout)
    assert (event.action, event.actor_label, event.reason) == ("request", "otto", "cheaper")
    assert event.evidence_hash == rollout.evidence_hash and len(event.evidence_hash) == 64
    # A request changes no traffic.
    assert _weights(owner) == [("v12", 10000)]


def test_full_rollout_dark_to_100_with_manual_approvals(owner, people, versions, evidence, clock):
    evidence.passing()
    rollout = _request(owner, people, versions)
    _approve(rollout, people, now=clock.now)  # starts the dark stage
    rollout.refresh_from_db()
    assert (rollout.status, rollout.current_stage) == ("running", 0)
    assert versions_status(owner.application) == {"v12": "active", "v13": "canary"}
    config = routing_config(application=owner.application)
    assert config["versions"] == [{"router_version": "v12", "weight_bp": 10000}] and config["shadow_versions"] == [
        "v13"
    ]

    # 1 % is manual: the approval advances at once when the dark stage's requirements hold.
    clock.tick()
    with pytest.raises(RequirementsUnmet) as blocked:
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.now)
    assert [u["requirement"] for u in blocked.value.detail["unmet"]] == ["approval"]
    _approve(rollout, people, who="arne", now=clock.now)
    assert _weights(owner) == [("v13", 100), ("v12", 9900)]
    # 5 % is automatic once the minimum duration has passed and the gates pass.
    rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    assert _weights(owner) == [("v13", 500), ("v12", 9500)]
    _approve(rollout, people, now=clock.tick())  # 25 %
    rollout_advance(rollout=rollout, actor=people.actor("olga"), now=clock.tick())  # 50 %
    _approve(rollout, people, who="ada", now=clock.tick())  # 100 %: an admin who did not request it
    assert _weights(owner) == [("v13", 10000), ("v12", 0)]
    rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())  # soak done: complete

    rollout.refresh_from_db()
    assert rollout.status == "completed" and rollout.ended_at is not None
    assert versions_status(owner.application) == {"v12": "retired", "v13": "active"}
    assert _weights(owner) == [("v13", 10000)]
    assert _events(rollout) == [
        ("request", "otto"),
        ("approve", "anna"),
        ("approve", "arne"),
        ("advance", "arne"),
        ("advance", "otto"),
        ("approve", "anna"),
        ("advance", "anna"),
        ("advance", "olga"),
        ("approve", "ada"),
        ("advance", "ada"),
        ("complete", "otto"),
    ]
    assert all(e.evidence_hash for e in AuditEvent.objects.filter(rollout=rollout))
    assert Approval.objects.filter(rollout=rollout, used_at__isnull=False).count() == 4
    assert list(rollout.stages.values_list("verdict", flat=True)) == ["pass"] * 5 + ["pass"]


def test_advance_waits_for_the_minimum_duration(owner, people, versions, evidence, clock):
    evidence.passing()
    rollout = _request(owner, people, versions, stages=[{"weight_bp": 0}, {"weight_bp": 10000, "advance": "auto"}])
    _approve(rollout, people, now=clock.now)
    with pytest.raises(RequirementsUnmet) as blocked:
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick(hours=23))
    (unmet,) = blocked.value.detail["unmet"]
    assert unmet["requirement"] == "min_duration" and unmet["remaining_s"] == 3600
    assert _events(rollout) == [("request", "otto"), ("approve", "anna")]  # a refusal is no transition


def test_advance_refuses_while_gates_are_inconclusive_or_failing(owner, people, versions, evidence, clock):
    plan = [{"weight_bp": 0}, {"weight_bp": 100, "advance": "auto"}, {"weight_bp": 10000}]
    rollout = _request(owner, people, versions, stages=plan)
    _approve(rollout, people, now=clock.now)
    with pytest.raises(RequirementsUnmet) as blocked:  # no judged data at all
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    assert blocked.value.detail["unmet"][0]["message"] == "Gates are inconclusive."
    evidence.failing()
    with pytest.raises(RequirementsUnmet) as blocked:
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    assert blocked.value.detail["unmet"][0]["failing"] == ["enterprise-api"]


def test_stale_approval_is_voided_when_verdicts_change_before_use(owner, people, versions, evidence, clock):
    evidence.passing()
    rollout = _request(owner, people, versions)
    _approve(rollout, people, now=clock.now)
    # Approve entering 1 % while the dark stage's minimum duration still runs: the approval waits.
    approval = _approve(rollout, people, now=clock.now)
    assert approval.used_at is None
    evidence.failing()  # the enterprise segment turns
    with pytest.raises(RequirementsUnmet) as blocked:
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    assert {u["requirement"] for u in blocked.value.detail["unmet"]} == {"gates", "approval"}
    approval.refresh_from_db()
    assert approval.void_reason.startswith("The gate verdicts changed")
    assert _events(rollout)[-1] == ("approval_void", "otto")  # kept although the advance was refused
    evidence.passing()  # back to passing: the voided approval stays void
    with pytest.raises(RequirementsUnmet):
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())


def test_pause_freezes_and_resume_continues(owner, people, versions, evidence, clock):
    evidence.passing()
    rollout = _request(
        owner, people, versions, stages=[{"weight_bp": 0}, {"weight_bp": 100, "advance": "auto"}, {"weight_bp": 10000}]
    )
    _approve(rollout, people, now=clock.now)
    rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    rollout_pause(rollout=rollout, actor=people.actor("otto"), reason="incident elsewhere")
    assert _weights(owner) == [("v13", 100), ("v12", 9900)]  # weights stay
    with pytest.raises(Conflict) as refused:
        rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    assert refused.value.get_codes() == "paused"
    with pytest.raises(ValidationError):
        rollout_resume(rollout=rollout, actor=people.actor("otto"), reason="  ")
    rollout_resume(rollout=rollout, actor=people.actor("otto"), reason="incident over")
    assert _events(rollout)[-2:] == [("pause", "otto"), ("resume", "otto")]
    reasons = list(AuditEvent.objects.filter(rollout=rollout).order_by("id").values_list("reason", flat=True))
    assert reasons[-2:] == ["incident elsewhere", "incident over"]


@pytest.mark.parametrize("retire", [False, True])
def test_rollback_stops_serving_the_candidate(owner, people, versions, evidence, clock, retire):
    evidence.passing()
    rollout = _request(
        owner, people, versions, stages=[{"weight_bp": 0}, {"weight_bp": 500, "advance": "auto"}, {"weight_bp": 10000}]
    )
    _approve(rollout, people, now=clock.now)
    rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    _approve(rollout, people, who="arne", now=clock.now)  # a pending approval for 100 %
    rollout_rollback(
        rollout=rollout, actor=people.actor("olga"), reason="enterprise complaints", retire_candidate=retire
    )
    rollout.refresh_from_db()
    assert rollout.status == "rolled_back"
    assert versions_status(owner.application) == {"v12": "active", "v13": "retired" if retire else "draft"}
    assert routing_config(application=owner.application)["versions"] == [{"router_version": "v12", "weight_bp": 10000}]
    assert not Approval.objects.filter(rollout=rollout, used_at__isnull=True, void_reason="").exists()
    event = AuditEvent.objects.filter(rollout=rollout).latest("id")
    assert (event.action, event.actor_label, event.reason) == ("rollback", "olga", "enterprise complaints")
    assert event.evidence["candidate_status"] == ("retired" if retire else "draft")
    with pytest.raises(Conflict):
        rollout_rollback(rollout=rollout, actor=people.actor("olga"), reason="again")
    assert AuditEvent.objects.filter(rollout=rollout, action="rollback").count() == 1


def test_reject_a_request(owner, people, versions):
    rollout = _request(owner, people, versions)
    rollout_reject(rollout=rollout, actor=people.actor("anna"), reason="not this week")
    rollout.refresh_from_db()
    assert rollout.status == "rejected"
    assert _events(rollout) == [("request", "otto"), ("reject", "anna")]
    # The application may request again.
    assert _request(owner, people, versions).status == "requested"


def test_one_rollout_in_flight(owner, people, versions):
    _request(owner, people, versions)
    v14 = RouterVersion.objects.create(application=owner.application, name="v14")
    with pytest.raises(Conflict) as refused:
        rollout_request(application=owner.application, actor=people.actor("otto"), candidate=v14)
    assert refused.value.get_codes() == "rollout_in_flight"


def test_request_needs_an_active_baseline(owner, people):
    v1 = RouterVersion.objects.create(application=owner.application, name="v1")
    with pytest.raises(Conflict) as refused:
        rollout_request(application=owner.application, actor=people.actor("otto"), candidate=v1)
    assert refused.value.get_codes() == "no_baseline"
    assert not Rollout.objects.exists() and not AuditEvent.objects.filter(action="request").exists()


@pytest.mark.parametrize("name", ["v12"])
def test_active_version_cannot_be_a_candidate(owner, people, versions, name):
    with pytest.raises(Conflict) as refused:
        rollout_request(application=owner.application, actor=people.actor("otto"), candidate=versions[name])
    assert refused.value.get_codes() == "invalid_candidate"


def test_a_bad_plan_is_refused_with_named_errors(owner, people, versions):
    with pytest.raises(ValidationError) as refused:
        _request(
            owner, people, versions, stages=[{"weight_bp": 500}, {"weight_bp": 100}, {"weight_bp": 10000, "bogus": 1}]
        )
    assert refused.value.detail["stages"]["2"]["bogus"] == ["Unknown field."]
    with pytest.raises(ValidationError) as refused:
        _request(owner, people, versions, stages=[{"weight_bp": 500}, {"weight_bp": 100}, {"weight_bp": 10000}])
    assert "rise strictly" in str(refused.value.detail["stages"]["stages"][0])


def test_viewer_and_approver_cannot_request(owner, people, versions):
    for who in ("vera", "anna"):
        with pytest.raises(PermissionDenied):
            rollout_request(application=owner.application, actor=people.actor(who), candidate=versions["v13"])
    assert not Rollout.objects.exists()
