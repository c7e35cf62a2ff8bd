"""Discovery of under-performing slices (issue 3, item 4) on simulated data through the real tables."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from router_ops.ingest.models import Decision
from router_ops.shadow.models import ShadowSample
from segments.discovery import (
    default_segment_slug,
    discovery_observations,
    discovery_promote,
    discovery_run,
    discovery_run_request,
    discovery_sweep,
)
from segments.models import Discovery, DiscoveryRun, Segment
from segments.services import dimension_create
from segments.slice_scan import attribute_candidates, scan_candidates
from tests.segments.simulation import BASE_REGRET, SEEDED_RULE, insert_judged_samples, null_pool

pytestmark = pytest.mark.django_db

NULL_DATASETS = 200
Q = 0.05


@pytest.fixture
def discovery_sent(monkeypatch):
    from segments import tasks

    sent = []
    monkeypatch.setattr(tasks.discovery_run_task, "delay", lambda run_id: sent.append(run_id))
    return sent


@pytest.fixture
def seeded(owner):
    # 20,000 simulated requests of the seed's world; Poisson sampling keeps about 2,700.
    insert_judged_samples(owner.application, requests=20_000, seed=7)
    return owner.application


def test_the_seeded_enterprise_scripted_api_slice_is_ranked_first(
    seeded, discovery_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run, created = discovery_run_request(application=seeded, trigger="api")
    assert created and discovery_sent == [run.id]
    run = discovery_run(run.id)

    assert run.status == DiscoveryRun.DONE
    ranked = list(Discovery.objects.filter(run=run, significant=True).order_by("rank"))
    first = ranked[0]
    print(f"\nseeded slice rank: {first.rank} ({first.rule}); {run.discoveries} discoveries of {run.tested} tested")
    assert first.rank == 1
    assert first.rule == SEEDED_RULE
    assert first.explained_by == ""
    # The simulated truth: 3 % of traffic, regret 35 % against 8 % elsewhere.
    assert 0.025 < first.traffic_share < 0.035
    assert first.regret_low < 0.35 < first.regret_high
    assert abs(first.complement_regret - BASE_REGRET) < 0.02
    assert first.impact == pytest.approx(first.traffic_share * (first.regret - first.complement_regret))
    assert first.adjusted_p_value < 1e-6 and first.n_eff >= run.min_n_eff
    # Broader slices holding it (channel == "api", user_tier == "enterprise") are found, but explained by it.
    broader = {d.rule: d for d in ranked if d.rule in ('channel == "api"', 'user_tier == "enterprise"')}
    assert broader and all(d.explained_by and d.rank > 1 for d in broader.values())


def test_over_200_null_datasets_the_false_discovery_proportion_averages_at_most_q():
    """No real difference anywhere (regret 8 % in every slice), unequal π as in the seed.

    Each dataset is a fresh Poisson sample (π by kind) from a fixed pool of 20,000
    simulated requests and fresh outcomes. The datasets run through the pure core
    (`scan_candidates`, the same code `discovery_run` calls after
    `discovery_observations`) rather than the database: 200 trips through the
    tables would take minutes. Under the null every discovery is false, so the
    false discovery proportion of a dataset is 1 if it has any discovery, else 0.
    """
    attributes, pi = null_pool(20_000, seed=11)
    pool_singles = attribute_candidates(attributes, pi, min_share=0.0)
    rng = np.random.default_rng(2026)
    proportions, tested = [], []
    started = time.monotonic()
    for _ in range(NULL_DATASETS):
        index = np.nonzero(rng.random(pi.size) < pi)[0]
        outcomes = (rng.random(index.size) < BASE_REGRET).astype(float)
        result = scan_candidates(outcomes, pi[index], [c.restricted(index) for c in pool_singles], q=Q, min_n_eff=30)
        proportions.append(1.0 if result.discoveries else 0.0)
        tested.append(result.tested)
    elapsed = time.monotonic() - started
    mean_fdp = float(np.mean(proportions))
    print(
        f"\nmean FDP over {NULL_DATASETS} null datasets: {mean_fdp:.3f} ({np.mean(tested):.0f} slices tested each, {elapsed:.1f} s)"
    )
    assert min(tested) > 40  # singles and crosses were really tested
    assert mean_fdp <= Q


def test_observations_are_judged_cheap_routed_samples_of_the_window(owner):
    now = timezone.now()
    insert_judged_samples(owner.application, requests=300, seed=3, now=now)
    samples = ShadowSample.objects.filter(application=owner.application)
    total = samples.count()
    # Left out: an unjudged sample, a reverse (strong → cheap) sample, a decision before the window.
    unjudged, reverse, old = samples.order_by("id")[:3]
    ShadowSample.objects.filter(id=unjudged.id).update(verdict="")
    ShadowSample.objects.filter(id=reverse.id).update(direction=ShadowSample.DIRECTION_DOWN)
    Decision.objects.filter(id=old.decision_id).update(occurred_at=now - timedelta(days=8))

    observed = discovery_observations(application=owner.application, window=timedelta(days=7), now=now)

    kept = samples.exclude(id__in=[unjudged.id, reverse.id, old.id]).order_by("id")
    assert len(observed) == total - 3
    assert observed.outcomes.tolist() == [1.0 if s.verdict == "shadow_better" else 0.0 for s in kept]
    assert observed.inclusion_probabilities.tolist() == [s.inclusion_probability for s in kept]
    assert observed.attributes == [s.decision.attributes for s in kept.select_related("decision")]
    assert observed.records[0]["routed_to"] == "cheap" and observed.records[0]["router_version"] == "v1"


def test_a_declared_dimension_adds_its_buckets_as_slices(seeded, discovery_sent):
    dimension_create(application=seeded, path="prompt_tokens", min_share=0.01, bucket_edges=[100, 1000])
    run, _ = discovery_run_request(application=seeded)
    discovery_run(run.id)
    rules = set(Discovery.objects.filter(run=run).values_list("rule", flat=True))
    assert "prompt_tokens < 100" in rules
    assert 'prompt_tokens < 100 and channel == "api"' in rules or 'channel == "api" and prompt_tokens < 100' in rules


def test_a_run_is_claimed_once_and_only_one_is_open_per_application(seeded, discovery_sent):
    run, created = discovery_run_request(application=seeded)
    again, created_again = discovery_run_request(application=seeded)
    assert created and not created_again and again.id == run.id
    with pytest.raises(IntegrityError), transaction.atomic():
        DiscoveryRun.objects.create(application=seeded, window=timedelta(days=7))

    discovery_run(run.id)
    rows = Discovery.objects.filter(run=run).count()
    discovery_run(run.id)  # a second delivery of the task
    assert Discovery.objects.filter(run=run).count() == rows > 0
    # Finished, a new run may be queued.
    assert discovery_run_request(application=seeded)[1] is True


def test_a_run_without_judged_samples_finishes_empty(owner, discovery_sent):
    run, _ = discovery_run_request(application=owner.application)
    run = discovery_run(run.id)
    assert (run.status, run.samples, run.tested, run.discoveries) == ("done", 0, 0, 0)


def test_a_failing_run_is_marked_failed_with_the_reason(seeded, discovery_sent, monkeypatch):
    import segments.discovery as discovery

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(discovery, "discovery_observations", broken)
    run, _ = discovery_run_request(application=seeded)
    with pytest.raises(RuntimeError):
        discovery_run(run.id)
    run.refresh_from_db()
    assert run.status == "failed" and run.error == "RuntimeError: boom"


def test_the_sweep_queues_applications_with_judged_samples_and_fails_lost_runs(seeded, outsider, discovery_sent):
    lost = DiscoveryRun.objects.create(
        application=outsider.application,
        window=timedelta(days=7),
        status="running",
        started_at=timezone.now() - timedelta(hours=2),
    )
    assert discovery_sweep() == 1
    lost.refresh_from_db()
    assert lost.status == "failed" and "Lost" in lost.error
    assert list(DiscoveryRun.objects.filter(status="pending").values_list("application_id", flat=True)) == [seeded.id]
    assert not DiscoveryRun.objects.filter(application=outsider.application, status="pending").exists()


def test_make_this_a_segment_creates_and_backfills_a_segment_with_the_rule(seeded, discovery_sent, enqueued):
    run, _ = discovery_run_request(application=seeded)
    discovery_run(run.id)
    first = Discovery.objects.get(run=run, rank=1)

    segment = discovery_promote(discovery=first)

    assert (segment.slug, segment.rule) == ("channel-api-user-tier-enterprise", SEEDED_RULE)
    assert segment.backfill_status == Segment.BACKFILL_PENDING
    first.refresh_from_db()
    assert first.promoted_segment_id == segment.id


def test_default_segment_slug():
    assert default_segment_slug('attributes.client == "python-requests/2.32" and prompt_tokens < 100') == (
        "client-python-requests-2-32-prompt-tokens-100"
    )


def test_the_api_lists_the_latest_runs_findings_queues_runs_and_promotes(seeded, owner, discovery_sent, enqueued):
    admin, read = owner.client("admin"), owner.client("read")
    empty = read.get("/api/v1/discoveries").json()
    assert empty == {"run": None, "open_run": None, "findings": []}

    queued = admin.post("/api/v1/discoveries/run/", {"window": "7d", "q": 0.05}, format="json")
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert admin.post("/api/v1/discoveries/run").status_code == 200  # the open run, not a second one
    assert admin.post("/api/v1/discoveries/run", {"q": 2}, format="json").status_code == 400
    assert admin.post("/api/v1/discoveries/run", {"windw": "7d"}, format="json").json()["error"]["details"] == {
        "windw": ["Unknown field."]
    }
    discovery_run(queued.json()["id"])

    body = read.get("/api/v1/discoveries/").json()
    assert body["run"]["status"] == "done" and body["open_run"] is None
    first = body["findings"][0]
    assert (first["rank"], first["rule"], first["significant"]) == (1, SEEDED_RULE, True)
    assert set(first["regret"]) == {"estimate", "low", "high"}
    assert all(f["significant"] for f in body["findings"])
    everything = read.get("/api/v1/discoveries?all=1").json()["findings"]
    assert len(everything) == body["run"]["tested"] > len(body["findings"])
    assert read.get("/api/v1/discoveries?all=false").json()["findings"] == body["findings"]
    for bad in ("all=null", "all=1&all=0"):
        refused = read.get(f"/api/v1/discoveries?{bad}")
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["details"] == {"all": ["Use true or false (once)."]}
    assert read.get(f"/api/v1/discoveries/{first['id']}").json()["rule"] == SEEDED_RULE

    promoted = admin.post(f"/api/v1/discoveries/{first['id']}/promote/", {"slug": "enterprise-api"}, format="json")
    assert promoted.status_code == 201 and promoted.json()["rule"] == SEEDED_RULE
    again = admin.post(f"/api/v1/discoveries/{first['id']}/promote")
    assert again.status_code == 409 and "enterprise-api" in again.json()["error"]["message"]
    second = body["findings"][1]
    clash = admin.post(f"/api/v1/discoveries/{second['id']}/promote", {"slug": "enterprise-api"}, format="json")
    assert clash.status_code == 400 and clash.json()["error"]["details"] == {
        "slug": ["Already used in this application."]
    }
