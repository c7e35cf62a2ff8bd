"""Intervals for plain (unweighted) proportions.

Wilson's score interval is the default everywhere a count of successes out of n
independent trials is shown: unlike the Wald interval it stays inside [0, 1],
never collapses to a point at 0/n or n/n, and keeps close to nominal coverage for
small n and rates near the boundaries (Newcombe 1998; Brown, Cai & DasGupta 2001).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    ``estimate`` is None when there is no data (n == 0); ``low``/``high`` are then
    the uninformative bounds 0 and 1, so a chart can still draw the interval.
    """

    estimate: float | None
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def z_value(confidence: float) -> float:
    """Two-sided standard-normal critical value for ``confidence`` in (0, 1)."""
    # Standard normal quantile (any textbook, e.g. Casella & Berger 2002 §9.2).
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    Inputs: ``successes`` in [0, n] and ``n`` >= 0 trials. Both may be
    non-integer: the weighted estimators pass an *effective* count
    (p̂ · n_eff, n_eff), as in Korn & Graubard (1998).
    Output: Interval(estimate=successes/n, low, high); for n == 0 the estimate
    is None and the interval is [0, 1].
    """
    # Wilson 1927, "Probable inference, the law of succession, and statistical inference";
    # Newcombe 1998 method 3 (score interval without continuity correction).
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes!r} of {n!r}")
    if n == 0:
        return Interval(estimate=None, low=0.0, high=1.0)
    z = z_value(confidence)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # Exact endpoints at 0/n and n/n: rounding must not leave 1e-17 above 0.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(estimate=p, low=low, high=high)


def wilson_interval_effective(estimate: float, n_eff: float, confidence: float = 0.95) -> Interval:
    """Wilson interval for a rate ``estimate`` observed on an effective sample of ``n_eff``.

    The complex-survey adaptation: replace (successes, n) by (p̂·n*, n*), where
    n* is the design-effect-adjusted sample size. Output as ``wilson_interval``.
    """
    # Korn & Graubard 1998, "Confidence intervals for proportions with small expected
    # number of positive counts estimated from survey data", Survey Methodology 24(2).
    if n_eff <= 0:
        return Interval(estimate=None, low=0.0, high=1.0)
    p = min(1.0, max(0.0, estimate))
    return wilson_interval(p * n_eff, n_eff, confidence)
