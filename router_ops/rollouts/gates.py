"""Gate evidence for a rollout's current stage: per segment pass / fail / inconclusive.

`rollout_gate_evidence(rollout)` reads observations from an *evidence source* (a
function of the rollout and its stage) and returns a deterministic JSON-ready dict.
The default source will read judged shadow samples once router_ops/shadow and
router_ops/judging have their models; until then it reports no data (every gate
inconclusive). Tests and simulations replace `evidence_source` on this module.

The hash an approval is bound to (`evidence_hash`) covers what the decision rests
on — rollout, plan, stage, and every verdict — and not the running counts, which
change with each judged sample: hashing the counts would void every approval a
second after it was shown. Verdicts changing (a segment going from pass to
inconclusive, a guardrail failing) changes the hash and voids the approval.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from router_ops.rollouts.estimators import METHOD_WEIGHTED, LossComparison
from router_ops.rollouts.models import Rollout, RolloutStage
from router_ops.stats.sequential import noninferiority, sample_ratio_test

PASS = RolloutStage.VERDICT_PASS
FAIL = RolloutStage.VERDICT_FAIL
INCONCLUSIVE = RolloutStage.VERDICT_INCONCLUSIVE
NOT_EVALUATED = "not_evaluated"
NOT_STARTED = "not_started"

# Sample-ratio mismatch: an anytime-valid p-value this small means assignment is broken, not
# chance — over the whole stage, however often the sweep looks (router_ops/stats/sequential.py).
SRM_P_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmCounts:
    """Judged requests of one arm in one segment, and how many of them lost quality.

    A quality loss is a request routed cheap whose strong answer was judged better,
    so losses / judged estimates the quality loss per request (cheap share × regret).
    """

    judged: int = 0
    losses: int = 0
    # Per-request losses in [0, 1] in judgment order, when the source has them: the
    # gate then uses the variance-adaptive betting CS of router_ops/stats/sequential.py,
    # which needs the arrival order. Counts alone get the order-free stitched bound.
    observations: tuple[float, ...] = ()

    def __post_init__(self):
        if self.observations and len(self.observations) != self.judged:
            raise ValueError("judged must equal the number of observations")


@dataclass(frozen=True)
class SegmentObservation:
    segment: str
    candidate: ArmCounts
    baseline: ArmCounts
    # Judged samples weighted by 1/π (router_ops/rollouts/estimators.py): when set, the
    # bounds and the arms' loss rates come from it rather than from the raw counts.
    comparison: LossComparison | None = None


@dataclass(frozen=True)
class StageObservations:
    segments: tuple[SegmentObservation, ...] = ()
    # Distinct units served by each arm during the stage (sample-ratio-mismatch check).
    # Units, not requests: assignment is per unit, so one busy unit moves many requests.
    assigned_candidate: int | None = None
    assigned_baseline: int | None = None
    # Mean cost per request of each arm (global cost guardrail).
    candidate_cost_per_request: float | None = None
    baseline_cost_per_request: float | None = None
    source: str = "none"
    notes: tuple[str, ...] = field(default_factory=tuple)


EvidenceSource = Callable[[Rollout, RolloutStage], StageObservations]


def no_data_source(rollout: Rollout, stage: RolloutStage) -> StageObservations:
    """Gates that see no data stay inconclusive (tests use it; so may a paused pipeline)."""
    return StageObservations(source="none", notes=("No judged samples are available yet.",))


def judged_samples_source(rollout: Rollout, stage: RolloutStage) -> StageObservations:
    """The default: judged shadow samples and decisions of the stage's window (evidence.py)."""
    # Imported here: evidence.py reads the ingest and shadow models, which import rollouts.models.
    from router_ops.rollouts.evidence import stage_observations

    return stage_observations(rollout, stage)


