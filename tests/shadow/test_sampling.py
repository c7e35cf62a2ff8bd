"""Sampling: the quota spends the budget where uncertainty is, and π makes estimates unbiased.

The day-long simulations are pure (sampling.py is Django-free); the last tests run
`shadow_sample_batch` against the database.
"""

from __future__ import annotations

import random
import statistics

import pytest
from django.utils import timezone

from router_ops.shadow import sampling
from router_ops.shadow.models import SegmentDayCount, ShadowSample
from router_ops.stats.weighted import hajek_rate
from tests.shadow.conftest import ingest_and_sample, policy_set, sim_decisions

RARE, COMMON = 2, 1
DAY = sampling.DAY_S


def simulate_day(*, n: int, rare_share: float, base: float, target: int, app: int, refresh_every: int = 10):
    """A UTC day of `n` cheap-routed decisions spread evenly over the day, the state
    refreshed every `refresh_every` decisions (at 50 000 a day, 10 decisions are ~17 s
    of traffic: the per-process cache refreshes more often than that).
    Returns [(segment, π, sampled)] per decision."""
    rng = random.Random(app)
    counts = {RARE: [0, 0], COMMON: [0, 0]}  # eligible, sampled
    out = []
    state = None
    for i in range(n):
        elapsed = DAY * i / n
        if i % refresh_every == 0:
            rates = {
                seg: sampling.quota_rate(
                    target=target,
                    sampled_today=s,
                    eligible_today=e,
                    eligible_yesterday=0,
                    elapsed_s=elapsed,
                    base_rate=base,
                )
                for seg, (e, s) in counts.items()
            }
            state = sampling.SamplingState(base_rate=base, divergence_rate=0, reverse_rate=0, quota_rates=rates)
        segment = RARE if rng.random() < rare_share else COMMON
        choice = sampling.sample_choose(state, routed_to="cheap", segment_ids=[segment], shadow_decisions=[])
        sampled = sampling.uniform_draw(app, f"d{i}") < choice.probability
        counts[segment][0] += 1
        counts[segment][1] += sampled
        out.append((segment, choice.probability, sampled))
    return out


def test_quota_fills_a_2_percent_segment_that_uniform_sampling_at_the_same_budget_misses():
    n, base, target = 50_000, 0.01, 100
    day = simulate_day(n=n, rare_share=0.02, base=base, target=target, app=1)
    rare_traffic = sum(1 for seg, _, _ in day if seg == RARE)
    rare_sampled = sum(1 for seg, _, s in day if seg == RARE and s)
    total_sampled = sum(1 for _, _, s in day if s)
    assert 900 < rare_traffic < 1100  # 2 % of 50 000
    assert rare_sampled >= target  # the quota is reached (100 of 1 047 rare decisions)
    assert rare_sampled < 1.2 * target  # and not overshot
    # The same number of calls spread uniformly: rate = calls / traffic (≈ 570 / 50 000).
    uniform_rate = total_sampled / n
    assert uniform_rate < 0.0125
    assert uniform_rate * rare_traffic < 13  # expected rare samples under uniform: ~12, far from 100
    # The common segment was sampled at about the base rate, not over-sampled to pay for it.
    common_sampled = total_sampled - rare_sampled
    assert common_sampled / (n - rare_traffic) == pytest.approx(base, rel=0.1)


def test_hajek_estimate_with_stored_pi_is_unbiased():
    """Regret is 35 % in the rare segment and 8 % elsewhere; quotas over-sample the rare
    segment, so the raw mean of the sample is biased up while the Hájek estimate is not."""
    n, share = 4_000, 0.02
    true_rate = share * 0.35 + (1 - share) * 0.08
    hajek, raw = [], []
    for app in range(200):
        day = simulate_day(n=n, rare_share=share, base=0.02, target=40, app=app + 100, refresh_every=20)
        rng = random.Random(f"y{app}")
        ys, pis = [], []
        for segment, pi, sampled in day:
            y = rng.random() < (0.35 if segment == RARE else 0.08)
            if sampled:
                ys.append(float(y))
                pis.append(pi)
        hajek.append(hajek_rate(ys, pis).estimate)
        raw.append(statistics.fmean(ys))
    # Population mean over the realised draws varies per replication; compare the average.
    assert statistics.fmean(hajek) == pytest.approx(true_rate, abs=0.006)
    assert statistics.fmean(raw) - true_rate > 0.04  # the unweighted mean is badly biased


def test_draw_is_fixed_by_the_decision():
    assert sampling.uniform_draw(3, "abc") == sampling.uniform_draw(3, "abc")
    assert sampling.uniform_draw(3, "abc") != sampling.uniform_draw(4, "abc")


