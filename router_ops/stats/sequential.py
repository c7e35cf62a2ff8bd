"""Anytime-valid confidence sequences and sequential non-inferiority for canary gates.

A canary page is watched continuously and the gate re-checked after every batch;
a fixed-n interval re-checked that way would cross any threshold eventually.
A confidence sequence (CS) (C_t) covers the mean at *all* times simultaneously:
P(∃t: μ ∉ C_t) ≤ α, so the bound may be read, and acted on, whenever one likes.

We use the predictable plug-in empirical-Bernstein CS of Waudby-Smith & Ramdas
(2023, "Estimating means of bounded random variables by betting", JRSS B 86(1),
Theorem 2): for observations in [0, 1] with conditional mean μ,

  μ̂_t = (1/2 + Σ_{i≤t} X_i)/(t + 1),     σ̂²_t = (1/4 + Σ_{i≤t} (X_i − μ̂_i)²)/(t + 1),
  λ_t = min(√(2 log(2/α) / (σ̂²_{t−1} · t · log(1 + t))), 1/2),
  v_i = 4 (X_i − μ̂_{i−1})²,   ψ_E(λ) = (−log(1 − λ) − λ)/4,
  C_t = Σλ_i X_i / Σλ_i  ±  (log(2/α) + Σ v_i ψ_E(λ_i)) / Σλ_i.

It is variance-adaptive — regret rates of a few percent have variance far below
the 1/4 a Hoeffding-type CS must assume — and closed-form, so it is a fold over
running sums (``ConfidenceSequenceState``) and vectorises over many streams.
Each two-sided CS at level α is the intersection of two one-sided CSs at α/2.
Observations must arrive in a fixed order (e.g. by judgment time): λ_t is
predictable, so the same data in the same order always give the same bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

# WSR 2023 suggest truncating the bets at 1/2 or 3/4; 1/2 keeps ψ_E(λ) moderate.
LAMBDA_MAX = 0.5


@dataclass(frozen=True)
class ConfidenceSequencePath:
    """Bounds after each observation: low[..., t], high[..., t] for t = 1..T, and the running mean."""

    low: NDArray[np.float64]
    high: NDArray[np.float64]
    mean: NDArray[np.float64]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _scaled(x: ArrayLike, lower: float, upper: float) -> NDArray[np.float64]:
    if not upper > lower:
        raise ValueError("upper must exceed lower")
    arr = np.asarray(x, dtype=float)
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < lower or arr.max() > upper):
        raise ValueError(f"observations must lie in [{lower}, {upper}]")
    return (arr - lower) / (upper - lower)


def confidence_sequence(
    observations: ArrayLike,
    *,
    alpha: float = 0.05,
    lower: float = 0.0,
    upper: float = 1.0,
    running_intersection: bool = True,
) -> ConfidenceSequencePath:
    """Empirical-Bernstein confidence sequence for the mean of bounded observations.

    Inputs: observations in [lower, upper] along the last axis, in arrival order
    (a 2-D array is many independent streams); level α. Output: the bounds after
    every observation, intersected over time if ``running_intersection`` (still
    valid, and monotone). Simultaneously over all t, P(μ ∉ [low_t, high_t]) ≤ α.
    """
    # Waudby-Smith & Ramdas 2023, JRSS B, Theorem 2 (predictable plug-in empirical Bernstein CS).
    _check_alpha(alpha)
    x = _scaled(observations, lower, upper)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError("need at least one observation")
    n = x.shape[-1]
    t = np.arange(1, n + 1, dtype=float)
    log_term = math.log(2.0 / alpha)
    mu = (0.5 + np.cumsum(x, axis=-1)) / (t + 1.0)
    mu_prev = np.concatenate([np.full(x.shape[:-1] + (1,), 0.5), mu[..., :-1]], axis=-1)
    sigma2 = (0.25 + np.cumsum((x - mu) ** 2, axis=-1)) / (t + 1.0)
    sigma2_prev = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), sigma2[..., :-1]], axis=-1)
    lam = np.minimum(np.sqrt(2.0 * log_term / (sigma2_prev * t * np.log1p(t))), LAMBDA_MAX)
    v = 4.0 * (x - mu_prev) ** 2
    psi = (-np.log1p(-lam) - lam) / 4.0
    sum_lam = np.cumsum(lam, axis=-1)
    centre = np.cumsum(lam * x, axis=-1) / sum_lam
    radius = (log_term + np.cumsum(v * psi, axis=-1)) / sum_lam
    low = np.clip(centre - radius, 0.0, 1.0)
    high = np.clip(centre + radius, 0.0, 1.0)
    if running_intersection:
        low = np.maximum.accumulate(low, axis=-1)
        high = np.minimum.accumulate(high, axis=-1)
        # Intersections can only cross if the CS already failed; keep it an interval.
        high = np.maximum(high, low)
    span = upper - lower
    mean = np.cumsum(x, axis=-1) / t
    return ConfidenceSequencePath(lower + span * low, lower + span * high, lower + span * mean)


@dataclass(frozen=True)
class ConfidenceSequenceState:
    """Running sums of the empirical-Bernstein CS, so a gate can fold in new observations.

    Store it (all floats) and call ``confidence_sequence_update`` with each new
    observation; ``low``/``high`` are the running-intersection bounds on the
    original scale. Equal to ``confidence_sequence`` over the same data in the same order.
    """

    alpha: float
    lower: float = 0.0
    upper: float = 1.0
    t: int = 0
    sum_x: float = 0.0
    sum_sq: float = 0.0
    sum_lambda: float = 0.0
    sum_lambda_x: float = 0.0
    sum_v_psi: float = 0.0
    low_scaled: float = 0.0
    high_scaled: float = 1.0

    @property
    def low(self) -> float:
        return self.lower + (self.upper - self.lower) * self.low_scaled

    @property
    def high(self) -> float:
        return self.lower + (self.upper - self.lower) * self.high_scaled

    @property
    def mean(self) -> float | None:
        if self.t == 0:
            return None
        return self.lower + (self.upper - self.lower) * self.sum_x / self.t


def confidence_sequence_start(
    *, alpha: float = 0.05, lower: float = 0.0, upper: float = 1.0
) -> ConfidenceSequenceState:
    """An empty CS state (bounds = [lower, upper]) at level α for observations in [lower, upper]."""
    # Waudby-Smith & Ramdas 2023, Theorem 2.
    _check_alpha(alpha)
    if not upper > lower:
        raise ValueError("upper must exceed lower")
    return ConfidenceSequenceState(alpha=alpha, lower=lower, upper=upper)


def confidence_sequence_update(state: ConfidenceSequenceState, observations: ArrayLike) -> ConfidenceSequenceState:
    """Fold observations (scalar or 1-D, in arrival order) into ``state``; returns the new state."""
    # Waudby-Smith & Ramdas 2023, Theorem 2 (the same recursion as ``confidence_sequence``).
    xs = np.atleast_1d(_scaled(observations, state.lower, state.upper))
    if xs.ndim != 1:
        raise ValueError("observations must be a scalar or one-dimensional")
    log_term = math.log(2.0 / state.alpha)
    t, sum_x, sum_sq = state.t, state.sum_x, state.sum_sq
    sum_lam, sum_lam_x, sum_v_psi = state.sum_lambda, state.sum_lambda_x, state.sum_v_psi
    low, high = state.low_scaled, state.high_scaled
    for x in xs.tolist():
        mu_prev = (0.5 + sum_x) / (t + 1)
        sigma2_prev = (0.25 + sum_sq) / (t + 1)
        t += 1
        lam = min(math.sqrt(2.0 * log_term / (sigma2_prev * t * math.log1p(t))), LAMBDA_MAX)
        sum_x += x
        mu = (0.5 + sum_x) / (t + 1)
        sum_sq += (x - mu) ** 2
        sum_lam += lam
        sum_lam_x += lam * x
        sum_v_psi += 4.0 * (x - mu_prev) ** 2 * (-math.log1p(-lam) - lam) / 4.0
        centre = sum_lam_x / sum_lam
        radius = (log_term + sum_v_psi) / sum_lam
        low = max(low, min(1.0, max(0.0, centre - radius)))
        high = max(low, min(high, min(1.0, max(0.0, centre + radius))))
    return replace(
        state,
        t=t,
        sum_x=sum_x,
        sum_sq=sum_sq,
        sum_lambda=sum_lam,
        sum_lambda_x=sum_lam_x,
        sum_v_psi=sum_v_psi,
        low_scaled=low,
        high_scaled=high,
    )


Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class NonInferiority:
    """Sequential non-inferiority verdict for candidate − baseline mean loss ≤ margin.

    verdict: "pass" when the upper bound of the difference is ≤ margin, "fail" when
    the lower bound exceeds the margin, otherwise "inconclusive".
    difference: observed mean difference (None without data on both arms).
    low, high: anytime-valid bounds on the difference at this moment.
    """

    verdict: Verdict
    difference: float | None
    low: float
    high: float
    margin: float
    alpha: float
    n_candidate: int
    n_baseline: int


def _verdict(low: float, high: float, margin: float) -> Verdict:
    if high <= margin:
        return "pass"
    if low > margin:
        return "fail"
    return "inconclusive"


def noninferiority_from_states(
    candidate: ConfidenceSequenceState, baseline: ConfidenceSequenceState, *, margin: float
) -> NonInferiority:
    """Verdict from two arms' CS states built at the same level α (see ``noninferiority``)."""
    # Two-arm split of Waudby-Smith & Ramdas 2023 CSs (union bound, one side per arm).
    if candidate.alpha != baseline.alpha:
        raise ValueError("both arms must use the same alpha")
    low = candidate.low - baseline.high
    high = candidate.high - baseline.low
    c_mean, b_mean = candidate.mean, baseline.mean
    difference = None if c_mean is None or b_mean is None else c_mean - b_mean
    return NonInferiority(
        verdict=_verdict(low, high, margin),
        difference=difference,
        low=low,
        high=high,
        margin=margin,
        alpha=candidate.alpha,
        n_candidate=candidate.t,
        n_baseline=baseline.t,
    )