# Tests and simulations replace this on the module (monkeypatch).
evidence_source: EvidenceSource = judged_samples_source


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _radius(n: int, alpha: float) -> float:
    """Anytime-valid radius for the mean of n Bernoulli outcomes.

    Polynomial stitching (Howard, Ramdas, McAuliffe & Sekhon 2021, Ann. Statist.
    49(2), eq. (1.2)): for 1-sub-Gaussian increments, with probability ≥ 1 − α for
    all t ≥ 1 at once, |S_t| ≤ 1.7 √(t (log log 2t + 0.72 log(5.2/α))). Bernoulli
    outcomes are ½-sub-Gaussian; dividing by t gives the radius on the mean.
    Conservative, and valid however often the gate is looked at.
    """
    if n <= 0:
        return math.inf
    t = float(n)
    return 0.5 * 1.7 * math.sqrt((math.log(math.log(2 * t)) + 0.72 * math.log(5.2 / alpha)) / t)


METHOD_BETTING = "empirical-Bernstein confidence sequences (Waudby-Smith & Ramdas 2023)"
METHOD_STITCHED = "stitched sub-Gaussian confidence sequences (Howard et al. 2021)"


def _difference_bounds(obs: SegmentObservation, alpha: float) -> tuple[float, float, float, str]:
    """(estimate, lower, upper, method) of candidate − baseline loss rate, jointly valid at level α."""
    c, b = obs.candidate, obs.baseline
    if obs.comparison is not None:
        lower, upper = obs.comparison.bounds(alpha)
        estimate = obs.comparison.estimate()
        return (lower + upper) / 2 if estimate is None else estimate, lower, upper, METHOD_WEIGHTED
    estimate = c.losses / c.judged - b.losses / b.judged
    if c.observations and b.observations:
        result = noninferiority(c.observations, b.observations, margin=0.0, alpha=alpha)
        return estimate, result.low, result.high, METHOD_BETTING
    # α/2 per arm: a union bound makes the difference's sequence valid at α.
    radius = _radius(c.judged, alpha / 2) + _radius(b.judged, alpha / 2)
    return estimate, estimate - radius, estimate + radius, METHOD_STITCHED


def _arm(counts: ArmCounts, weighted_loss: float | None = None, weighted: bool = False) -> dict:
    if weighted:
        loss_rate = weighted_loss
    else:
        loss_rate = counts.losses / counts.judged if counts.judged else None
    return {"judged": counts.judged, "losses": counts.losses, "loss_rate": _r(loss_rate)}


def segment_verdicts(
    observations: tuple[SegmentObservation, ...],
    *,
    margin: float,
    alpha: float,
    min_judged: int,
    fail_alpha: float | None = None,
) -> list[dict]:
    """Non-inferiority per segment, Holm step-down across segments.

    1. A segment with fewer than `min_judged` judged requests in either arm is
       inconclusive (and takes no part in the multiplicity correction).
    2. Holm (1979) on the confidence sequences: with m eligible segments and k passed
       so far, the rest are tested at level α/(m − k); passing ones are removed and
       the step repeats until none passes. Pass: upper bound ≤ δ (the convention of
       router_ops/stats/sequential.py).
    3. Fail: lower bound > δ at the Bonferroni level α_fail/m, i.e. clearly worse than
       the baseline by more than the margin. α_fail defaults to α; rollout_gate_evidence
       splits α over the plan's compared stages, so that a candidate no worse than the
       baseline is rolled back with probability ≤ α over the whole rollout.
    """
    fail_alpha = alpha if fail_alpha is None else fail_alpha
    rows: dict[str, dict] = {}
    eligible: list[SegmentObservation] = []
    for obs in sorted(observations, key=lambda o: o.segment):
        cmp = obs.comparison
        row = {
            "segment": obs.segment,
            "candidate": _arm(obs.candidate, cmp and cmp.candidate_loss, cmp is not None),
            "baseline": _arm(obs.baseline, cmp and cmp.baseline_loss, cmp is not None),
        }
        short = min(obs.candidate.judged, obs.baseline.judged)
        if short < min_judged or short == 0:
            row.update(
                verdict=INCONCLUSIVE,
                difference=None,
                lower=None,
                upper=None,
                level=None,
                bounds=None,
                reason=f"needs {min_judged} judged requests per arm; has {obs.candidate.judged} (candidate) "
                f"and {obs.baseline.judged} (baseline)",
            )
        else:
            eligible.append(obs)
        rows[obs.segment] = row
    m = len(eligible)
    remaining = list(eligible)
    passed = 0
    while remaining:
        level = alpha / (m - passed)
        bounds = {obs.segment: _difference_bounds(obs, level) for obs in remaining}
        newly = [obs for obs in remaining if bounds[obs.segment][2] <= margin]
        for obs in newly:
            estimate, lower, upper, method = bounds[obs.segment]
            rows[obs.segment].update(
                verdict=PASS,
                difference=_r(estimate),
                lower=_r(lower),
                upper=_r(upper),
                level=_r(level),
                bounds=method,
                reason=f"upper bound {upper:.4f} ≤ margin {margin}",
            )
        passed += len(newly)
        remaining = [obs for obs in remaining if obs not in newly]
        if not newly:
            break
    for obs in remaining:
        level = fail_alpha / m
        estimate, lower, upper, method = _difference_bounds(obs, level)
        failed = lower > margin
        rows[obs.segment].update(
            verdict=FAIL if failed else INCONCLUSIVE,
            difference=_r(estimate),
            lower=_r(lower),
            upper=_r(upper),
            level=_r(level),
            bounds=method,
            reason=(
                f"lower bound {lower:.4f} > margin {margin}: worse than the baseline beyond the margin"
                if failed
                else f"bounds [{lower:.4f}, {upper:.4f}] still contain the margin {margin}"
            ),
        )
    return [rows[name] for name in sorted(rows)]


