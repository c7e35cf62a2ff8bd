"""Combining per-stratum rate estimates with known stratum weights.

When the population shares W_h of the strata are known (traffic counts per
segment are exact; only the outcome is sampled), the stratified estimator
p_st = Σ W_h p_h has variance Σ W_h² V_h with independent strata
(Cochran 1977, Sampling Techniques, §5.3 and §5A.2). The interval is Wilson on the
effective sample size p_st(1 − p_st)/V, for the same reasons as in ``weighted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from router_ops.stats.intervals import wilson_interval_effective


@dataclass(frozen=True)
class StratifiedRate:
    """A stratified rate estimate.

    estimate: Σ W_h p_h over the strata (weights normalised to sum to 1), None if
        no stratum has data. low, high: interval. variance: Σ W_h² V_h.
    n_eff: effective sample size used for the interval.
    """

    estimate: float | None
    low: float
    high: float
    variance: float | None
    n_eff: float


def _normalised_weights(weights: ArrayLike) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError("weights must be a non-empty one-dimensional array")
    if not np.all(np.isfinite(w)) or w.min() < 0.0 or w.sum() <= 0.0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w / w.sum()


def stratified_rate(
    estimates: ArrayLike,
    variances: ArrayLike,
    weights: ArrayLike,
    *,
    n_eff: float | None = None,
    n: float | None = None,
    confidence: float = 0.95,
) -> StratifiedRate:
    """Stratified estimate from per-stratum estimates p_h, variances V_h and known weights W_h.

    Inputs: three arrays of equal length; weights are normalised to sum to 1.
    Every stratum with positive weight must have an estimate (a stratum with no
    data cannot be represented: drop it and report the uncovered share, as
    ``drift.reweighted_accuracy`` does). ``n_eff`` is the fallback effective size
    for when the combined variance is 0 (all p_h at 0 or 1). ``n``, the total
    sample size, caps n*: a stratum whose sample shows no events has a plug-in
    variance of 0, which would otherwise make n* (and the interval's confidence)
    unboundedly large — the Korn & Graubard (1998) truncation of the design effect at 1.
    Output: StratifiedRate with a Wilson interval on n* = min(p(1−p)/V, n).
    """
    # Cochran 1977, Sampling Techniques, eq. 5.1 and Theorem 5.3; interval: Korn & Graubard 1998.
    w = _normalised_weights(weights)
    p = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    if p.shape != w.shape or v.shape != w.shape:
        raise ValueError("estimates, variances and weights must have the same length")
    if np.any(~np.isfinite(p[w > 0])) or np.any(~np.isfinite(v[w > 0])):
        raise ValueError("every stratum with positive weight needs an estimate and a variance")
    used = w > 0
    estimate = float(np.clip(np.dot(w[used], p[used]), 0.0, 1.0))
    variance = float(np.dot(w[used] ** 2, v[used]))
    pq = estimate * (1.0 - estimate)
    if pq > 0.0 and variance > 0.0:
        n_star = pq / variance
    else:
        n_star = float(n_eff) if n_eff is not None else 0.0
    if n is not None:
        n_star = min(n_star, float(n))
    interval = wilson_interval_effective(estimate, n_star, confidence)
    return StratifiedRate(estimate, interval.low, interval.high, variance, n_star)


def stratified_rate_from_counts(
    successes: ArrayLike,
    trials: ArrayLike,
    weights: ArrayLike,
    *,
    confidence: float = 0.95,
) -> StratifiedRate:
    """Stratified rate from per-stratum binomial counts (x_h of n_h) and known weights W_h.

    V_h = p_h(1 − p_h)/n_h. When the combined variance is 0 (every p_h is 0 or 1)
    the effective size is 1/Σ(W_h²/n_h), the size of a simple random sample
    giving the same variance for a common p. Strata with n_h = 0 must have W_h = 0.
    """
    # Cochran 1977, §5.3 and §5A (stratified proportions); Kish 1965 §11.7 for the fallback n_eff.
    w = _normalised_weights(weights)
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    if x.shape != w.shape or n.shape != w.shape:
        raise ValueError("successes, trials and weights must have the same length")
    if np.any((w > 0) & (n <= 0)):
        raise ValueError("a stratum with positive weight has no trials")
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("successes must lie in [0, trials]")
    safe_n = np.where(n > 0, n, 1.0)
    p = np.where(n > 0, x / safe_n, 0.0)
    v = np.where(n > 0, p * (1.0 - p) / safe_n, 0.0)
    fallback = 1.0 / float(np.sum(np.where(w > 0, w**2 / safe_n, 0.0)))
    total = float(np.sum(np.where(w > 0, n, 0.0)))
    return stratified_rate(p, v, w, n_eff=fallback, n=total, confidence=confidence)
