"""Hájek (ratio) estimation of a rate from an unequal-probability sample.

Every sampled decision carries its inclusion probability π_i (the sampler
over-samples rare segments and router divergences, see DESIGN §4). A raw mean of
the sampled outcomes would over-represent those units; weighting each by
w_i = 1/π_i re-weights the sample back to real traffic.

The Hájek estimator  p̂ = Σ w_i y_i / Σ w_i  is a ratio of two Horvitz–Thompson
totals. Its variance is estimated by Taylor linearisation: the ratio behaves like
the HT total of the linearised values u_i = (y_i − p̂) / N̂, so with
z_i = w_i u_i the with-replacement (Hansen–Hurwitz) estimator is
V̂ = n/(n−1) Σ (z_i − z̄)²  (Särndal, Swensson & Wretman 1992, §5.6–5.7 and §2.9).
Because RouterOps samples each decision independently (Poisson sampling), the
exact-design alternative V̂ = Σ (1 − π_i) z_i² is also offered; the
with-replacement form ignores the finite-population factor (1 − π_i) and so is
slightly conservative when some π are large.

The interval is Wilson's score interval on the design-effect-adjusted sample size
n* = p̂(1 − p̂)/V̂ (Korn & Graubard 1998): it inherits Wilson's behaviour near 0
and 1 (where the rates we care about, regret of a few percent, live) instead of a
Wald interval that can cross 0 and under-covers on small effective samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from router_ops.stats.intervals import wilson_interval_effective

VarianceMethod = Literal["with_replacement", "poisson"]


@dataclass(frozen=True)
class WeightedRate:
    """A traffic-weighted rate with its interval and sample description.

    estimate: Hájek estimate (None when the domain has no sampled unit).
    low, high: confidence interval (0 and 1 when there is no data).
    variance: linearised design-based variance of the estimate (None without data).
    n: sampled units in the domain.
    n_eff: Kish effective sample size of the domain weights, (Σw)²/Σw².
    design_n_eff: n* = p̂(1−p̂)/V̂ used for the interval (capped at n; Kish n_eff
        when p̂ is 0 or 1, where the design variance is degenerate).
    weight_total: Σ w over the domain, the estimated number of population units.
    """

    estimate: float | None
    low: float
    high: float
    variance: float | None
    n: int
    n_eff: float
    design_n_eff: float
    weight_total: float

    @property
    def standard_error(self) -> float | None:
        return None if self.variance is None else float(np.sqrt(self.variance))


def _as_probabilities(inclusion_probabilities: ArrayLike) -> NDArray[np.float64]:
    pi = np.asarray(inclusion_probabilities, dtype=float)
    if pi.ndim != 1:
        raise ValueError("inclusion_probabilities must be one-dimensional")
    if pi.size and (not np.all(np.isfinite(pi)) or pi.min() <= 0.0 or pi.max() > 1.0):
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    return pi


def kish_effective_n(weights: ArrayLike) -> float:
    """Kish effective sample size (Σw)² / Σw² of non-negative weights; 0 for no weight."""
    # Kish 1965, Survey Sampling, §11.7 (design effect due to unequal weighting).
    w = np.asarray(weights, dtype=float)
    sum_sq = float(np.sum(w * w))
    return 0.0 if sum_sq == 0.0 else float(np.sum(w)) ** 2 / sum_sq


def hajek_linearised_values(
    outcomes: ArrayLike,
    inclusion_probabilities: ArrayLike,
    domain: ArrayLike | None = None,
) -> tuple[float | None, NDArray[np.float64]]:
    """Hájek estimate of a domain rate and its per-unit linearised values.

    Inputs: outcomes y_i in [0, 1] (ignored, may be NaN, outside the domain),
    inclusion probabilities π_i in (0, 1], optional boolean domain mask; all of
    length n (the whole sample).
    Output: (p̂, z) with z_i = d_i w_i (y_i − p̂) / Σ d w, zero outside the
    domain. Σ z_i = 0 and Var(p̂) ≈ Var(HT total of z / w) — feed z to
    ``design_variance``. p̂ is None (and z all zero) for an empty domain.
    """
    # Särndal, Swensson & Wretman 1992, §5.6 (ratio) and §10.3 (domain estimation).
    pi = _as_probabilities(inclusion_probabilities)
    y = np.asarray(outcomes, dtype=float)
    if y.shape != pi.shape:
        raise ValueError("outcomes and inclusion_probabilities must have the same length")
    d = np.ones_like(pi, dtype=bool) if domain is None else np.asarray(domain, dtype=bool)
    if d.shape != pi.shape:
        raise ValueError("domain must have the same length as the outcomes")
    yd = y[d]
    if yd.size and (not np.all(np.isfinite(yd)) or yd.min() < 0.0 or yd.max() > 1.0):
        raise ValueError("outcomes in the domain must lie in [0, 1]")
    w = np.where(d, 1.0 / pi, 0.0)
    total = float(w.sum())
    z = np.zeros_like(pi)
    if total == 0.0:
        return None, z
    y0 = np.where(d, y, 0.0)
    estimate = float(np.dot(w, y0) / total)
    # Clip float noise so a rate of 0 or 1 is exactly 0 or 1.
    estimate = min(1.0, max(0.0, estimate))
    z = w * (y0 - estimate) / total
    return estimate, z


def design_variance(
    linearised: ArrayLike,
    inclusion_probabilities: ArrayLike,
    method: VarianceMethod = "with_replacement",
) -> float:
    """Design-based variance estimate of Σ z_i from the linearised values z_i = w_i u_i.

    ``with_replacement``: n/(n−1) Σ (z_i − z̄)² (Hansen–Hurwitz approximation; the
    usual default of survey software). ``poisson``: Σ (1 − π_i) z_i², unbiased
    for independent (Poisson) sampling. Output: a variance ≥ 0.
    """
    # Särndal, Swensson & Wretman 1992, §2.9 (pwr, with-replacement) and §3.5 (Poisson sampling).
    z = np.asarray(linearised, dtype=float)
    n = z.size
    if n == 0:
        return 0.0
    if method == "with_replacement":
        factor = n / (n - 1) if n > 1 else 1.0
        return float(factor * np.sum((z - z.mean()) ** 2))
    if method == "poisson":
        pi = _as_probabilities(inclusion_probabilities)
        return float(np.sum((1.0 - pi) * z * z))
    raise ValueError(f"unknown variance method {method!r}")


def weighted_rate(
    outcomes: ArrayLike,
    inclusion_probabilities: ArrayLike,
    domain: ArrayLike | None = None,
    *,
    confidence: float = 0.95,
    variance_method: VarianceMethod = "with_replacement",
) -> WeightedRate:
    """Traffic-weighted rate of ``outcomes`` among sampled units in ``domain``.

    1. Weights w_i = 1/π_i; the domain mask d_i selects the units the rate is
       about (e.g. regret among cheap-routed decisions: d = routed_tier == cheap).
    2. Hájek estimate p̂ = Σ d w y / Σ d w.
    3. Linearised variance over the *whole* sample (units outside the domain
       contribute z_i = 0 but still count in n), so the randomness of the domain's
       sample size is accounted for.
    4. Interval: Wilson on n* = p̂(1−p̂)/V̂, capped at the domain's n (a design
       effect below 1 is truncated, as Korn & Graubard 1998 recommend); at p̂ = 0 or 1
       the design variance is 0 and the Kish n_eff is used instead.
    Output: WeightedRate. An empty domain gives estimate None and interval [0, 1].
    """
    # Hájek 1971 ratio estimator; variance Särndal et al. 1992 §5.6; interval Korn & Graubard 1998.
    pi = _as_probabilities(inclusion_probabilities)
    d = np.ones_like(pi, dtype=bool) if domain is None else np.asarray(domain, dtype=bool)
    estimate, z = hajek_linearised_values(outcomes, pi, d)
    n = int(d.sum())
    weights = np.where(d, 1.0 / pi, 0.0)
    n_eff = kish_effective_n(weights)
    weight_total = float(weights.sum())
    if estimate is None:
        return WeightedRate(None, 0.0, 1.0, None, 0, 0.0, 0.0, 0.0)
    variance = design_variance(z, pi, variance_method)
    design_n = design_effective_n(estimate, variance, n=n, kish_n_eff=n_eff)
    interval = wilson_interval_effective(estimate, design_n, confidence)
    return WeightedRate(
        estimate=estimate,
        low=interval.low,
        high=interval.high,
        variance=variance,
        n=n,
        n_eff=n_eff,
        design_n_eff=design_n,
        weight_total=weight_total,
    )


def hajek_rate(
    outcomes: ArrayLike,
    inclusion_probabilities: ArrayLike,
    *,
    confidence: float = 0.95,
    variance_method: VarianceMethod = "with_replacement",
) -> WeightedRate:
    """Traffic-weighted rate over the whole sample; ``weighted_rate`` without a domain."""
    # Hájek 1971; Särndal, Swensson & Wretman 1992 §5.6.
    return weighted_rate(
        outcomes, inclusion_probabilities, None, confidence=confidence, variance_method=variance_method
    )


def design_effective_n(estimate: float, variance: float, *, n: float, kish_n_eff: float) -> float:
    """Design-effect-adjusted sample size n* = p̂(1−p̂)/V̂, capped at ``n``.

    Falls back to ``kish_n_eff`` when p̂ ∈ {0, 1} or V̂ = 0, where the ratio is 0/0.
    """
    # Korn & Graubard 1998 (effective sample size, design effect truncated at 1).
    pq = estimate * (1.0 - estimate)
    if pq <= 0.0 or variance <= 0.0:
        return min(float(n), kish_n_eff)
    return min(float(n), pq / variance)


def hajek_rate_from_sums(
    *, n: int, sum_w: float, sum_w2: float, sum_wy: float, sum_w2y: float, confidence: float = 0.95
) -> WeightedRate:
    """The Hájek rate and its interval from additive sums over sampled 0/1 outcomes.

    Rollups store Σw, Σw², Σwy and Σw²y (w = 1/π, y ∈ {0, 1}) per hour and segment,
    so a window's estimate needs no raw rows. With z_i = w_i (y_i − p̂)/Σw (Σz = 0):
    Σz² = (Σw²y (1 − 2p̂) + p̂² Σw²) / (Σw)², using y² = y, and the with-replacement
    variance is n/(n−1) Σz². Same estimator and interval as `weighted_rate`.
    """
    # Hájek 1971; variance Särndal et al. 1992 §2.9/§5.6; interval Korn & Graubard 1998.
    if n <= 0 or sum_w <= 0.0:
        return WeightedRate(None, 0.0, 1.0, None, 0, 0.0, 0.0, 0.0)
    estimate = min(1.0, max(0.0, sum_wy / sum_w))
    sum_z2 = max(0.0, (sum_w2y * (1.0 - 2.0 * estimate) + estimate * estimate * sum_w2) / (sum_w * sum_w))
    variance = (n / (n - 1) if n > 1 else 1.0) * sum_z2
    kish = (sum_w * sum_w) / sum_w2 if sum_w2 > 0 else 0.0
    design_n = design_effective_n(estimate, variance, n=n, kish_n_eff=kish)
    interval = wilson_interval_effective(estimate, design_n, confidence)
    return WeightedRate(
        estimate=estimate,
        low=interval.low,
        high=interval.high,
        variance=variance,
        n=n,
        n_eff=kish,
        design_n_eff=design_n,
        weight_total=sum_w,
    )
