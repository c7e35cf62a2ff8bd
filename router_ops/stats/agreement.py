"""Judge versus human: agreement, and correcting a judged rate for judge error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from router_ops.stats.intervals import z_value


@dataclass(frozen=True)
class Kappa:
    """Cohen's κ with its large-sample standard error and a Wald interval clipped to [−1, 1].

    kappa is None (and the interval [−1, 1]) when it is undefined: no items, or
    both raters put every item in the same single category (p_e = 1).
    """

    kappa: float | None
    standard_error: float | None
    low: float
    high: float
    observed_agreement: float | None
    expected_agreement: float | None
    n: int


def cohens_kappa(table: ArrayLike, *, confidence: float = 0.95) -> Kappa:
    """Cohen's κ from a k×k contingency table (rows: rater A, columns: rater B).

    κ = (p_o − p_e)/(1 − p_e). Standard error: the non-null large-sample variance
    of Fleiss, Cohen & Everitt (1969),
    Var = [Σ_i p_ii(1 − (p_i· + p_·i)(1 − κ))² + (1 − κ)² Σ_{i≠j} p_ij (p_·i + p_j·)²
           − (κ − p_e(1 − κ))²] / (n (1 − p_e)²).
    Output: Kappa; the interval is κ ± z·SE clipped to [−1, 1].
    """
    # Cohen 1960, Educ. Psychol. Meas. 20(1); SE: Fleiss, Cohen & Everitt 1969, Psychol. Bull. 72(5).
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError("table must be a square k×k array")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("table counts must be finite and non-negative")
    n = float(counts.sum())
    if n == 0:
        return Kappa(None, None, -1.0, 1.0, None, None, 0)
    p = counts / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    p_o = float(np.trace(p))
    p_e = float(np.dot(rows, cols))
    if p_e >= 1.0:
        return Kappa(None, None, -1.0, 1.0, p_o, p_e, int(n))
    kappa = (p_o - p_e) / (1.0 - p_e)
    diag = np.diag(p)
    a = float(np.sum(diag * (1.0 - (rows + cols) * (1.0 - kappa)) ** 2))
    off = p.copy()
    np.fill_diagonal(off, 0.0)
    # p_ij weighted by (p_·i + p_j·)²: column margin of i plus row margin of j.
    b = (1.0 - kappa) ** 2 * float(np.sum(off * (cols[:, None] + rows[None, :]) ** 2))
    c = (kappa - p_e * (1.0 - kappa)) ** 2
    variance = max(0.0, (a + b - c) / (n * (1.0 - p_e) ** 2))
    se = math.sqrt(variance)
    z = z_value(confidence)
    return Kappa(
        kappa=kappa,
        standard_error=se,
        low=max(-1.0, kappa - z * se),
        high=min(1.0, kappa + z * se),
        observed_agreement=p_o,
        expected_agreement=p_e,
        n=int(n),
    )


def cohens_kappa_from_labels(
    rater_a: Sequence[object],
    rater_b: Sequence[object],
    *,
    categories: Sequence[object] | None = None,
    confidence: float = 0.95,
) -> Kappa:
    """Cohen's κ from two equal-length label sequences (e.g. judge verdict, human verdict)."""
    # Cohen 1960; Fleiss, Cohen & Everitt 1969 (via ``cohens_kappa``).
    if len(rater_a) != len(rater_b):
        raise ValueError("both raters must label the same items")
    cats = list(categories) if categories is not None else sorted(set(rater_a) | set(rater_b), key=repr)
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)))
    for a, b in zip(rater_a, rater_b, strict=True):
        table[index[a], index[b]] += 1
    return cohens_kappa(table, confidence=confidence)


@dataclass(frozen=True)
class CorrectedRate:
    """A rate corrected for classifier error.

    estimate: Rogan–Gladen estimate clipped to [0, 1] (None when the judge is no
        better than chance, Se + Sp ≤ 1, and nothing can be corrected).
    raw_estimate: the unclipped value (can fall outside [0, 1] by sampling noise).
    standard_error: delta-method SE. low, high: Wald interval clipped to [0, 1]
        (it collapses to [0, 0] or [1, 1] when the whole interval falls outside,
        i.e. the judged rate contradicts the measured Se/Sp: recheck the validation set).
    """

    estimate: float | None
    raw_estimate: float | None
    standard_error: float | None
    low: float
    high: float


def rogan_gladen(
    observed_rate: float,
    observed_variance: float,
    *,
    sensitivity_hits: int,
    sensitivity_n: int,
    specificity_hits: int,
    specificity_n: int,
    confidence: float = 0.95,
) -> CorrectedRate:
    """Correct an observed (judged) rate for the judge's sensitivity and specificity.

    Inputs: the judged rate q and its variance (a binomial p(1−p)/n, or the design
    variance of a weighted estimate); sensitivity Se = hits/n among items humans
    call positive (e.g. regret), specificity Sp = hits/n among items humans call
    negative — independent validation samples.
    Output: p = (q + Sp − 1)/(Se + Sp − 1), with delta-method variance
    [Var q + p² Var Se + (1 − p)² Var Sp]/(Se + Sp − 1)², Var Se = Se(1−Se)/n_Se, …;
    estimate and interval clipped to [0, 1].
    """
    # Rogan & Gladen 1978, Am. J. Epidemiol. 107(1); delta-method variance as in
    # Greiner & Gardner 2000 / Lang & Reiczigel 2014, Prev. Vet. Med. 113(1).
    if sensitivity_n <= 0 or specificity_n <= 0:
        raise ValueError("sensitivity and specificity need at least one validated item each")
    if not (0 <= sensitivity_hits <= sensitivity_n and 0 <= specificity_hits <= specificity_n):
        raise ValueError("hits must lie in [0, n]")
    if not 0.0 <= observed_rate <= 1.0 or observed_variance < 0.0:
        raise ValueError("observed_rate must lie in [0, 1] and its variance be >= 0")
    se = sensitivity_hits / sensitivity_n
    sp = specificity_hits / specificity_n
    youden = se + sp - 1.0
    if youden <= 0.0:
        return CorrectedRate(None, None, None, 0.0, 1.0)
    raw = (observed_rate + sp - 1.0) / youden
    p = min(1.0, max(0.0, raw))
    var_se = se * (1.0 - se) / sensitivity_n
    var_sp = sp * (1.0 - sp) / specificity_n
    # Partial derivatives of the raw estimate: 1/J, −p/J, (1 − p)/J for q, Se, Sp (J = Se + Sp − 1).
    variance = (observed_variance + raw * raw * var_se + (1.0 - raw) ** 2 * var_sp) / youden**2
    std = math.sqrt(variance)
    z = z_value(confidence)
    return CorrectedRate(
        estimate=p,
        raw_estimate=raw,
        standard_error=std,
        low=min(1.0, max(0.0, raw - z * std)),
        high=min(1.0, max(0.0, raw + z * std)),
    )
