from __future__ import annotations

import numpy as np
import pytest

from router_ops.stats.stratified import stratified_rate, stratified_rate_from_counts


def test_it_combines_estimates_with_known_weights():
    result = stratified_rate([0.1, 0.3], [0.001, 0.004], [3, 1])
    assert result.estimate == pytest.approx(0.75 * 0.1 + 0.25 * 0.3)
    assert result.variance == pytest.approx(0.75**2 * 0.001 + 0.25**2 * 0.004)
    assert result.n_eff == pytest.approx(0.15 * 0.85 / result.variance)
    assert result.low < 0.15 < result.high


def test_zero_weight_strata_may_lack_data():
    result = stratified_rate([0.2, np.nan], [0.01, np.nan], [1, 0])
    assert result.estimate == pytest.approx(0.2)


def test_from_counts_uses_binomial_variances():
    result = stratified_rate_from_counts([10, 30], [100, 100], [0.5, 0.5])
    assert result.estimate == pytest.approx(0.2)
    assert result.variance == pytest.approx(0.25 * (0.09 / 100 + 0.21 / 100))


def test_from_counts_falls_back_when_every_stratum_is_zero():
    result = stratified_rate_from_counts([0, 0], [10, 40], [0.5, 0.5])
    assert result.estimate == 0.0
    assert result.n_eff == pytest.approx(1 / (0.25 / 10 + 0.25 / 40))
    assert result.low == 0.0 and result.high > 0.0


@pytest.mark.parametrize(
    ("successes", "trials", "weights"),
    [([1, 2], [10, 0], [0.5, 0.5]), ([11, 2], [10, 10], [0.5, 0.5]), ([1, 2], [10, 10], [0, 0]), ([1], [10], [-1])],
)
def test_it_rejects_bad_input(successes, trials, weights):
    with pytest.raises(ValueError):
        stratified_rate_from_counts(successes, trials, weights)


def test_interval_coverage_by_simulation():
    rng = np.random.default_rng(11)
    weights = np.array([0.7, 0.2, 0.1])
    rates = np.array([0.05, 0.2, 0.4])
    trials = np.array([60, 80, 100])
    truth = float(weights @ rates)
    draws = rng.binomial(trials, rates, size=(2000, 3))
    covered = [(r := stratified_rate_from_counts(row, trials, weights)).low <= truth <= r.high for row in draws]
    coverage = float(np.mean(covered))
    print(f"stratified coverage {coverage:.4f}")
    assert 0.93 <= coverage <= 0.97