def _srm(obs: StageObservations, weight_bp: int) -> dict:
    if weight_bp in (0, 10000):
        return {"verdict": NOT_EVALUATED, "detail": "no traffic split at this stage"}
    if obs.assigned_candidate is None or obs.assigned_baseline is None:
        return {"verdict": NOT_EVALUATED, "detail": "the evidence source gives no assignment counts"}
    if obs.assigned_candidate + obs.assigned_baseline == 0:
        return {"verdict": NOT_EVALUATED, "reason": "no assignments yet", "detail": "no units served yet"}
    share = weight_bp / 10000
    test = sample_ratio_test([obs.assigned_candidate, obs.assigned_baseline], [share, 1 - share])
    return {
        "verdict": FAIL if test.p_value < SRM_P_THRESHOLD else PASS,
        "assigned_candidate": obs.assigned_candidate,
        "assigned_baseline": obs.assigned_baseline,
        "counted": "units",
        "expected_share": _r(share),
        "p_value": _r(test.p_value),
        "threshold": SRM_P_THRESHOLD,
        "test": "sequential Dirichlet-multinomial Bayes factor (Lindon & Malek 2022), valid at every look",
        "detail": (
            f"{obs.assigned_candidate} candidate vs {obs.assigned_baseline} baseline units for an expected "
            f"candidate share of {share:g}; anytime-valid p = {test.p_value:.3g} (pauses below {SRM_P_THRESHOLD})"
        ),
    }


def _cost(obs: StageObservations, max_ratio: float) -> dict:
    cand, base = obs.candidate_cost_per_request, obs.baseline_cost_per_request
    if cand is None or base is None or base <= 0:
        return {"verdict": NOT_EVALUATED, "max_ratio": _r(max_ratio), "detail": "no cost of both arms yet"}
    ratio = cand / base
    return {
        "verdict": PASS if ratio <= max_ratio else FAIL,
        "candidate_cost_per_request": _r(cand),
        "baseline_cost_per_request": _r(base),
        "ratio": _r(ratio),
        "max_ratio": _r(max_ratio),
        "detail": f"candidate costs {ratio:.3g}× the baseline per request (at most {max_ratio:g}×)",
    }


def _stage_summary(stage: RolloutStage | None) -> dict | None:
    if stage is None:
        return None
    return {"order": stage.order, "name": stage.name, "weight_bp": stage.weight_bp, "advance": stage.advance}


def plan_summary(stages: list[RolloutStage]) -> list[dict]:
    return [
        {
            "order": s.order,
            "name": s.name,
            "weight_bp": s.weight_bp,
            "min_duration_s": int(s.min_duration.total_seconds()),
            "min_judged_per_segment": s.min_judged_per_segment,
            "margin": _r(s.margin),
            "alpha": _r(s.alpha),
            "advance": s.advance,
        }
        for s in stages
    ]