def noninferiority(
    candidate: ArrayLike,
    baseline: ArrayLike,
    *,
    margin: float,
    alpha: float = 0.05,
    lower: float = 0.0,
    upper: float = 1.0,
) -> NonInferiority:
    """Anytime-valid non-inferiority check of two independent arms' mean loss per request.

    1. Each arm gets a two-sided CS at level α over its observations (in
       [lower, upper], arrival order) — the intersection of an upper and a lower
       one-sided CS at α/2 each.
    2. Difference bounds: [L_c − U_b, U_c − L_b].
    3. "pass" if U_c − L_b ≤ margin; "fail" if L_c − U_b > margin; else "inconclusive".
    Error control, at every time simultaneously: a wrong "pass" (true difference
    > margin) needs U_c or L_b to miss, probability ≤ α/2 + α/2 = α; a wrong
    "fail" (true difference ≤ margin) needs L_c or U_b to miss, also ≤ α.
    Inconclusive until both arms have enough data to decide.
    """
    # Waudby-Smith & Ramdas 2023 (CS per arm); α split between arms by the union bound.
    c = confidence_sequence_update(confidence_sequence_start(alpha=alpha, lower=lower, upper=upper), candidate)
    b = confidence_sequence_update(confidence_sequence_start(alpha=alpha, lower=lower, upper=upper), baseline)
    return noninferiority_from_states(c, b, margin=margin)


