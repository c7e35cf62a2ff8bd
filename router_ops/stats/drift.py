"""Eval set versus production traffic: mix drift and re-weighted offline accuracy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from router_ops.stats.stratified import stratified_rate_from_counts

# Shares below this are replaced by it before taking logs: an empty bin would make
# PSI infinite. 1e-4 (one in ten thousand) keeps a category absent from one side
# visible (it contributes ≈ share · ln(share / 1e-4)) without letting it dominate.
PSI_EPSILON = 1e-4


def _shares(counts: Mapping[str, float], categories: list[str]) -> np.ndarray:
    values = np.array([float(counts.get(c, 0.0)) for c in categories])
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("counts must be finite and non-negative")
    total = values.sum()
    if total <= 0:
        raise ValueError("a distribution must have a positive total")
    return values / total


def psi_contributions(
    expected: Mapping[str, float], actual: Mapping[str, float], *, epsilon: float = PSI_EPSILON
) -> dict[str, float]:
    """Per-category terms (a − e)·ln(a/e) of the population stability index.

    Inputs: counts (or shares) per category for the reference (``expected``, e.g.
    the eval set) and the comparison (``actual``, e.g. production traffic); missing
    categories count 0; each side is normalised to shares; shares below ``epsilon``
    are raised to ``epsilon`` (no renormalisation). Output: {category: term ≥ 0}.
    """
    # Population stability index, Siddiqi 2006, Credit Risk Scorecards, ch. 8
    # (symmetrised Kullback–Leibler divergence, Jeffreys 1946).
    categories = sorted(set(expected) | set(actual))
    e = np.maximum(_shares(expected, categories), epsilon)
    a = np.maximum(_shares(actual, categories), epsilon)
    terms = (a - e) * np.log(a / e)
    return {c: float(t) for c, t in zip(categories, terms, strict=True)}


def population_stability_index(
    expected: Mapping[str, float], actual: Mapping[str, float], *, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = Σ (a_i − e_i) ln(a_i / e_i) over the union of categories (see ``psi_contributions``).

    Conventional reading (Siddiqi 2006): < 0.1 stable, 0.1–0.25 moderate shift,
    > 0.25 major shift — see ``psi_level``.
    """
    # Siddiqi 2006, Credit Risk Scorecards, ch. 8.
    return float(math.fsum(psi_contributions(expected, actual, epsilon=epsilon).values()))


def psi_level(psi: float) -> str:
    """Shift level: "stable" (< 0.1), "moderate" (0.1–0.25) or "major" (≥ 0.25)."""
    # Rule-of-thumb thresholds, Siddiqi 2006, ch. 8.
    if psi < 0.1:
        return "stable"
    if psi < 0.25:
        return "moderate"
    return "major"


@dataclass(frozen=True)
class ReweightedAccuracy:
    """Offline accuracy re-weighted to the production mix.

    estimate: Σ_h P_h acc_h / P_covered over categories the eval set covers
        (None if it covers none of the traffic).
    low, high: interval for the accuracy *on all of production*: the covered part's
        Wilson-type interval, widened by the uncovered share at worst-case accuracy
        0 (low) and 1 (high), so a blind spot can only widen it.
    offline_accuracy: the unweighted eval-set accuracy, for the side-by-side.
    covered_share: production share of categories with at least one eval item.
    uncovered: those production categories with no eval item, with their shares.
    """

    estimate: float | None
    low: float
    high: float
    offline_accuracy: float | None
    covered_share: float
    uncovered: dict[str, float] = field(default_factory=dict)


def reweighted_accuracy(
    eval_correct: Mapping[str, int],
    eval_total: Mapping[str, int],
    production_counts: Mapping[str, float],
    *,
    confidence: float = 0.95,
) -> ReweightedAccuracy:
    """Post-stratify an eval-set accuracy to the production category mix.

    1. Production shares P_h from ``production_counts`` (treated as known: traffic
       is counted, not sampled).
    2. Per category with eval items: acc_h = correct_h / total_h.
    3. Covered estimate Σ P_h acc_h / P_cov with variance Σ (P_h/P_cov)² acc_h(1−acc_h)/n_h
       and a Wilson interval on its effective size (``stratified_rate_from_counts``).
    4. Production categories without eval items are reported, and their share
       widens the interval to [P_cov·low, P_cov·high + P_unc].
    Eval categories absent from production get weight 0 and do not affect the estimate.
    """
    # Post-stratification, Holt & Smith 1979, JRSS A 142(1); Cochran 1977 §5A.9.
    categories = sorted(set(production_counts))
    prod = _shares(production_counts, categories)
    totals = np.array([int(eval_total.get(c, 0)) for c in categories])
    correct = np.array([int(eval_correct.get(c, 0)) for c in categories])
    if np.any(correct > totals) or np.any(correct < 0):
        raise ValueError("eval_correct must lie in [0, eval_total] per category")
    all_total = sum(int(v) for v in eval_total.values())
    offline = None if all_total == 0 else sum(int(v) for v in eval_correct.values()) / all_total
    covered = totals > 0
    covered_share = float(prod[covered].sum())
    uncovered = {c: float(s) for c, s, cov in zip(categories, prod, covered, strict=True) if not cov and s > 0}
    if covered_share <= 0.0:
        return ReweightedAccuracy(None, 0.0, 1.0, offline, 0.0, uncovered)
    result = stratified_rate_from_counts(correct[covered], totals[covered], prod[covered], confidence=confidence)
    uncovered_share = 1.0 - covered_share
    return ReweightedAccuracy(
        estimate=result.estimate,
        low=covered_share * result.low,
        high=min(1.0, covered_share * result.high + uncovered_share),
        offline_accuracy=offline,
        covered_share=covered_share,
        uncovered=uncovered,
    )
