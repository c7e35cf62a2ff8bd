from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from router_ops.stats.sequential import (
    confidence_sequence,
    confidence_sequence_start,
    confidence_sequence_update,
    noninferiority,
    noninferiority_from_states,
    noninferiority_paired,
    noninferiority_path,
    sample_ratio_test,
)

ALPHA = 0.05


def test_state_fold_equals_the_array_computation():
    x = np.random.default_rng(1).random(300)
    path = confidence_sequence(x, alpha=ALPHA)
    state = confidence_sequence_start(alpha=ALPHA)
    state = confidence_sequence_update(state, x[:100])
    for value in x[100:]:
        state = confidence_sequence_update(state, value)
    assert state.t == 300
    assert state.low == pytest.approx(path.low[-1], abs=1e-12)
    assert state.high == pytest.approx(path.high[-1], abs=1e-12)
    assert state.mean == pytest.approx(x.mean())


def test_first_bet_matches_the_formula_by_hand():
    # t = 1: σ̂²₀ = 1/4, λ₁ = min(√(2 log 40 / (¼ · 1 · log 2)), ½) = ½; μ̂₀ = ½.
    path = confidence_sequence([1.0], alpha=ALPHA, running_intersection=False)
    psi = (-np.log(0.5) - 0.5) / 4
    radius = (np.log(40) + 4 * 0.25 * psi) / 0.5
    assert path.low[0] == pytest.approx(max(0.0, 1 - radius))
    assert path.high[0] == 1.0


def test_bounds_are_nested_and_shrink():
    x = (np.random.default_rng(2).random(5000) < 0.05).astype(float)
    path = confidence_sequence(x)
    assert np.all(np.diff(path.low) >= 0) and np.all(np.diff(path.high) <= 0)
    # Variance-adaptive: at a 5 % rate, even though valid at every t, the width after 5000
    # draws is well below that of the fixed-n (not time-uniform) Hoeffding interval.
    hoeffding_width = 2 * np.sqrt(np.log(2 / ALPHA) / (2 * 5000))
    assert path.high[-1] - path.low[-1] < 0.65 * hoeffding_width


def test_general_bounds_rescale():
    x = np.random.default_rng(3).uniform(0, 20, 400)
    scaled = confidence_sequence(x / 20)
    raw = confidence_sequence(x, lower=0, upper=20)
    assert raw.low == pytest.approx(20 * scaled.low)
    with pytest.raises(ValueError):
        confidence_sequence([1.5])


def test_time_uniform_miscoverage_is_at_most_alpha():
    rng = np.random.default_rng(4)
    streams, steps = 300, 3000
    report = []
    for p in (0.02, 0.1, 0.5):
        x = (rng.random((streams, steps)) < p).astype(float)
        path = confidence_sequence(x, alpha=ALPHA)
        ever_missed = np.any((path.low > p) | (path.high < p), axis=1).mean()
        # The fixed-n Wald interval watched at every step: the failure the CS prevents.
        t = np.arange(1, steps + 1)
        half = norm.ppf(0.975) * np.sqrt(np.maximum(path.mean * (1 - path.mean), 1e-12) / t)
        naive_missed = np.any((np.abs(path.mean - p) > half)[:, 29:], axis=1).mean()
        report.append((p, ever_missed, naive_missed))
        assert ever_missed <= ALPHA
        assert naive_missed > 2 * ALPHA
    print("CS miscoverage (p, CS, peeking Wald):", report)


def test_time_uniform_miscoverage_on_continuous_losses():
    rng = np.random.default_rng(5)
    x = rng.beta(0.5, 4.0, size=(300, 2000))
    mean = 0.5 / 4.5
    path = confidence_sequence(x, alpha=0.1)
    missed = np.any((path.low > mean) | (path.high < mean), axis=1).mean()
    print(f"beta-stream miscoverage at alpha 0.1: {missed:.3f}")
    assert missed <= 0.1


def _arms(rng, sims, steps, p_candidate, p_baseline):
    return (
        (rng.random((sims, steps)) < p_candidate).astype(float),
        (rng.random((sims, steps)) < p_baseline).astype(float),
    )


def test_equal_arms_rarely_fail_and_mostly_pass_eventually():
    rng = np.random.default_rng(6)
    candidate, baseline = _arms(rng, 200, 15_000, 0.05, 0.05)
    verdicts, _, _ = noninferiority_path(candidate, baseline, margin=0.02, alpha=ALPHA)
    ever_failed = np.any(verdicts == "fail", axis=1).mean()
    passed_at_end = (verdicts[:, -1] == "pass").mean()
    passed_at_6000 = (verdicts[:, 5999] == "pass").mean()
    print(
        f"equal arms: ever failed {ever_failed:.3f}, passed by t=6000 {passed_at_6000:.3f}, "
        f"by t=15000 {passed_at_end:.3f}"
    )
    assert ever_failed <= ALPHA
    assert passed_at_end >= 0.8