def noninferiority_path(
    candidate: ArrayLike,
    baseline: ArrayLike,
    *,
    margin: float,
    alpha: float = 0.05,
    lower: float = 0.0,
    upper: float = 1.0,
) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
    """Verdicts after each step t when both arms have t observations (equal-length arrays, last axis).

    Output: (verdicts, low, high) arrays; vectorised over leading axes. For
    simulations and for charting a gate's history.
    """
    # As ``noninferiority``, evaluated at every t.
    c = confidence_sequence(candidate, alpha=alpha, lower=lower, upper=upper)
    b = confidence_sequence(baseline, alpha=alpha, lower=lower, upper=upper)
    low = c.low - b.high
    high = c.high - b.low
    verdicts = np.where(high <= margin, "pass", np.where(low > margin, "fail", "inconclusive"))
    return verdicts, low, high


def noninferiority_paired(
    differences: ArrayLike,
    *,
    margin: float,
    alpha: float = 0.05,
    bound: float = 1.0,
) -> NonInferiority:
    """Non-inferiority on paired differences D_i = loss_candidate − loss_baseline ∈ [−bound, bound].

    For when both routers are scored on the same request (the candidate as a
    shadow router in the ``dark`` stage). One CS on D at level 2α: each of its
    one-sided halves misses with probability ≤ α, and a wrong pass (or a wrong
    fail) needs only one of them to miss. Requires α < 1/2.
    """
    # Waudby-Smith & Ramdas 2023, Theorem 2 on the differenced stream.
    if not 0.0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 1/2) for the paired check")
    state = confidence_sequence_update(
        confidence_sequence_start(alpha=2.0 * alpha, lower=-bound, upper=bound), differences
    )
    return NonInferiority(
        verdict=_verdict(state.low, state.high, margin),
        difference=state.mean,
        low=state.low,
        high=state.high,
        margin=margin,
        alpha=alpha,
        n_candidate=state.t,
        n_baseline=state.t,
    )


