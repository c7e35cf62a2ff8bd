"""The judged-data evidence source: per segment (and all traffic), the quality loss per
request of the baseline and of the candidate in the current stage's window.

Loss of a request = served cheap AND the strong answer judged better (regret); so a
router's loss per request = cheap share × regret (DESIGN.md §5, §6). The statistics
(weights 1/π, confidence sequences) are in estimators.py; this module only counts.

Dark stage (weight 0) — paired, on the same requests. Every decision in the window
was served by the baseline and carries the candidate's decision in
`shadow_decisions`. Per request, D = loss(candidate) − loss(baseline):

    baseline cheap,  candidate cheap   D = 0 (same answer served)
    baseline cheap,  candidate strong  D = −1 if the judged strong answer was better
                                       (a cheap_to_strong sample: the regret the candidate avoids)
    baseline strong, candidate cheap   D = +1 if the strong primary was judged better than the
                                       cheap shadow (a strong_to_cheap, reverse, sample)
    baseline strong, candidate strong  D = 0

so mean D = share(strong→cheap) × r_reverse − share(cheap→strong) × r_regret, where
the shares are exact counts of the window's decisions and the two rates are
estimated from the judged samples of those strata, weighted by 1/π. Decisions that
do not carry the candidate's shadow decision cannot be paired and are left out (the
notes count them).

Canary stages (weight > 0) — two independent arms: decisions carry their router
version, so each arm's loss is its cheap share × its regret (cheap_to_strong samples
of that arm's decisions); shares get their own confidence bound here because an
arm's traffic is a random sample of units.

The window is [stage start, stage end or open): a stage judges only what happened
while it ran. Samples not judged yet simply are not in the stream yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection

from router_ops.ingest.models import Decision
from router_ops.rollouts.estimators import JudgedStream, LossComparison, LossTerm
from router_ops.rollouts.gates import ArmCounts, SegmentObservation, StageObservations
from router_ops.rollouts.models import Rollout, RolloutStage
from router_ops.shadow.models import ShadowSample
from segments.models import Segment

CHEAP = "cheap"
ALL_TRAFFIC = "all-traffic"
ALL_ID = 0  # no real segment has id 0: the "all traffic" row in the queries below
SHADOW_BETTER = "shadow_better"
PRIMARY_BETTER = "primary_better"

D = Decision._meta.db_table
S = ShadowSample._meta.db_table
# The f-strings below interpolate only table names and constants; values are always bound parameters.

# The candidate's tier from shadow_decisions (first entry naming it), per decision.
_CANDIDATE_TIER = (
    "(SELECT sd->>'routed_to' FROM jsonb_array_elements(d.shadow_decisions) sd "
    "WHERE sd->>'router_version' = %(candidate)s LIMIT 1)"
)
_WINDOW = "d.application_id = %(app)s AND d.occurred_at >= %(start)s AND (%(end)s::timestamptz IS NULL OR d.occurred_at < %(end)s)"

_DARK_COUNTS = f"""
WITH w AS (
    SELECT d.routed_to = 'cheap' AS b_cheap, {_CANDIDATE_TIER} AS c_tier, d.segment_ids, d.cost_usd
    FROM {D} d WHERE {_WINDOW} AND d.router_version_id = %(baseline_id)s
)
SELECT seg, b_cheap, c_tier = 'cheap' AS c_cheap, count(*), coalesce(sum(cost_usd), 0), count(cost_usd)
FROM w, unnest(w.segment_ids || {ALL_ID}) AS seg
WHERE c_tier IS NOT NULL
GROUP BY 1, 2, 3
UNION ALL
SELECT -1, false, false, count(*), 0, 0 FROM w WHERE c_tier IS NULL
"""

# Judged samples in judgment order (the confidence sequences need a data-independent order).
_DARK_SAMPLES = f"""
SELECT s.direction, s.inclusion_probability, s.verdict, d.routed_to = 'cheap', {_CANDIDATE_TIER} = 'cheap',
       d.segment_ids
FROM {S} s JOIN {D} d ON d.id = s.decision_id
WHERE s.application_id = %(app)s AND s.verdict <> '' AND {_WINDOW} AND d.router_version_id = %(baseline_id)s
  AND {_CANDIDATE_TIER} IS NOT NULL
ORDER BY s.judged_at NULLS LAST, s.id
"""

_CANARY_COUNTS = f"""
SELECT seg, d.router_version_id = %(candidate_id)s, d.routed_to = 'cheap', count(*),
       coalesce(sum(d.cost_usd), 0), count(d.cost_usd)