def test_at_the_margin_both_errors_are_controlled():
    # True difference exactly δ: "fail" is wrong (difference ≤ δ) and "pass" would be
    # wrong for any difference a hair above δ; both must stay ≤ α at every step.
    rng = np.random.default_rng(7)
    candidate, baseline = _arms(rng, 300, 4000, 0.07, 0.05)
    verdicts, _, _ = noninferiority_path(candidate, baseline, margin=0.02, alpha=ALPHA)
    ever_failed = np.any(verdicts == "fail", axis=1).mean()
    ever_passed = np.any(verdicts == "pass", axis=1).mean()
    print(f"at margin: ever failed {ever_failed:.3f}, ever passed {ever_passed:.3f}")
    assert ever_failed <= ALPHA
    assert ever_passed <= ALPHA


def test_a_clearly_worse_candidate_fails():
    rng = np.random.default_rng(8)
    candidate, baseline = _arms(rng, 1, 4000, 0.15, 0.05)
    result = noninferiority(candidate[0], baseline[0], margin=0.02)
    assert result.verdict == "fail"
    assert result.low > 0.02
    assert result.difference == pytest.approx(0.1, abs=0.03)
    assert (result.n_candidate, result.n_baseline) == (4000, 4000)


def test_no_data_is_inconclusive():
    result = noninferiority([], [], margin=0.02)
    assert result.verdict == "inconclusive" and result.difference is None
    assert (result.low, result.high) == (-1.0, 1.0)


def test_states_must_share_alpha():
    with pytest.raises(ValueError):
        noninferiority_from_states(
            confidence_sequence_start(alpha=0.05), confidence_sequence_start(alpha=0.1), margin=0.0
        )


def test_paired_check():
    rng = np.random.default_rng(9)
    same = rng.integers(0, 2, 3000) * (rng.random(3000) < 0.1)
    equal = noninferiority_paired(same - same, margin=0.02)
    assert equal.verdict == "pass" and equal.difference == 0.0
    worse = noninferiority_paired((rng.random(3000) < 0.2).astype(float), margin=0.02)
    assert worse.verdict == "fail"
    with pytest.raises(ValueError):
        noninferiority_paired([0.0], margin=0.0, alpha=0.5)


def test_paired_false_fail_rate_at_the_margin():
    rng = np.random.default_rng(10)
    # D ∈ {−1, 0, 1} with mean exactly δ = 0.02.
    u = rng.random((300, 3000))
    d = np.where(u < 0.06, 1.0, np.where(u < 0.10, -1.0, 0.0))
    fails = 0
    for row in d[:, ::10]:
        fails += noninferiority_paired(row, margin=0.02).verdict == "fail"
    assert fails / len(d) <= ALPHA


# ---------------------------------------------------------------- sample-ratio mismatch (Lindon & Malek 2022)


def test_srm_bayes_factor_matches_values_by_hand():
    # k = 1, one unit in arm A of a 50/50 split: m1 = Γ(1)/Γ(2) · Γ(1.5)/Γ(0.5) = 1/2, m0 = 1/2, BF = 1.
    assert sample_ratio_test([1, 0], [0.5, 0.5], concentration=1, uniform_weight=0).p_value == pytest.approx(1.0)
    # k = 2, two units in arm A: m1 = Γ(2)/Γ(4) · Γ(3)/Γ(1) = 1/3, m0 = 1/4, BF = 4/3, p = 3/4.
    result = sample_ratio_test([2, 0], [0.5, 0.5], concentration=2, uniform_weight=0)
    assert result.log_bayes_factor == pytest.approx(np.log(4 / 3))
    assert result.p_value == pytest.approx(0.75)


def test_srm_mixture_is_half_each_bayes_factor():
    # Three units all in arm A of a 1/4 : 3/4 split, k = 4 → a = (1, 3):
    # m_k = Γ(4)/Γ(7) · Γ(4)/Γ(1) = 6/720 · 6 = 1/20; uniform a = (1, 1): m_u = Γ(2)/Γ(5) · Γ(4) = 1/4;
    # m0 = (1/4)³ = 1/64. BF = ½ · 64/20 + ½ · 64/4 = 1.6 + 8 = 9.6.
    result = sample_ratio_test([3, 0], [0.25, 0.75], concentration=4)
    assert result.log_bayes_factor == pytest.approx(np.log(9.6))
    assert result.p_value == pytest.approx(1 / 9.6)