# Sample-ratio mismatch, checked on every sweep of a running canary.
#
# A fixed-n χ² test re-run on the growing counts crosses any threshold eventually, even
# when assignment is sound. The sequential test of Lindon & Malek (2022, "Anytime-valid
# inference for multinomial count data", NeurIPS) is valid at every look: under
# H0 (units land in the arms with the expected shares θ₀) the Bayes factor of a
# Dirichlet(k·θ₀) mixture against θ₀,
#
#   BF_n = Γ(k)/Γ(k + N) · Π_i Γ(kθ₀ᵢ + nᵢ)/Γ(kθ₀ᵢ) / Π_i θ₀ᵢ^nᵢ,
#
# is a non-negative martingale with mean 1, so by Ville's inequality
# P(∃n: BF_n ≥ 1/α) ≤ α, and p_n = min(1, 1/BF_n) may be read at any time. It depends on
# the counts only (not their order), so a caller needs no history.
#
# k sets which mismatches the test is quickest to find: the prior puts θ within about
# √(θ(1−θ)/k) of θ₀. Optimizely's implementation uses k = 10 000 (deviations of a
# fraction of a percentage point, which is what subtle assignment bugs look like). Alone,
# that prior is slow to believe a gross failure (a client serving no one the candidate at
# a 1 % stage: p = 0.17 after 2,000 units), so the mixing distribution is a mixture: half
# Dirichlet(k·θ₀), half the uniform Dirichlet(1, …, 1). A mixture of test martingales is one,
# so BF = ½·BF_k + ½·BF_uniform keeps the guarantee, at the price of a factor ≤ 2 on p.
SRM_CONCENTRATION = 10_000.0
SRM_UNIFORM_WEIGHT = 0.5


@dataclass(frozen=True)
class SampleRatioTest:
    """An anytime-valid sample-ratio-mismatch test of counts against expected shares."""

    p_value: float  # min(1, 1/BF): P(ever this small | sound assignment) ≤ p_value
    log_bayes_factor: float
    counts: tuple[int, ...]
    expected_shares: tuple[float, ...]


def _log_dirichlet_multinomial(n: NDArray[np.float64], a: NDArray[np.float64]) -> float:
    """log P(a given sequence with counts n) when θ ~ Dirichlet(a)."""
    return (
        math.lgamma(a.sum())
        - math.lgamma(a.sum() + n.sum())
        + sum(math.lgamma(ai + ni) - math.lgamma(ai) for ai, ni in zip(a, n, strict=True))
    )


def _log_mix(x: float, y: float) -> float:
    top = max(x, y)
    return top + math.log(math.exp(x - top) + math.exp(y - top))


def sample_ratio_test(
    counts: ArrayLike,
    expected_shares: ArrayLike,
    *,
    concentration: float = SRM_CONCENTRATION,
    uniform_weight: float = SRM_UNIFORM_WEIGHT,
) -> SampleRatioTest:
    """Sequential SRM test (Lindon & Malek 2022) of arm counts against their expected shares.

    `counts` are units (not requests: a unit's requests all go to its arm, so they are not
    independent draws) per arm; `expected_shares` sum to 1. An arm with share 0 must have
    no units: one unit there is a certain mismatch (p = 0).
    """
    n = np.asarray(counts)
    theta = np.asarray(expected_shares, dtype=float)
    if n.ndim != 1 or n.shape != theta.shape or n.size < 2:
        raise ValueError("counts and expected_shares must be two equal-length lists of two or more arms")
    if not np.issubdtype(n.dtype, np.integer) or (n < 0).any():
        raise ValueError("counts must be non-negative integers")
    if not np.all(np.isfinite(theta)) or (theta < 0).any() or not math.isclose(theta.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"expected_shares must be non-negative and sum to 1, got {theta.tolist()}")
    if not concentration > 0:
        raise ValueError("concentration must be positive")
    if not 0.0 <= uniform_weight < 1.0:
        raise ValueError("uniform_weight must be in [0, 1)")
    result = {"counts": tuple(int(c) for c in n), "expected_shares": tuple(float(t) for t in theta)}
    if (n[theta == 0] > 0).any():
        return SampleRatioTest(p_value=0.0, log_bayes_factor=math.inf, **result)
    live = theta > 0
    n, theta = n[live].astype(float), theta[live]
    null = float(np.dot(n, np.log(theta)))
    log_bf = _log_mix(
        math.log(1 - uniform_weight) + _log_dirichlet_multinomial(n, concentration * theta) - null,
        math.log(uniform_weight) + _log_dirichlet_multinomial(n, np.ones_like(theta)) - null
        if uniform_weight
        else -math.inf,
    )
    return SampleRatioTest(p_value=min(1.0, math.exp(-log_bf)), log_bayes_factor=log_bf, **result)
