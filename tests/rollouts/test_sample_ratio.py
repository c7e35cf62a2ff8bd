"""The sample-ratio guardrail through the database: it counts units, and a broken split pauses.

Decisions go through decision_ingest_batch, units are assigned with the real routing
config and the client's hash, and the gate sweep acts as the system.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from router_ops.ingest.services import decision_ingest_batch
from router_ops.rollouts import gates
from router_ops.rollouts.models import AuditEvent, Rollout
from router_ops.rollouts.selectors import routing_config
from router_ops.rollouts.services import SWEEP_PAUSED, rollout_approve, rollout_request, rollouts_sweep
from router_ops.stats.sequential import sample_ratio_test
from routerops_client.assignment import assign

pytestmark = pytest.mark.django_db

# A plan that starts at 50 % (time is simulated: no minimum duration, no judged minimum).
HALF = [
    {"weight_bp": 5000, "min_duration_s": 0, "min_judged_per_segment": 0, "margin": 0.02},
    {"weight_bp": 10000, "min_duration_s": 0, "min_judged_per_segment": 0, "margin": 0.02},
]


@pytest.fixture
def rollout(owner, people, versions, clock) -> Rollout:
    app = owner.application
    app.salt = "sample-ratio-tests"  # a fixed split: the same units in each arm on every run
    app.save(update_fields=["salt"])
    rollout = rollout_request(application=app, actor=people.actor("otto"), candidate=versions["v13"], stages=HALF)
    rollout_approve(
        rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, reason="go", now=clock.now
    )
    rollout.refresh_from_db()
    assert rollout.status == Rollout.STATUS_RUNNING
    return rollout


def _ingest(rollout: Rollout, served: list[tuple[str, str]], start) -> None:
    """One decision per (unit, version) pair, in order, a second apart from `start`."""
    items = [
        {
            "decision_id": f"d-{i}",
            "occurred_at": (start + timedelta(seconds=1 + i / 100)).isoformat(),
            "router_version": version,
            "unit_id": unit,
            "routed_to": "strong",
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "cost_usd": 0.01,
        }
        for i, (unit, version) in enumerate(served)
    ]
    for chunk in range(0, len(items), 5000):
        result = decision_ingest_batch(application=rollout.application, items=items[chunk : chunk + 5000], sample=False)
        assert result.rejected == 0, result.errors[:3]


def _assigned(rollout: Rollout, n: int) -> dict[str, str]:
    config = routing_config(application=rollout.application)
    return {f"u-{i}": assign(config["versions"], config["salt"], f"u-{i}") for i in range(n)}


def test_a_few_busy_units_do_not_look_like_a_broken_split(rollout, clock):
    # 1,000 units split by the hash; ten of the baseline's units send 300 requests each. By
    # requests the candidate has about 500 of 3,500 (a χ² on requests: p ≈ 0); by units the
    # split is what the weights say.
    units = _assigned(rollout, 1000)
    busy = [u for u, v in units.items() if v == "v12"][:10]
    served = [(u, v) for u, v in units.items()] + [(u, "v12") for u in busy for _ in range(299)]
    _ingest(rollout, served, rollout.stages.get(order=0).started_at)
    evidence = gates.rollout_gate_evidence(rollout)
    srm = evidence["guardrails"]["srm"]
    in_candidate = sum(v == "v13" for v in units.values())
    assert (srm["assigned_candidate"], srm["assigned_baseline"]) == (in_candidate, 1000 - in_candidate)
    assert srm["counted"] == "units" and srm["verdict"] == gates.PASS
    assert f"{len(served) - in_candidate} requests from {1000 - in_candidate} units" in " ".join(evidence["notes"])
    clock.tick(hours=1)
    assert rollouts_sweep(now=clock.now)[rollout.pk] != SWEEP_PAUSED
    rollout.refresh_from_db()
    assert rollout.status != Rollout.STATUS_PAUSED


def test_a_client_serving_stale_weights_pauses_the_rollout(rollout, clock):
    # A client with a stale config serves a third of the candidate's units from the baseline:
    # ~1,330 candidate vs ~2,670 baseline units for a 50 % share. The sweep pauses with the reason.
    units = _assigned(rollout, 4000)
    served = [(u, "v12" if v == "v13" and i % 3 == 0 else v) for i, (u, v) in enumerate(units.items())]
    _ingest(rollout, served, rollout.stages.get(order=0).started_at)
    clock.tick(hours=1)
    assert rollouts_sweep(now=clock.now)[rollout.pk] == SWEEP_PAUSED
    rollout.refresh_from_db()
    assert rollout.status == Rollout.STATUS_PAUSED
    pause = AuditEvent.objects.get(rollout=rollout, action="pause")
    assert pause.actor_label == "system"
    candidate_units = sum(v == "v13" for _, v in served)
    assert f"{candidate_units} candidate vs {4000 - candidate_units} baseline units" in pause.reason
    assert pause.evidence["guardrails"]["srm"]["p_value"] < gates.SRM_P_THRESHOLD
    alert = AuditEvent.objects.get(rollout=rollout, action="alert")
    assert alert.evidence["kind"] == "sample_ratio_mismatch"


def test_the_rollout_page_says_what_the_guardrail_counted(rollout, people, clock):
    units = _assigned(rollout, 400)
    _ingest(rollout, list(units.items()), rollout.stages.get(order=0).started_at)
    page = people.client("vera").get(
        reverse("rollouts:detail", kwargs={"slug": rollout.application.slug, "pk": rollout.pk})
    )
    assert page.status_code == 200
    html = page.content.decode()
    line = html[html.index('data-testid="guardrail-srm"') :].split("</li>")[0]
    in_candidate = sum(v == "v13" for v in units.values())
    assert f"{in_candidate} candidate vs {400 - in_candidate} baseline units" in line
    p_value = sample_ratio_test([in_candidate, 400 - in_candidate], [0.5, 0.5]).p_value
    assert f"anytime-valid p = {p_value:.3g}" in line and "srm: pass" in line


def test_a_stage_without_a_split_says_why_the_guardrail_is_not_evaluated(owner, people, versions, clock):
    rollout = rollout_request(application=owner.application, actor=people.actor("otto"), candidate=versions["v13"])
    rollout_approve(
        rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, reason="go", now=clock.now
    )
    rollout.refresh_from_db()
    srm = gates.rollout_gate_evidence(rollout)["guardrails"]["srm"]  # the dark stage: 0 % of units
    assert srm == {"verdict": "not_evaluated", "detail": "no traffic split at this stage"}
