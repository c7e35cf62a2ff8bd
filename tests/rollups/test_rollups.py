"""Rollups: hourly sums recomputed from raw rows, late data, and the stats API over them."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from router_ops.applications.models import ModelEndpoint
from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch, feedback_ingest_batch
from router_ops.rollups.models import DirtyHour, HourlyRollup
from router_ops.rollups.selectors import segment_stats
from router_ops.rollups.services import rollup_refresh
from router_ops.shadow.models import ShadowSample
from router_ops.stats.weighted import weighted_rate
from segments.models import Segment

pytestmark = pytest.mark.django_db

HOUR = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def decision(i: int, *, routed_to="cheap", hour=HOUR, tenant="public", segment_ids=(), tokens=(1000, 500)):
    return {
        "decision_id": f"d-{i}",
        "occurred_at": (hour + timedelta(minutes=i % 60)).isoformat(),
        "router_version": "v1",
        "unit_id": f"u-{i}",
        "routed_to": routed_to,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "cost_usd": 0.001 if routed_to == "cheap" else 0.01,
        "attributes": {"tenant": tenant},
    }


def sample(d: Decision, pi: float, verdict: str, disagree: bool) -> ShadowSample:
    up = d.routed_to == "cheap"
    return ShadowSample.objects.create(
        application_id=d.application_id,
        decision=d,
        direction="cheap_to_strong" if up else "strong_to_cheap",
        primary_tier=d.routed_to,
        shadow_tier="strong" if up else "cheap",
        inclusion_probability=pi,
        reason="base",
        status="done",
        judge_status="done",
        verdict=verdict,
        materially_disagree=disagree,
    )


@pytest.fixture
def world(owner):
    """40 cheap + 10 strong decisions in one hour; 'acme' tenant is segment A (first 10 cheap)."""
    app = owner.application
    ModelEndpoint.objects.create(
        application=app,
        name="big",
        tier="strong",
        base_url="http://127.0.0.1:1/v1",
        model="big",
        input_price_per_mtok=2,
        output_price_per_mtok=8,
    )
    seg = Segment.objects.create(application=app, slug="acme", name="Acme", rule='tenant == "acme"')
    items = [decision(i, tenant="acme" if i < 10 else "public") for i in range(40)]
    items += [decision(100 + i, routed_to="strong") for i in range(10)]
    # Samples are written by hand below, with known π and verdicts.
    assert decision_ingest_batch(application=app, items=items, sample=False).accepted == 50
    Decision.objects.filter(application=app, attributes__tenant="acme").update(segment_ids=[seg.id])
    by_id = {d.decision_id: d for d in Decision.objects.filter(application=app)}
    rng = np.random.default_rng(3)
    truth = []  # (pi, bad, disagree, in_segment, tier) of judged pairs
    for i in range(40):
        pi = [0.1, 0.5, 1.0][i % 3]
        bad = bool(rng.random() < (0.5 if i < 10 else 0.1))
        disagree = bad or bool(rng.random() < 0.1)
        sample(by_id[f"d-{i}"], pi, "shadow_better" if bad else "equivalent", disagree)
        truth.append((pi, bad, disagree, i < 10, "cheap"))
    for i in range(5):  # reverse samples: overspend when the cheap shadow is no worse
        verdict = "equivalent" if i < 2 else "primary_better"
        sample(by_id[f"d-{100 + i}"], 0.2, verdict, verdict == "primary_better")
        truth.append((0.2, verdict == "equivalent", verdict == "primary_better", False, "strong"))
    # The samples were written after ingestion marked the hour; a real writer marks it too.
    DirtyHour.objects.get_or_create(application=app, hour=HOUR)
    return app, seg, truth


def test_it_recomputes_an_hour_from_raw_rows(world):
    app, seg, truth = world
    assert rollup_refresh() == 1
    assert not DirtyHour.objects.exists()
    rows = {(r.segment_id, r.tier): r for r in HourlyRollup.objects.filter(application=app)}
    assert set(rows) == {(0, "cheap"), (0, "strong"), (seg.id, "cheap")}
    cheap = rows[(0, "cheap")]
    assert (cheap.decisions, cheap.sampled, cheap.judged) == (40, 40, 40)
    assert cheap.cost_usd == pytest.approx(0.04)
    # Strong counterfactual of cheap rows: 1000 × $2 + 500 × $8 per Mtok = $0.006 each.
    assert cheap.strong_cost_usd == pytest.approx(40 * 0.006)
    assert rows[(0, "strong")].strong_cost_usd == pytest.approx(0.10)
    w = np.array([1 / t[0] for t in truth if t[4] == "cheap"])
    bad = np.array([t[1] for t in truth if t[4] == "cheap"])
    assert cheap.sum_w == pytest.approx(w.sum())
    assert cheap.sum_w_bad == pytest.approx((w * bad).sum())
    assert cheap.n_bad == int(bad.sum())
    assert rows[(seg.id, "cheap")].decisions == 10


def test_stats_equal_the_hajek_estimate_over_raw_samples(world):
    app, seg, truth = world
    rollup_refresh()
    from router_ops.rollups.selectors import default_router_version

    body = segment_stats(application=app, router_version=default_router_version(app), window=timedelta(days=1))
    cheap = [t for t in truth if t[4] == "cheap"]
    expected = weighted_rate([t[1] for t in cheap], [t[0] for t in cheap])
    regret = body["overall"]["regret_rate"]
    assert regret["estimate"] == pytest.approx(expected.estimate)
    assert regret["low"] == pytest.approx(expected.low)
    assert regret["high"] == pytest.approx(expected.high)
    in_seg = [t for t in cheap if t[3]]
    seg_expected = weighted_rate([t[1] for t in in_seg], [t[0] for t in in_seg])
    (acme,) = body["segments"]
    assert acme["segment"] == "acme"
    assert acme["traffic_share"] == pytest.approx(10 / 50)
    assert acme["cheap_share"] == 1.0
    assert acme["regret_rate"]["estimate"] == pytest.approx(seg_expected.estimate)
    assert acme["impact"] == pytest.approx(0.2 * 1.0 * seg_expected.estimate)
    strong = [t for t in truth if t[4] == "strong"]
    assert body["overall"]["overspend_rate"]["estimate"] == pytest.approx(2 / 5)
    assert body["overall"]["disagreement_rate"]["n"] == len(truth)
    assert len(strong) == 5
    assert body["overall"]["savings_usd"] == pytest.approx(40 * 0.006 + 0.10 - (0.04 + 0.10))


def test_late_data_marks_its_old_hour_dirty_and_is_counted(world):
    app, seg, truth = world
    rollup_refresh()
    old_hour = HOUR - timedelta(hours=20)
    result = decision_ingest_batch(application=app, items=[decision(500, hour=old_hour)], sample=False)
    assert result.accepted == 1
    assert list(DirtyHour.objects.values_list("hour", flat=True)) == [old_hour]
    assert rollup_refresh() == 1
    assert HourlyRollup.objects.get(application=app, hour=old_hour, segment_id=0).decisions == 1
    # The earlier hour was not touched.
    assert HourlyRollup.objects.get(application=app, hour=HOUR, segment_id=0, tier="cheap").decisions == 40


def test_feedback_counts_reach_the_rollup(world):
    app, seg, truth = world
    rollup_refresh()
    fb = [{"decision_id": "d-1", "kind": "thumbs_down"}, {"decision_id": "d-2", "kind": "thumbs_up"}]
    assert feedback_ingest_batch(application=app, items=fb).accepted == 2
    rollup_refresh()
    row = HourlyRollup.objects.get(application=app, hour=HOUR, segment_id=0, tier="cheap")
    assert (row.feedback_negative, row.feedback_total) == (1, 2)


def test_the_selector_uses_a_fixed_number_of_queries(world, django_assert_num_queries):
    app, seg, truth = world
    rollup_refresh()
    from router_ops.rollouts.models import RouterVersion

    version = RouterVersion.objects.get(application=app, name="v1")
    with django_assert_num_queries(2):  # rollup sums + segment names
        segment_stats(application=app, router_version=version, window=timedelta(days=7))


class TestApi:
    def test_it_rejects_a_bad_window(self, owner):
        r = owner.client("read").get("/api/v1/segments/stats?window=forever")
        assert r.status_code == 400
        assert r.json()["error"]["details"] == {"window": ["Use a number of hours or days, e.g. 24h or 7d."]}

    def test_it_404s_an_unknown_version_and_segment(self, owner):
        client = owner.client("read")
        assert client.get("/api/v1/segments/stats?router_version=nope").status_code == 404
        assert client.get("/api/v1/segments/stats?segment=nope").status_code == 404

    def test_it_refuses_without_read_scope_and_other_apps(self, owner, outsider):
        assert owner.client("ingest").get("/api/v1/segments/stats").status_code == 403
        assert (
            outsider.client("read").get(f"/api/v1/segments/stats?application={owner.application.slug}").status_code
            == 403
        )
        from rest_framework.test import APIClient

        assert APIClient().get("/api/v1/segments/stats").status_code == 401

    def test_empty_application_answers_with_insufficient_data(self, owner):
        r = owner.client("read").get("/api/v1/segments/stats/")
        assert r.status_code == 200
        body = r.json()
        assert body["window"] == "7d" and body["segments"] == []
        assert body["overall"]["status"] == "insufficient_data"
        assert body["overall"]["regret_rate"]["estimate"] is None


def test_api_numbers_match_the_selector(world, owner):
    app, seg, truth = world
    rollup_refresh()
    body = owner.client("read").get("/api/v1/segments/stats?window=24h").json()
    assert body["window"] == "24h" and body["router_version"] == "v1"
    from router_ops.rollouts.models import RouterVersion

    version = RouterVersion.objects.get(application=app, name="v1")
    expected = segment_stats(application=app, router_version=version, window=timedelta(hours=24))
    for key, value in expected["overall"].items():
        if isinstance(value, dict):
            assert body["overall"][key] == pytest.approx(value), key
        else:
            assert body["overall"][key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert [s["segment"] for s in body["segments"]] == ["acme"]
    assert body["overall"]["decisions"] == 50