def evidence_hash(evidence: dict) -> str:
    """SHA-256 of the verdict fingerprint (see the module docstring for why not the counts)."""
    fingerprint = {
        "rollout": evidence["rollout"],
        "candidate": evidence["candidate"],
        "baseline": evidence["baseline"],
        "plan": evidence["plan"],
        "stage": evidence["stage"],
        "next_stage": evidence["next_stage"],
        "segments": [[s["segment"], s["verdict"]] for s in evidence["segments"]],
        "guardrails": {name: g["verdict"] for name, g in sorted(evidence["guardrails"].items())},
        "overall": evidence["overall"],
    }
    return hashlib.sha256(canonical_json(fingerprint).encode()).hexdigest()


def rollout_gate_evidence(rollout: Rollout, *, source: EvidenceSource | None = None) -> dict:
    """The current stage's gate evidence, deterministic for the same observations.

    1. A rollout not yet running (requested) has no stage under test: the evidence
       is the plan, and the approval it asks for starts the first stage.
    2. Otherwise observations come from `source` (default: this module's
       `evidence_source`), verdicts per segment, then the guardrails.
    3. overall = fail if any segment or guardrail fails; pass if every segment and
       evaluated guardrail passes (and there is at least one segment whenever the
       stage asks for judged samples); inconclusive otherwise.
    4. `hash` is `evidence_hash` of the result.
    """
    stages = list(rollout.stages.all())
    by_order = {s.order: s for s in stages}
    running = rollout.status in Rollout.LIVE
    stage = by_order.get(rollout.current_stage) if running else None
    if rollout.status == Rollout.STATUS_REQUESTED:
        next_stage = by_order.get(0)
    elif running:
        next_stage = by_order.get(rollout.current_stage + 1)
    else:
        next_stage = None
    evidence: dict = {
        "rollout": rollout.pk,
        "candidate": rollout.candidate.name,
        "baseline": rollout.baseline.name,
        "status": rollout.status,
        "plan": plan_summary(stages),
        "stage": _stage_summary(stage),
        "next_stage": _stage_summary(next_stage),
        "segments": [],
        "guardrails": {},
        "overall": NOT_STARTED,
        "failing_segments": [],
        "source": None,
        "method": None,
    }
    if stage is not None:
        observations = (source or evidence_source)(rollout, stage)
        # Each compared stage (one with baseline traffic left) may roll back on its own
        # data: splitting α between them bounds false rollbacks of the whole rollout by α.
        compared = max(1, sum(1 for s in stages if s.weight_bp < 10000))
        fail_alpha = stage.alpha / compared
        segments = segment_verdicts(
            observations.segments,
            margin=stage.margin,
            alpha=stage.alpha,
            min_judged=stage.min_judged_per_segment,
            fail_alpha=fail_alpha,
        )
        guardrails = {"cost": _cost(observations, rollout.max_cost_ratio), "srm": _srm(observations, stage.weight_bp)}
        verdicts = [s["verdict"] for s in segments] + [g["verdict"] for g in guardrails.values()]
        if FAIL in verdicts:
            overall = FAIL
        elif (segments or stage.min_judged_per_segment == 0) and all(v in (PASS, NOT_EVALUATED) for v in verdicts):
            overall = PASS
        else:
            overall = INCONCLUSIVE
        failing = [s["segment"] for s in segments if s["verdict"] == FAIL]
        failing += [f"guardrail:{name}" for name, g in sorted(guardrails.items()) if g["verdict"] == FAIL]
        evidence.update(
            segments=segments,
            guardrails=guardrails,
            overall=overall,
            failing_segments=failing,
            source=observations.source,
            notes=list(observations.notes),
            method={
                "test": "non-inferiority of quality loss per request (candidate − baseline < δ)",
                "bounds": "anytime-valid confidence sequences per arm, α split between arms "
                f"({METHOD_BETTING} on per-request losses; {METHOD_STITCHED} on counts alone)",
                "multiplicity": "Holm step-down across segments for pass; Bonferroni across segments and "
                "compared stages for fail (automatic rollback)",
                "fail_alpha": _r(fail_alpha),
                "margin": _r(stage.margin),
                "alpha": _r(stage.alpha),
                "min_judged_per_segment": stage.min_judged_per_segment,
            },
        )
    evidence["hash"] = evidence_hash(evidence)
    return evidence
