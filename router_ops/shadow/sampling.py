"""The sampling decision at ingestion. Pure: no Django, a few µs per decision.

For each decision the inclusion probability π is the largest of the rates that
apply to it (DESIGN.md §4):

- cheap-routed (shadow on the strong tier, measures regret):
  `base_rate`; the quota rate of each of its segments; `divergence_rate` when a
  shadow router routed it differently;
- strong-routed (reverse, shadow on the cheap tier, measures overspend):
  `reverse_rate`; `divergence_rate` when a shadow router routed it differently;
- in an opt-out segment, or routed to any other tier: never sampled.

The draw is a uniform number fixed by (application, client decision id), so
the same decision gets the same draw in every process and on every re-ingest,
and sampling is Poisson sampling with known π: a Hájek estimator
Σ y/π / Σ 1/π over the sample estimates the traffic mean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CHEAP = "cheap"
STRONG = "strong"
UP = "cheap_to_strong"
DOWN = "strong_to_cheap"

# Below this many seconds of today's traffic, a segment's rate estimate leans on a
# floor so that the first minutes of a day do not extrapolate from a handful of
# decisions (15 minutes of observation is the shortest window trusted).
MIN_OBSERVED_S = 900.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SamplingState:
    """What the sampler needs about one application, cached for a few seconds."""

    base_rate: float
    divergence_rate: float
    reverse_rate: float
    opt_out_ids: frozenset[int] = frozenset()
    # Segment id → quota rate, for segments seen today or yesterday.
    quota_rates: Mapping[int, float] = field(default_factory=dict)
    # Quota rate of a segment with no traffic seen yet: its first decisions are the
    # scarcest information there is (1.0 when a quota is set, else the base rate).
    unseen_rate: float = 1.0


@dataclass(frozen=True, slots=True)
class SampleChoice:
    probability: float
    reason: str
    direction: str
    primary_tier: str
    shadow_tier: str


def uniform_draw(application_id: int, decision_id: str) -> float:
    """A uniform number in [0, 1) fixed by the decision (the same in every process)."""
    digest = hashlib.blake2b(f"{application_id}:{decision_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def quota_rate(
    *,
    target: int,
    sampled_today: int,
    eligible_today: int,
    eligible_yesterday: int,
    elapsed_s: float,
    base_rate: float,
) -> float:
    """The rate that reaches `target` samples of a segment by the end of the UTC day.

    rate = (target − sampled so far) / (expected remaining eligible traffic today),
    where the traffic rate per second is estimated from today's count plus, when
    there is one, yesterday's whole day (a prior that keeps early-morning estimates
    sane), and the result is clamped to [base_rate, 1]. A rare segment therefore
    gets a high rate, and the rate falls as its quota fills.
    """
    remaining_target = target - sampled_today
    if remaining_target <= 0:
        return base_rate
    if eligible_today + eligible_yesterday == 0:
        return 1.0
    window_s = max(elapsed_s, MIN_OBSERVED_S) + (DAY_S if eligible_yesterday else 0.0)
    per_second = (eligible_today + eligible_yesterday) / window_s
    expected_remaining = per_second * max(DAY_S - elapsed_s, 0.0)
    if expected_remaining <= remaining_target:
        return 1.0
    return min(1.0, max(base_rate, remaining_target / expected_remaining))


def _diverges(routed_to: str, shadow_decisions: Iterable[dict]) -> bool:
    for shadow in shadow_decisions:
        other = shadow.get("routed_to")
        if other is not None and other != routed_to:
            return True
    return False


def sample_choose(
    state: SamplingState,
    *,
    routed_to: str,
    segment_ids: Iterable[int],
    shadow_decisions: Iterable[dict],
) -> SampleChoice | None:
    """π, its reason and the direction for one decision; None when it may not be sampled."""
    if routed_to == CHEAP:
        direction, shadow_tier = UP, STRONG
        probability, reason = state.base_rate, "base"
        quota = state.quota_rates
        for segment_id in segment_ids:
            if segment_id in state.opt_out_ids:
                return None
            rate = quota.get(segment_id, state.unseen_rate)
            if rate > probability:
                probability, reason = rate, "quota"
    elif routed_to == STRONG:
        direction, shadow_tier = DOWN, CHEAP
        probability, reason = state.reverse_rate, "reverse"
        for segment_id in segment_ids:
            if segment_id in state.opt_out_ids:
                return None
    else:
        return None
    if state.divergence_rate > probability and _diverges(routed_to, shadow_decisions):
        probability, reason = state.divergence_rate, "divergence"
    if probability <= 0.0:
        return None
    return SampleChoice(min(probability, 1.0), reason, direction, routed_to, shadow_tier)


def sample_decide(
    state: SamplingState,
    *,
    application_id: int,
    decision_id: str,
    routed_to: str,
    segment_ids: Iterable[int],
    shadow_decisions: Iterable[dict],
) -> SampleChoice | None:
    """The choice when the decision's draw falls under its π, else None."""
    choice = sample_choose(state, routed_to=routed_to, segment_ids=segment_ids, shadow_decisions=shadow_decisions)
    if choice is None or uniform_draw(application_id, decision_id) >= choice.probability:
        return None
    return choice
