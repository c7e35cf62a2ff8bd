"""Done means (issue 6): simulated rollouts through the real services, database and sweep.

Decisions go through decision_ingest_batch, judged samples are ShadowSample rows, the
default (judged-samples) evidence source reads them, and the gate sweep acts as the
system. Time moves by explicit timestamps (the `clock` fixture), never by sleeping.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from router_ops.rollouts import gates
from router_ops.rollouts.estimators import JudgedStream, LossComparison, LossTerm
from router_ops.rollouts.models import AuditEvent, Rollout
from router_ops.rollouts.services import rollout_approve, rollout_request, rollouts_sweep
from tests.rollouts.conftest import versions_status
from tests.rollouts.simulation import BETTER, EQUAL, REGRESSES_ENTERPRISE, World, current_stage, segments_create

pytestmark = pytest.mark.django_db

WEIGHTS = (0, 100, 500, 2500, 5000, 10000)  # the default plan's stages
# Candidate-arm requests per canary stage: the total is this / weight (so 1 % needs 100×).
CANDIDATE_REQUESTS = 1200
DARK_REQUESTS = 20000


def _plan(min_judged=(100, 40, 40, 40, 40, 0), margins=(0.01, 0.02, 0.02, 0.02, 0.02, 0.02)):
    # The default plan's weights and approvals, with no minimum duration (time is simulated).
    # δ = 0.01 in the dark stage (paired, precise); 0.02 on the canary stages, whose two
    # independent arms need ~4× the samples for the same width.
    return [
        {"weight_bp": w, "min_duration_s": 0, "min_judged_per_segment": m, "margin": d}
        for w, m, d in zip(WEIGHTS, min_judged, margins, strict=True)
    ]


def _feed(world: World, rollout: Rollout, clock) -> None:
    stage = current_stage(rollout)
    start = stage.started_at + timedelta(seconds=1)
    if stage.is_dark:
        world.traffic(start=start, n=DARK_REQUESTS, dark=True)
    elif stage.weight_bp < 10000:
        # At least 10 000 requests a window: a 50 % stage sees more than a 1 % one's candidate arm.
        world.traffic(start=start, n=max(CANDIDATE_REQUESTS * 10000 // stage.weight_bp, 10000), dark=False)
    else:
        world.traffic(start=start, n=CANDIDATE_REQUESTS, dark=False)
    clock.tick(hours=1)


def _step(rollout: Rollout, people, clock) -> None:
    """What the operators would do: a second person approves manual stages, the sweep does the rest."""
    rollout.refresh_from_db()
    evidence = gates.rollout_gate_evidence(rollout)
    following = evidence["next_stage"]
    if following and following["advance"] == "manual" and evidence["overall"] == "pass":
        rollout_approve(
            rollout=rollout,
            actor=people.actor("anna"),
            evidence_hash=evidence["hash"],
            reason="gates pass",
            now=clock.now,
        )
    rollouts_sweep(now=clock.now)
    rollout.refresh_from_db()


def test_a_better_candidate_goes_dark_to_100_percent(owner, people, versions, clock):
    app = owner.application
    segments_create(app, slugs=("api", "chat"))
    rollout = rollout_request(application=app, actor=people.actor("otto"), candidate=versions["v13"], stages=_plan())
    rollout_approve(
        rollout=rollout, actor=people.actor("arne"), evidence_hash=rollout.evidence_hash, reason="start", now=clock.now
    )
    world = World(app, "v12", "v13", BETTER, seed=11)
    seen = []
    for _ in range(4 * len(WEIGHTS)):
        rollout.refresh_from_db()
        if rollout.status != Rollout.STATUS_RUNNING:
            break
        seen.append(current_stage(rollout).name)
        _feed(world, rollout, clock)  # another window of traffic while a stage is still inconclusive
        _step(rollout, people, clock)
        # A stage can be entered and (at 100 %, with no minimum duration) completed in one step.
        seen.append(current_stage(rollout).name)
    assert list(dict.fromkeys(seen)) == ["dark", "1%", "5%", "25%", "50%", "100%"]
    assert rollout.status == Rollout.STATUS_COMPLETED
    assert versions_status(app) == {"v12": "retired", "v13": "active"}
    events = list(AuditEvent.objects.filter(rollout=rollout).values_list("actor_label", "action"))
    # Manual stages (1 %, 25 %, 100 %) entered on anna's approval; automatic ones (5 %, 50 %) by the sweep.
    assert [e for e in events if e[1] in ("approve", "advance", "complete")] == [
        ("arne", "approve"),
        ("anna", "approve"),
        ("anna", "advance"),
        ("system", "advance"),
        ("anna", "approve"),
        ("anna", "advance"),
        ("system", "advance"),
        ("anna", "approve"),
        ("anna", "advance"),
        ("system", "complete"),
    ]
    assert not AuditEvent.objects.filter(rollout=rollout, action__in=["rollback", "alert"]).exists()
    # Every stage passed on judged evidence from the database (100 %: its soak ended with no gate failing).
    verdicts = list(rollout.stages.order_by("order").values_list("verdict", flat=True))
    assert verdicts == ["pass"] * 6


def test_b_a_regression_in_a_3_percent_segment_is_rolled_back_before_25_percent(owner, people, versions, clock):
    app = owner.application
    segments_create(app)
    rollout = rollout_request(application=app, actor=people.actor("otto"), candidate=versions["v13"], stages=_plan())
    rollout_approve(
        rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, reason="start", now=clock.now
    )
    world = World(app, "v12", "v13", REGRESSES_ENTERPRISE, seed=12)
    reached = []
    for _ in range(3):
        rollout.refresh_from_db()
        if rollout.status != Rollout.STATUS_RUNNING:
            break
        stage = current_stage(rollout)
        reached.append(stage.weight_bp)
        _feed(world, rollout, clock)
        evidence = gates.rollout_gate_evidence(rollout)
        _step(rollout, people, clock)
    assert rollout.status == Rollout.STATUS_ROLLED_BACK
    assert max(reached) < 2500
    # Better on aggregate, worse beyond the margin only in the enterprise API segment.
    rows = {s["segment"]: s for s in evidence["segments"]}
    assert rows["all-traffic"]["difference"] < 0 and rows["all-traffic"]["verdict"] == "pass"
    assert rows["enterprise-api"]["verdict"] == "fail"
    rollback = AuditEvent.objects.get(rollout=rollout, action="rollback")
    assert rollback.actor_label == "system"
    assert rollback.evidence["failing_segments"] == ["enterprise-api"]
    assert "enterprise-api" in rollback.reason
    alert = AuditEvent.objects.get(rollout=rollout, action="alert")
    assert alert.evidence["kind"] == "automatic_rollback" and alert.evidence["failing_segments"] == ["enterprise-api"]
    assert versions_status(app) == {"v12": "active", "v13": "draft"}


def test_c_an_equal_candidate_is_not_rolled_back_through_the_database(owner, people, versions, clock):
    app = owner.application
    segments_create(app)
    plan = _plan()
    for seed in (21, 22, 23):
        candidate = versions["v13"] if seed == 21 else None
        if candidate is None:
            from router_ops.rollouts.services import router_version_create

            candidate = router_version_create(application=app, actor=people.actor("ada"), name=f"v13-{seed}")
        rollout = rollout_request(application=app, actor=people.actor("otto"), candidate=candidate, stages=plan)
        rollout_approve(
            rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, reason="go", now=clock.now
        )
        world = World(app, "v12", candidate.name, EQUAL, seed=seed)
        world.traffic(start=current_stage(rollout).started_at + timedelta(seconds=1), n=8000, dark=True)
        clock.tick(hours=1)
        assert rollouts_sweep(now=clock.now)[rollout.pk] in ("waiting", "advanced")
        rollout.refresh_from_db()
        assert rollout.status == Rollout.STATUS_RUNNING
        evidence = gates.rollout_gate_evidence(rollout)
        assert gates.FAIL not in [s["verdict"] for s in evidence["segments"]]
        from router_ops.rollouts.services import rollout_rollback

        rollout_rollback(rollout=rollout, actor=people.actor("otto"), reason="next simulation", now=clock.now)
        clock.tick(hours=1)


# ---------------------------------------------------------------- many rollouts, pure gate functions

SEGMENT_SHARES = {"enterprise-api": 0.03, "api": 0.27, "chat": 0.70}
STRONG_BETTER = {"enterprise-api": 0.3, "api": 0.1, "chat": 0.1}


def _stream(rng, n: int, rate: float, pis: tuple[float, ...]) -> JudgedStream:
    """n judged samples of a stratum whose true loss rate is `rate`, drawn with mixed π."""
    weights = 1.0 / rng.choice(pis, size=n)
    return JudgedStream(tuple(int(v) for v in rng.random(n) < rate), tuple(float(w) for w in weights))


def _dark_segment(rng, name: str, n_requests: int) -> gates.SegmentObservation:
    """Equal routers on the same requests: each routes cheap w.p. 0.6, independently."""
    q = STRONG_BETTER.get(name, 0.1)
    n_up = rng.binomial(n_requests, 0.6 * 0.4)  # baseline cheap, candidate strong
    n_rev = rng.binomial(n_requests, 0.4 * 0.6)  # baseline strong, candidate cheap
    up = _stream(rng, rng.binomial(n_up, 0.5), q, (0.5, 1.0))
    rev = _stream(rng, rng.binomial(n_rev, 0.5), q, (0.5, 0.25))
    comparison = LossComparison((LossTerm(n_rev, n_requests, rev),), (LossTerm(n_up, n_requests, up),), paired=True)
    judged = up.judged + rev.judged
    return gates.SegmentObservation(name, gates.ArmCounts(judged, 0), gates.ArmCounts(judged, 0), comparison)


def _canary_segment(rng, name: str, n_candidate: int, n_baseline: int) -> gates.SegmentObservation:
    q = STRONG_BETTER.get(name, 0.1)
    terms, arms = [], []
    for n, pis in ((n_candidate, (1.0,)), (n_baseline, (0.05, 0.1))):
        cheap = rng.binomial(n, 0.6)
        stream = _stream(rng, rng.binomial(cheap, float(np.mean(pis))), q, pis)
        terms.append(LossTerm(cheap, n, stream, exact=False))
        arms.append(gates.ArmCounts(stream.judged, sum(stream.losses)))
    return gates.SegmentObservation(name, arms[0], arms[1], LossComparison((terms[0],), (terms[1],)))


def _rollout_falsely_fails(rng, *, alpha=0.05, margin=0.01, looks=3) -> bool:
    """One simulated rollout of an equal candidate through five compared stages, each
    checked `looks` times as data accrue (the sweep looks often): True if any check fails."""
    stages = 5
    for weight in (0, 100, 500, 2500, 5000):
        for look in range(1, looks + 1):
            if weight == 0:
                total = DARK_REQUESTS * look // looks
                obs = [_dark_segment(rng, "all-traffic", total)]
                obs += [_dark_segment(rng, s, int(total * share)) for s, share in SEGMENT_SHARES.items()]
            else:
                cand = CANDIDATE_REQUESTS * look // looks
                base = cand * (10000 - weight) // weight
                obs = [_canary_segment(rng, "all-traffic", cand, base)]
                obs += [
                    _canary_segment(rng, s, int(cand * share), int(base * share)) for s, share in SEGMENT_SHARES.items()
                ]
            rows = gates.segment_verdicts(
                tuple(obs), margin=margin, alpha=alpha, min_judged=40, fail_alpha=alpha / stages
            )
            if any(r["verdict"] == gates.FAIL for r in rows):
                return True
    return False


def test_c_false_rollbacks_of_an_equal_candidate_stay_below_alpha():
    """≥ 200 simulated rollouts of a candidate equal to the baseline: false rollbacks ≤ α."""
    rng = np.random.default_rng(2026)
    runs = 250
    false_rollbacks = sum(_rollout_falsely_fails(rng) for _ in range(runs))
    rate = false_rollbacks / runs
    print(f"false rollbacks: {false_rollbacks}/{runs} = {rate:.3f} (α = 0.05)")
    assert rate <= 0.05