FROM {D} d, unnest(d.segment_ids || {ALL_ID}) AS seg
WHERE {_WINDOW} AND d.router_version_id IN (%(candidate_id)s, %(baseline_id)s)
GROUP BY 1, 2, 3
"""

# Distinct units per arm (sample-ratio check): assignment is per unit, and a unit's requests
# are not independent draws, so a few busy units would make request counts look skewed.
# (DISTINCT in a subquery can hash; count(DISTINCT …) always sorts: 1.0 s against 2.2 s over
# 2M decisions in bench/gates.py.)
_CANARY_UNITS = f"""
SELECT is_candidate, count(*) FROM (
    SELECT DISTINCT d.router_version_id = %(candidate_id)s AS is_candidate, d.unit_id
    FROM {D} d WHERE {_WINDOW} AND d.router_version_id IN (%(candidate_id)s, %(baseline_id)s)
) units
GROUP BY 1
"""

_CANARY_SAMPLES = f"""
SELECT d.router_version_id = %(candidate_id)s, s.inclusion_probability, s.verdict, d.segment_ids
FROM {S} s JOIN {D} d ON d.id = s.decision_id
WHERE s.application_id = %(app)s AND s.verdict <> '' AND s.direction = 'cheap_to_strong'
  AND d.routed_to = 'cheap' AND {_WINDOW} AND d.router_version_id IN (%(candidate_id)s, %(baseline_id)s)
ORDER BY s.judged_at NULLS LAST, s.id
"""


@dataclass
class _Stream:
    losses: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def add(self, loss: bool, pi: float) -> None:
        self.losses.append(int(loss))
        self.weights.append(1.0 / pi)

    def frozen(self) -> JudgedStream:
        return JudgedStream(tuple(self.losses), tuple(self.weights))


def _segment_names(rollout: Rollout) -> dict[int, str]:
    names = dict(Segment.objects.filter(application_id=rollout.application_id, active=True).values_list("id", "slug"))
    return {ALL_ID: ALL_TRAFFIC, **names}


def _params(rollout: Rollout, stage: RolloutStage) -> dict:
    return {
        "app": rollout.application_id,
        "candidate": rollout.candidate.name,
        "candidate_id": rollout.candidate_id,
        "baseline_id": rollout.baseline_id,
        "start": stage.started_at,
        "end": stage.ended_at,
    }


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _mean(total, count) -> float | None:
    return float(total) / count if count else None


def dark_observations(rollout: Rollout, stage: RolloutStage) -> StageObservations:
    """Paired per-segment comparison on the baseline's requests (see the module docstring)."""
    params = _params(rollout, stage)
    names = _segment_names(rollout)
    # counts[seg][(b_cheap, c_cheap)] = decisions
    counts: dict[int, dict[tuple[bool, bool], int]] = defaultdict(lambda: defaultdict(int))
    costs: dict[bool, list[float]] = {True: [0.0, 0], False: [0.0, 0]}
    unpaired = 0
    for seg, b_cheap, c_cheap, n, cost_sum, cost_n in _rows(_DARK_COUNTS, params):
        if seg == -1:
            unpaired = n
            continue
        if seg not in names:
            continue
        counts[seg][(b_cheap, c_cheap)] += n
        if seg == ALL_ID:
            costs[b_cheap][0] += float(cost_sum)
            costs[b_cheap][1] += cost_n
    # Streams per segment: regret of cheap-routed requests the candidate would send strong (U),
    # reverse-sample regret of strong-routed ones it would send cheap (R), and the regret of all
    # the baseline's cheap requests (for the baseline's own loss, shown beside the difference).
    up: dict[int, _Stream] = defaultdict(_Stream)
    reverse: dict[int, _Stream] = defaultdict(_Stream)
    cheap_all: dict[int, _Stream] = defaultdict(_Stream)
    judged: dict[int, int] = defaultdict(int)
    losses_c: dict[int, int] = defaultdict(int)
    losses_b: dict[int, int] = defaultdict(int)
    for direction, pi, verdict, b_cheap, c_cheap, segment_ids in _rows(_DARK_SAMPLES, params):
        for seg in (ALL_ID, *segment_ids):
            if seg not in names:
                continue
            if b_cheap and direction == ShadowSample.DIRECTION_UP:
                regret = verdict == SHADOW_BETTER
                judged[seg] += 1
                cheap_all[seg].add(regret, pi)
                losses_b[seg] += regret
                if c_cheap:
                    losses_c[seg] += regret
                else:
                    up[seg].add(regret, pi)
            elif not b_cheap and direction == ShadowSample.DIRECTION_DOWN:
                judged[seg] += 1
                if c_cheap:
                    loss = verdict == PRIMARY_BETTER
                    reverse[seg].add(loss, pi)
                    losses_c[seg] += loss
    segments = []
    for seg, name in names.items():
        c = counts.get(seg, {})
        total = sum(c.values())
        if total == 0:
            continue
        n_up, n_reverse = c.get((True, False), 0), c.get((False, True), 0)
        n_cheap = c.get((True, True), 0) + n_up
        comparison = LossComparison(
            candidate_terms=(LossTerm(n_reverse, total, reverse[seg].frozen(), exact=True),),
            baseline_terms=(LossTerm(n_up, total, up[seg].frozen(), exact=True),),
            paired=True,
        )
        regret = cheap_all[seg].frozen().rate()
        baseline_loss = None if regret is None else n_cheap / total * regret
        difference = comparison.estimate()
        candidate_loss = None if baseline_loss is None or difference is None else baseline_loss + difference
        comparison = LossComparison(
            comparison.candidate_terms, comparison.baseline_terms, candidate_loss, baseline_loss, paired=True
        )
        segments.append(
            SegmentObservation(
                name,
                ArmCounts(judged[seg], losses_c[seg]),
                ArmCounts(judged[seg], losses_b[seg]),
                comparison,
            )
        )
    # The candidate is not served: its cost per request is the baseline's cost per tier
    # weighted by the tiers the candidate would have chosen.
    cheap_cost, strong_cost = _mean(*costs[True]), _mean(*costs[False])
    all_counts = counts.get(ALL_ID, {})
    total = sum(all_counts.values())
    candidate_cost = baseline_cost = None
    if total and cheap_cost is not None and strong_cost is not None:
        c_cheap = sum(n for (_, cc), n in all_counts.items() if cc)
        b_cheap = sum(n for (bc, _), n in all_counts.items() if bc)
        candidate_cost = (c_cheap * cheap_cost + (total - c_cheap) * strong_cost) / total
        baseline_cost = (b_cheap * cheap_cost + (total - b_cheap) * strong_cost) / total
    notes = [f"Dark stage: the candidate's shadow decisions on {total} baseline requests, paired."]
    if unpaired:
        notes.append(f"{unpaired} requests carry no shadow decision of {rollout.candidate.name} and are left out.")
    return StageObservations(
        segments=tuple(segments),
        candidate_cost_per_request=candidate_cost,
        baseline_cost_per_request=baseline_cost,
        source="judged_samples",
        notes=tuple(notes),
    )


