from __future__ import annotations

import numpy as np
import pytest

from router_ops.stats.multiplicity import benjamini_hochberg, holm, slice_vs_complement_test

# Benjamini & Hochberg 1995, §4.1: 15 p-values from a clinical trial.
BH_1995 = [
    0.0001,
    0.0004,
    0.0019,
    0.0095,
    0.0201,
    0.0278,
    0.0298,
    0.0344,
    0.0459,
    0.3240,
    0.4262,
    0.5719,
    0.6528,
    0.7590,
    1.0,
]


def test_bh_rejects_four_of_the_papers_hypotheses():
    result = benjamini_hochberg(BH_1995, alpha=0.05)
    assert result.reject.tolist() == [True] * 4 + [False] * 11


def test_holm_rejects_three_of_the_papers_hypotheses():
    # As the paper's Bonferroni-type procedures do.
    assert holm(BH_1995, alpha=0.05).reject.tolist() == [True] * 3 + [False] * 12


def test_adjusted_p_values_by_hand_in_input_order():
    p = [0.01, 0.04, 0.03, 0.005]
    # BH: sorted 0.005, 0.01, 0.03, 0.04 → ·4/rank = 0.02, 0.02, 0.04, 0.04 (step-up minimum).
    assert benjamini_hochberg(p).adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # Holm: 0.005·4, 0.01·3, 0.03·2, 0.04·1 = 0.02, 0.03, 0.06, 0.04 → running max.
    assert holm(p).adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(p).reject.tolist() == [True, False, False, True]


def test_empty_and_invalid_inputs():
    assert benjamini_hochberg([]).reject.size == 0
    with pytest.raises(ValueError):
        holm([0.5, 1.2])


def test_slice_test_by_hand_on_equal_weights():
    # Equal π = 1/2: z_i = (y_i − 0.2)/100 on the slice and −(y_i − 0.2)/100 on the
    # complement; Σz² = (22 + 10)/10⁴ = p̄(1 − p̄)(1/100 + 1/100) (the classical pooled
    # variance), Σz = 0.2, and the with-replacement estimator centres: n/(n−1)(Σz² − n z̄²).
    y = np.array([1] * 30 + [0] * 70 + [1] * 10 + [0] * 90, dtype=float)
    in_slice = np.arange(200) < 100
    result = slice_vs_complement_test(y, np.full(200, 0.5), in_slice)
    assert result.slice_rate == pytest.approx(0.3)
    assert result.complement_rate == pytest.approx(0.1)
    pooled_var = (0.2 * 0.8 * (1 / 100 + 1 / 100) - 200 * (0.2 / 200) ** 2) * 200 / 199
    assert result.standard_error == pytest.approx(np.sqrt(pooled_var))
    assert result.z == pytest.approx(0.2 / np.sqrt(pooled_var))
    assert result.p_value < 0.001
    greater = slice_vs_complement_test(y, np.full(200, 0.5), in_slice, alternative="greater")
    assert greater.p_value == pytest.approx(result.p_value / 2)


def test_slice_test_respects_the_domain_and_empty_sides():
    y = np.array([1.0, 0.0, np.nan, 1.0])
    pi = np.full(4, 0.5)
    domain = ~np.isnan(y)
    result = slice_vs_complement_test(y, pi, np.array([True, True, True, True]), domain)
    assert result.complement_rate is None and result.p_value == 1.0
    constant = slice_vs_complement_test([1.0, 1.0, 1.0], [0.5, 0.2, 0.9], [True, False, False])
    assert constant.difference == 0.0 and constant.p_value == 1.0


def _slice_population(rng, size, slice_rate, rest_rate):
    in_slice = rng.random(size) < 0.1
    pi = np.where(in_slice, 0.5, 0.05)
    y = (rng.random(size) < np.where(in_slice, slice_rate, rest_rate)).astype(float)
    return y, pi, in_slice


def test_slice_test_false_positive_rate_under_the_null():
    rng = np.random.default_rng(5)
    rejections = 0
    for _ in range(1000):
        y, pi, in_slice = _slice_population(rng, 10_000, 0.1, 0.1)
        s = rng.random(y.size) < pi
        rejections += slice_vs_complement_test(y[s], pi[s], in_slice[s]).p_value < 0.05
    print(f"slice-test null rejection rate {rejections / 1000:.3f}")
    assert 0.03 <= rejections / 1000 <= 0.07


def test_slice_test_detects_a_real_excess():
    rng = np.random.default_rng(6)
    y, pi, in_slice = _slice_population(rng, 20_000, 0.25, 0.1)
    s = rng.random(y.size) < pi
    result = slice_vs_complement_test(y[s], pi[s], in_slice[s], alternative="greater")
    assert result.p_value < 1e-4
    assert result.difference == pytest.approx(0.15, abs=0.05)
