"""Many tests at once: error-rate control and slice-versus-complement tests.

Segment discovery tests every frequent slice against the rest of the traffic;
without correction, 5 % of a few hundred null slices would light up. Discovery
controls the false discovery rate (Benjamini–Hochberg); canary gates across
segments, where one false pass is one bad rollout, use Holm's family-wise control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from router_ops.stats.weighted import VarianceMethod, design_variance, hajek_linearised_values


@dataclass(frozen=True)
class MultipleTestResult:
    """reject[i]: hypothesis i rejected at the requested level; adjusted[i]: its adjusted p-value."""

    reject: NDArray[np.bool_]
    adjusted: NDArray[np.float64]


def _adjust(pvalues: ArrayLike, alpha: float, method: str) -> MultipleTestResult:
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError("pvalues must be one-dimensional")
    if p.size == 0:
        return MultipleTestResult(np.zeros(0, dtype=bool), np.zeros(0))
    if np.any(~np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("p-values must lie in [0, 1]")
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method=method)
    return MultipleTestResult(np.asarray(reject, dtype=bool), np.asarray(adjusted, dtype=float))


def benjamini_hochberg(pvalues: ArrayLike, alpha: float = 0.05) -> MultipleTestResult:
    """Step-up false-discovery-rate control at level ``alpha`` (independent or PRDS tests).

    Input: p-values in any order. Output: rejections and BH-adjusted p-values
    (q-values), in the input order.
    """
    # Benjamini & Hochberg 1995, JRSS B 57(1); via statsmodels multipletests("fdr_bh").
    return _adjust(pvalues, alpha, "fdr_bh")


def holm(pvalues: ArrayLike, alpha: float = 0.05) -> MultipleTestResult:
    """Step-down family-wise error control at level ``alpha`` (any dependence).

    Input: p-values in any order. Output: rejections and Holm-adjusted p-values.
    """
    # Holm 1979, Scand. J. Statist. 6(2); via statsmodels multipletests("holm").
    return _adjust(pvalues, alpha, "holm")


@dataclass(frozen=True)
class SliceTest:
    """Result of a slice-versus-complement test.

    slice_rate, complement_rate: Hájek estimates (None when a side is empty).
    difference: slice_rate − complement_rate. standard_error: the null (pooled)
    standard error of the difference used for z. p_value: per ``alternative``.
    """

    slice_rate: float | None
    complement_rate: float | None
    difference: float | None
    standard_error: float
    z: float
    p_value: float


def slice_vs_complement_test(
    outcomes: ArrayLike,
    inclusion_probabilities: ArrayLike,
    in_slice: ArrayLike,
    domain: ArrayLike | None = None,
    *,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
    variance_method: VarianceMethod = "with_replacement",
) -> SliceTest:
    """Weighted two-proportion z-test of a slice against its complement.

    1. Within ``domain`` (default: all units; e.g. cheap-routed for regret), split the
       sample into the slice S and its complement C; Hájek rates p_S and p_C.
    2. Null variance of p_S − p_C by linearisation around the pooled Hájek rate p̄
       (the analogue of the pooled two-proportion test): residuals y − p̄ enter
       z_i = w_i (y_i − p̄)(d_Si/N̂_S − d_Ci/N̂_C) and V̂₀ = design_variance(z).
       S and C are disjoint domains of one sample, so no covariance term is needed
       beyond what the per-unit z_i already carry.
    3. z = (p_S − p_C)/√V̂₀; p-value from the standard normal.
    Output: SliceTest; an empty side or V̂₀ = 0 (all outcomes equal) gives p = 1.
    ``alternative="greater"`` tests for excess regret in the slice.
    """
    # Design-based Wald test on Hájek domain estimates (Rao & Scott 1984 setting;
    # linearisation per Särndal, Swensson & Wretman 1992 §5.6 and §10.3).
    pi = np.asarray(inclusion_probabilities, dtype=float)
    d = np.ones_like(pi, dtype=bool) if domain is None else np.asarray(domain, dtype=bool)
    s = np.asarray(in_slice, dtype=bool)
    if s.shape != pi.shape or d.shape != pi.shape:
        raise ValueError("in_slice and domain must have the same length as the outcomes")
    in_s, in_c = d & s, d & ~s
    p_s, _ = hajek_linearised_values(outcomes, pi, in_s)
    p_c, _ = hajek_linearised_values(outcomes, pi, in_c)
    if p_s is None or p_c is None:
        return SliceTest(p_s, p_c, None, 0.0, 0.0, 1.0)
    pooled, _ = hajek_linearised_values(outcomes, pi, d)
    assert pooled is not None
    y = np.where(d, np.asarray(outcomes, dtype=float), 0.0)
    w = 1.0 / pi
    n_s, n_c = float(w[in_s].sum()), float(w[in_c].sum())
    z_i = w * (y - pooled) * (in_s / n_s - in_c / n_c)
    variance = design_variance(z_i, pi, variance_method)
    difference = p_s - p_c
    if variance <= 0.0:
        return SliceTest(p_s, p_c, difference, 0.0, 0.0, 1.0)
    se = float(np.sqrt(variance))
    z = difference / se
    if alternative == "two-sided":
        p_value = 2.0 * float(norm.sf(abs(z)))
    elif alternative == "greater":
        p_value = float(norm.sf(z))
    elif alternative == "less":
        p_value = float(norm.cdf(z))
    else:
        raise ValueError(f"unknown alternative {alternative!r}")
    return SliceTest(p_s, p_c, difference, se, z, min(1.0, p_value))