def canary_observations(rollout: Rollout, stage: RolloutStage) -> StageObservations:
    """Two independent arms: the candidate's decisions against the baseline's, same window."""
    params = _params(rollout, stage)
    names = _segment_names(rollout)
    # counts[seg][is_candidate] = [decisions, cheap decisions]
    counts: dict[int, dict[bool, list[int]]] = defaultdict(lambda: {True: [0, 0], False: [0, 0]})
    costs = {True: [0.0, 0], False: [0.0, 0]}
    for seg, is_candidate, cheap, n, cost_sum, cost_n in _rows(_CANARY_COUNTS, params):
        if seg not in names:
            continue
        counts[seg][is_candidate][0] += n
        if cheap:
            counts[seg][is_candidate][1] += n
        if seg == ALL_ID:
            costs[is_candidate][0] += float(cost_sum)
            costs[is_candidate][1] += cost_n
    streams: dict[tuple[int, bool], _Stream] = defaultdict(_Stream)
    for is_candidate, pi, verdict, segment_ids in _rows(_CANARY_SAMPLES, params):
        for seg in (ALL_ID, *segment_ids):
            if seg in names:
                streams[(seg, is_candidate)].add(verdict == SHADOW_BETTER, pi)
    segments = []
    for seg, name in names.items():
        if seg not in counts:
            continue
        terms, arms = {}, {}
        for arm in (True, False):
            total, cheap = counts[seg][arm]
            stream = streams[(seg, arm)].frozen()
            terms[arm] = LossTerm(cheap, total, stream, exact=False)
            arms[arm] = ArmCounts(stream.judged, sum(stream.losses))
        comparison = LossComparison(
            candidate_terms=(terms[True],),
            baseline_terms=(terms[False],),
            candidate_loss=terms[True].estimate() if counts[seg][True][0] else None,
            baseline_loss=terms[False].estimate() if counts[seg][False][0] else None,
        )
        segments.append(SegmentObservation(name, arms[True], arms[False], comparison))
    all_counts = counts.get(ALL_ID, {True: [0, 0], False: [0, 0]})
    units = dict(_rows(_CANARY_UNITS, params))
    return StageObservations(
        segments=tuple(segments),
        assigned_candidate=units.get(True, 0),
        assigned_baseline=units.get(False, 0),
        candidate_cost_per_request=_mean(*costs[True]),
        baseline_cost_per_request=_mean(*costs[False]),
        source="judged_samples",
        notes=(
            f"Canary stage: {all_counts[True][0]} requests from {units.get(True, 0)} units served by "
            f"{rollout.candidate.name}, {all_counts[False][0]} requests from {units.get(False, 0)} units by "
            f"{rollout.baseline.name}.",
        ),
    )


def stage_observations(rollout: Rollout, stage: RolloutStage) -> StageObservations:
    if stage.started_at is None:
        return StageObservations(source="judged_samples", notes=("The stage has not started.",))
    if stage.is_dark:
        return dark_observations(rollout, stage)
    return canary_observations(rollout, stage)
