"""Gate verdicts per segment and the evidence hash an approval is bound to."""

from __future__ import annotations

import pytest

from router_ops.rollouts import gates
from router_ops.rollouts.gates import ArmCounts, SegmentObservation, segment_verdicts
from router_ops.rollouts.services import rollout_approve, rollout_request

pytestmark = pytest.mark.django_db


def _obs(name, cj, cl, bj, bl):
    return SegmentObservation(name, ArmCounts(cj, cl), ArmCounts(bj, bl))


def test_verdicts_pass_fail_and_inconclusive():
    rows = segment_verdicts(
        (
            _obs("b-better", 5000, 100, 5000, 500),
            _obs("a-worse", 5000, 2500, 5000, 100),
            _obs("c-close", 2000, 220, 2000, 200),
            _obs("d-thin", 50, 0, 50, 5),
        ),
        margin=0.01,
        alpha=0.05,
        min_judged=100,
    )
    assert [(r["segment"], r["verdict"]) for r in rows] == [
        ("a-worse", "fail"),
        ("b-better", "pass"),
        ("c-close", "inconclusive"),
        ("d-thin", "inconclusive"),
    ]
    assert rows[3]["reason"].startswith("needs 100 judged requests per arm")
    assert rows[1]["upper"] < 0.01 < rows[0]["lower"]
    # Holm: the first pass is tested at α/3 (three eligible segments).
    assert rows[1]["level"] == pytest.approx(0.05 / 3, abs=1e-6)


def test_per_request_observations_use_the_betting_confidence_sequence():
    candidate = tuple([0.0] * 1900 + [1.0] * 100)
    baseline = tuple(([0.0] * 9 + [1.0]) * 200)
    obs = SegmentObservation("s", ArmCounts(2000, 100, candidate), ArmCounts(2000, 200, baseline))
    (row,) = segment_verdicts((obs,), margin=0.01, alpha=0.05, min_judged=100)
    assert row["bounds"] == gates.METHOD_BETTING and row["verdict"] == "pass"
    (counts_only,) = segment_verdicts((_obs("s", 2000, 100, 2000, 200),), margin=0.01, alpha=0.05, min_judged=100)
    assert counts_only["bounds"] == gates.METHOD_STITCHED
    # The variance-adaptive sequence is tighter than the Hoeffding-type one on low rates.
    assert row["upper"] - row["lower"] < counts_only["upper"] - counts_only["lower"]
    with pytest.raises(ValueError):
        ArmCounts(3, 1, (0.0, 1.0))


def test_bounds_are_anytime_valid_shape():
    # More data, tighter bounds; the bound never collapses at small n.
    wide = gates._radius(100, 0.05)
    narrow = gates._radius(10_000, 0.05)
    assert 0 < narrow < wide < 1
    assert gates._radius(0, 0.05) == float("inf")


def test_evidence_is_deterministic_and_hashes_verdicts_not_counts(owner, people, versions, evidence, clock):
    evidence.passing()
    rollout = rollout_request(application=owner.application, actor=people.actor("otto"), candidate=versions["v13"])
    rollout_approve(rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, now=clock.now)
    rollout.refresh_from_db()
    first = gates.rollout_gate_evidence(rollout)
    assert first == gates.rollout_gate_evidence(rollout)
    assert gates.canonical_json(first) == gates.canonical_json(gates.rollout_gate_evidence(rollout))
    assert first["overall"] == "pass" and [s["segment"] for s in first["segments"]] == ["all-traffic", "enterprise-api"]
    evidence.passing(n=6000)  # more samples, same verdicts: same hash (an approval stays valid)
    more = gates.rollout_gate_evidence(rollout)
    assert more["segments"] != first["segments"] and more["hash"] == first["hash"]
    evidence.failing()
    failing = gates.rollout_gate_evidence(rollout)
    assert failing["hash"] != first["hash"]
    assert failing["overall"] == "fail" and failing["failing_segments"] == ["enterprise-api"]


def test_no_judged_data_is_inconclusive(owner, people, versions, clock):
    rollout = rollout_request(application=owner.application, actor=people.actor("otto"), candidate=versions["v13"])
    assert gates.rollout_gate_evidence(rollout)["overall"] == "not_started"
    rollout_approve(rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, now=clock.now)
    rollout.refresh_from_db()
    result = gates.rollout_gate_evidence(rollout)
    assert (result["overall"], result["source"], result["segments"]) == ("inconclusive", "judged_samples", [])


def test_guardrails(owner, people, versions, clock, monkeypatch):
    rollout = rollout_request(
        application=owner.application,
        actor=people.actor("otto"),
        candidate=versions["v13"],
        stages=[{"weight_bp": 500}, {"weight_bp": 10000}],
        max_cost_ratio=1.1,
    )
    rollout_approve(rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, now=clock.now)
    rollout.refresh_from_db()
    good = (_obs("all", 5000, 0, 5000, 500),)
    monkeypatch.setattr(
        gates,
        "evidence_source",
        lambda r, s: gates.StageObservations(
            segments=good,
            assigned_candidate=500,
            assigned_baseline=9500,
            candidate_cost_per_request=0.0010,
            baseline_cost_per_request=0.0010,
        ),
    )
    result = gates.rollout_gate_evidence(rollout)
    assert result["guardrails"]["srm"]["verdict"] == "pass" and result["guardrails"]["cost"]["verdict"] == "pass"
    assert result["overall"] == "pass"
    monkeypatch.setattr(
        gates,
        "evidence_source",
        lambda r, s: gates.StageObservations(
            segments=good,
            assigned_candidate=800,
            assigned_baseline=9200,
            candidate_cost_per_request=0.0012,
            baseline_cost_per_request=0.0010,
        ),
    )
    result = gates.rollout_gate_evidence(rollout)
    assert result["guardrails"]["srm"]["verdict"] == "fail" and result["guardrails"]["cost"]["verdict"] == "fail"
    assert result["failing_segments"] == ["guardrail:cost", "guardrail:srm"] and result["overall"] == "fail"