@pytest.mark.parametrize(
    ("counts", "shares"), [((5190, 4810), (0.5, 0.5)), ((131, 9869), (0.01, 0.99)), ((40, 60), (0.3, 0.7))]
)
def test_srm_bayes_factor_equals_beta_binomial_over_binomial(counts, shares):
    # Two arms: the Dirichlet-multinomial marginal is the beta-binomial (same binomial coefficient as H0's).
    from scipy.stats import betabinom, binom

    k = 10_000
    n = sum(counts)
    expected = betabinom.logpmf(counts[0], n, k * shares[0], k * shares[1]) - binom.logpmf(counts[0], n, shares[0])
    result = sample_ratio_test(counts, shares, uniform_weight=0)
    assert result.log_bayes_factor == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_srm_a_unit_in_an_arm_with_no_share_is_a_certain_mismatch():
    assert sample_ratio_test([1, 99], [0.0, 1.0]).p_value == 0.0
    assert sample_ratio_test([0, 99], [0.0, 1.0]).p_value == 1.0


@pytest.mark.parametrize(
    ("counts", "shares", "message"),
    [
        ([1, 2], [0.5, 0.4], "sum to 1"),
        ([1, -2], [0.5, 0.5], "non-negative integers"),
        ([1.5, 2], [0.5, 0.5], "non-negative integers"),
        ([1, 2, 3], [0.5, 0.5], "equal-length"),
        ([3], [1.0], "two or more"),
    ],
)
def test_srm_bad_input_is_named(counts, shares, message):
    with pytest.raises(ValueError, match=message):
        sample_ratio_test(counts, shares)


def _looks(rng, runs: int, units: int, every: int, true_share: float) -> np.ndarray:
    """Cumulative candidate counts at each look: shape (runs, looks)."""
    per_block = rng.binomial(every, true_share, size=(runs, units // every))
    return np.cumsum(per_block, axis=1)


@pytest.mark.parametrize("share", [0.5, 0.05])
def test_srm_false_alarms_stay_below_alpha_however_often_one_looks(share):
    # Sound assignment, 2,000 stages of 5,000 units, checked every 100 units (50 looks).
    # The anytime-valid p-value: P(ever ≤ α) ≤ α. A χ² test re-run on the same looks
    # raises false alarms several times as often (the reason the gate does not use it).
    from scipy.stats import chi2

    alpha, runs, units, every = 0.05, 2000, 5000, 100
    cumulative = _looks(np.random.default_rng(7), runs, units, every, share)
    n = np.arange(1, units // every + 1) * every
    ever_sequential = np.zeros(runs, dtype=bool)
    for r in range(runs):
        for look, c in enumerate(cumulative[r]):
            if sample_ratio_test([int(c), int(n[look] - c)], [share, 1 - share]).p_value <= alpha:
                ever_sequential[r] = True
                break
    expected = n * share
    stat = (cumulative - expected) ** 2 / expected + (cumulative - expected) ** 2 / (n - expected)
    ever_chi2 = (chi2.sf(stat, df=1) <= alpha).any(axis=1)
    se = np.sqrt(alpha * (1 - alpha) / runs)
    assert ever_sequential.mean() <= alpha + 3 * se
    assert ever_chi2.mean() > 2 * alpha


def test_srm_finds_a_two_point_mismatch_in_forty_thousand_units():
    # Assignment broken by two percentage points (48 % instead of 50 %): found at the gate's
    # threshold (0.001) in at least 9 stages of 10, and never when the split is right.
    rng = np.random.default_rng(11)
    broken = [rng.binomial(40_000, 0.48) for _ in range(200)]
    sound = [rng.binomial(40_000, 0.50) for _ in range(200)]
    found = np.mean([sample_ratio_test([c, 40_000 - c], [0.5, 0.5]).p_value < 0.001 for c in broken])
    false = np.mean([sample_ratio_test([c, 40_000 - c], [0.5, 0.5]).p_value < 0.001 for c in sound])
    assert found >= 0.9
    assert false == 0.0


def test_srm_finds_a_client_that_never_serves_the_candidate_within_two_thousand_units():
    # A 1 % stage whose units all get the baseline (the client ignores the config): the uniform
    # half of the mixture finds it (p < 0.001) by 2,000 units; the k = 10,000 prior alone would
    # still say p ≈ 0.17 there.
    assert sample_ratio_test([0, 2000], [0.01, 0.99]).p_value < 0.001
    assert sample_ratio_test([0, 2000], [0.01, 0.99], uniform_weight=0).p_value > 0.1
    assert sample_ratio_test([0, 300], [0.01, 0.99]).p_value == 1.0  # 300 units: 0 of ~3 expected is chance