def test_choice_rules():
    state = sampling.SamplingState(
        base_rate=0.1, divergence_rate=0.6, reverse_rate=0.05, opt_out_ids=frozenset({9}), quota_rates={5: 0.3}
    )
    choose = sampling.sample_choose
    assert choose(state, routed_to="cheap", segment_ids=[], shadow_decisions=[]).reason == "base"
    quota = choose(state, routed_to="cheap", segment_ids=[5], shadow_decisions=[])
    assert (quota.probability, quota.reason, quota.shadow_tier) == (0.3, "quota", "strong")
    assert choose(state, routed_to="cheap", segment_ids=[7], shadow_decisions=[]).probability == 1.0  # unseen segment
    div = choose(state, routed_to="cheap", segment_ids=[5], shadow_decisions=[{"routed_to": "strong"}])
    assert (div.probability, div.reason) == (0.6, "divergence")
    rev = choose(state, routed_to="strong", segment_ids=[5], shadow_decisions=[{"routed_to": "strong"}])
    assert (rev.probability, rev.reason, rev.direction, rev.shadow_tier) == (
        0.05,
        "reverse",
        "strong_to_cheap",
        "cheap",
    )
    assert choose(state, routed_to="cheap", segment_ids=[5, 9], shadow_decisions=[{"routed_to": "strong"}]) is None
    assert choose(state, routed_to="strong", segment_ids=[9], shadow_decisions=[]) is None
    assert choose(state, routed_to="medium", segment_ids=[], shadow_decisions=[]) is None


def test_quota_rate_falls_as_the_quota_fills():
    kw = {"eligible_today": 100, "eligible_yesterday": 0, "elapsed_s": DAY / 2, "base_rate": 0.01}
    assert sampling.quota_rate(target=50, sampled_today=0, **kw) == 0.5  # 50 wanted, ~100 still to come
    assert sampling.quota_rate(target=50, sampled_today=40, **kw) == 0.1
    assert sampling.quota_rate(target=50, sampled_today=50, **kw) == 0.01
    assert (
        sampling.quota_rate(
            target=50, sampled_today=0, eligible_today=0, eligible_yesterday=0, elapsed_s=10, base_rate=0.01
        )
        == 1.0
    )


@pytest.mark.django_db
def test_batch_stores_pi_and_counts_and_rare_segments_get_higher_rates(owner, monkeypatch):
    # Quota rates depend on the time left in the UTC day (late in the day the common
    # segment's few remaining requests need a high rate too), so the sampler's clock reads
    # noon today: the rates below are those of a day half gone, whenever the test runs.
    noon = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: noon)
    policy_set(owner.application, base_rate=0.05, min_judged_per_segment=500, divergence_rate=0, reverse_rate=0)
    items = [d for d in sim_decisions(1500) if d["routed_to"] == "cheap"][:1000]
    segs = [[RARE] if i % 50 == 0 else [COMMON] for i in range(len(items))]
    ingest_and_sample(owner.application, items[:500], segs[:500])  # both segments unseen: π = 1
    assert set(ShadowSample.objects.values_list("inclusion_probability", flat=True)) == {1.0}
    counts = {c.segment_id: (c.eligible, c.sampled) for c in SegmentDayCount.objects.all()}
    assert counts == {RARE: (10, 10), COMMON: (490, 490)}

    from router_ops.shadow.services import sampling_state_forget

    sampling_state_forget()
    ids, _ = ingest_and_sample(owner.application, items[500:], segs[500:])
    later = ShadowSample.objects.filter(decision_id__in=ids)
    rare_pi = {s.inclusion_probability for s in later if s.segment_ids == [RARE]}
    common_pi = {s.inclusion_probability for s in later if s.segment_ids == [COMMON]}
    assert len(rare_pi) == len(common_pi) == 1
    assert rare_pi.pop() > 5 * common_pi.pop()
    assert {s.reason for s in later if s.segment_ids == [RARE]} == {"quota"}


@pytest.mark.django_db
def test_opt_out_segment_is_never_sampled(owner):
    from segments.models import Segment

    segment = Segment.objects.create(application=owner.application, slug="acme", rule='tenant == "acme"')
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, opt_out_segments=["acme"])
    items = sim_decisions(40)
    segs = [[segment.id] if i % 2 else [] for i in range(40)]
    ids, sampled = ingest_and_sample(owner.application, items, segs)
    assert sampled == 20
    assert not ShadowSample.objects.filter(segment_ids__contains=[segment.id]).exists()
