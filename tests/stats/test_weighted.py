from __future__ import annotations

import numpy as np
import pytest

from router_ops.stats.weighted import (
    design_variance,
    hajek_linearised_values,
    hajek_rate,
    kish_effective_n,
    weighted_rate,
)


def test_it_computes_hand_worked_example():
    # w = [2, 2, 4, 4], Σw = 12, Σwy = 6 → p̂ = 1/2; z = w(y − 1/2)/12 = [1, −1, 2, −2]/12.
    y = [1, 0, 1, 0]
    pi = [0.5, 0.5, 0.25, 0.25]
    result = hajek_rate(y, pi)
    assert result.estimate == 0.5
    assert result.variance == pytest.approx(4 / 3 * 10 / 144)
    assert result.n == 4
    assert result.n_eff == pytest.approx(144 / 40)
    assert result.weight_total == 12.0
    assert result.low < 0.5 < result.high
    assert hajek_rate(y, pi, variance_method="poisson").variance == pytest.approx(7 / 144)


def test_equal_probabilities_reduce_to_the_plain_proportion():
    y = np.array([1] * 8 + [0] * 32)
    result = hajek_rate(y, np.full(40, 0.1))
    assert result.estimate == pytest.approx(0.2)
    assert result.n_eff == pytest.approx(40)
    assert result.weight_total == pytest.approx(400)
    # n/(n−1) Σ z² = p(1−p)/(n−1) for SRS-with-replacement; n* = n − 1.
    assert result.variance == pytest.approx(0.2 * 0.8 / 39)
    assert result.design_n_eff == pytest.approx(39)


def test_a_domain_uses_only_its_units_but_the_whole_sample_size():
    y = np.array([1.0, 0.0, np.nan, 1.0, 0.0, np.nan])
    pi = np.array([0.5, 0.2, 0.1, 0.5, 0.5, 0.9])
    cheap = ~np.isnan(y)
    result = weighted_rate(y, pi, cheap)
    subset = hajek_rate(y[cheap], pi[cheap])
    assert result.estimate == pytest.approx(subset.estimate)
    assert result.n == 4
    assert result.weight_total == pytest.approx(2 + 5 + 2 + 2)
    # Same linearised values; only the n/(n−1) factor differs (6/5 versus 4/3).
    assert result.variance == pytest.approx(subset.variance * (6 / 5) / (4 / 3))


def test_an_empty_domain_has_no_estimate():
    result = weighted_rate([1, 0], [0.5, 0.5], [False, False])
    assert result.estimate is None
    assert (result.low, result.high, result.n, result.n_eff, result.weight_total) == (0.0, 1.0, 0, 0.0, 0.0)


def test_all_zero_outcomes_use_the_kish_size():
    pi = np.array([0.1, 0.1, 0.5, 0.5])
    result = hajek_rate(np.zeros(4), pi)
    assert result.estimate == 0.0
    assert result.variance == 0.0
    assert result.design_n_eff == pytest.approx(kish_effective_n(1 / pi))
    assert result.low == 0.0 and 0.0 < result.high < 1.0


def test_linearised_values_sum_to_zero():
    rng = np.random.default_rng(3)
    pi = rng.uniform(0.05, 1, 50)
    y = rng.random(50)
    estimate, z = hajek_linearised_values(y, pi, y > 0.3)
    assert estimate is not None
    assert z.sum() == pytest.approx(0.0, abs=1e-12)
    assert np.all(z[y <= 0.3] == 0)


@pytest.mark.parametrize(
    ("y", "pi"),
    [([0.5, 1.2], [0.5, 0.5]), ([1, 0], [0.0, 0.5]), ([1, 0], [0.5, 1.5]), ([1, 0, 1], [0.5, 0.5])],
)
def test_it_rejects_bad_input(y, pi):
    with pytest.raises(ValueError):
        hajek_rate(y, pi)


def test_design_variance_rejects_unknown_method():
    with pytest.raises(ValueError):
        design_variance([0.1, -0.1], [0.5, 0.5], "bootstrap")  # type: ignore[arg-type]


def _simulate(population_size: int, rates: tuple[float, float, float], reps: int, seed: int):
    """Fixed finite population; strata with shares 80/15/5 %, π = 0.02/0.2/0.8 and
    outcome rates that rise as π rises (rare, over-sampled strata regret more), so an
    unweighted mean would be badly biased. Poisson sampling, as the shadow sampler does."""
    rng = np.random.default_rng(seed)
    stratum = rng.choice(3, size=population_size, p=[0.80, 0.15, 0.05])
    y = (rng.random(population_size) < np.array(rates)[stratum]).astype(float)
    pi = np.array([0.02, 0.2, 0.8])[stratum]
    truth = y.mean()
    rows = []
    for _ in range(reps):
        s = rng.random(population_size) < pi
        r = hajek_rate(y[s], pi[s])
        rows.append((r.estimate, r.low, r.high, r.variance, r.n_eff, y[s].mean()))
    return truth, np.array(rows, dtype=float)


@pytest.fixture(scope="module")
def realistic():
    return _simulate(20_000, (0.03, 0.15, 0.5), reps=2000, seed=20240601)


def test_interval_covers_the_population_rate_at_nominal_level(realistic):
    truth, rows = realistic
    coverage = np.mean((rows[:, 1] <= truth) & (truth <= rows[:, 2]))
    print(f"coverage {coverage:.4f}, median Kish n_eff {np.median(rows[:, 4]):.0f}")
    assert 0.93 <= coverage <= 0.97


def test_estimate_is_unbiased_and_the_raw_mean_is_not(realistic):
    truth, rows = realistic
    errors = rows[:, 0] - truth
    simulation_se = errors.std(ddof=1) / np.sqrt(len(errors))
    assert abs(errors.mean()) < 3 * simulation_se
    # The bias is also negligible against the estimator's own standard error.
    assert abs(errors.mean()) < 0.1 * errors.std(ddof=1)
    # Sanity of the scenario: the unweighted sample mean is far off.
    assert rows[:, 5].mean() - truth > 10 * errors.std(ddof=1)


def test_variance_estimate_matches_the_sampling_variance(realistic):
    _, rows = realistic
    ratio = rows[:, 3].mean() / rows[:, 0].var(ddof=1)
    assert 0.9 <= ratio <= 1.15


def test_interval_stays_at_or_above_nominal_on_small_effective_samples():
    # ~36 units at weight 50 carry 80 % of the population: Kish n_eff ≈ 50.
    truth, rows = _simulate(2_000, (0.03, 0.15, 0.5), reps=1000, seed=7)
    coverage = np.mean((rows[:, 1] <= truth) & (truth <= rows[:, 2]))
    print(f"small-sample coverage {coverage:.4f}, median Kish n_eff {np.median(rows[:, 4]):.0f}")
    assert np.median(rows[:, 4]) < 60
    assert 0.93 <= coverage <= 0.99
