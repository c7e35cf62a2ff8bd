from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa

from router_ops.stats.agreement import cohens_kappa, cohens_kappa_from_labels, rogan_gladen

TABLE = [[20, 5], [10, 15]]  # p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5 → κ = 0.4


def test_kappa_on_a_textbook_table():
    result = cohens_kappa(TABLE)
    assert result.kappa == pytest.approx(0.4)
    assert result.observed_agreement == pytest.approx(0.7)
    assert result.expected_agreement == pytest.approx(0.5)
    # Fleiss–Cohen–Everitt by hand: A = .10972, B = .10188, C = .01; Var = .2016 / (50 · .25).
    assert result.standard_error == pytest.approx(math.sqrt(0.016128))
    assert result.low == pytest.approx(0.4 - 1.959964 * math.sqrt(0.016128), abs=1e-5)


def test_kappa_standard_error_agrees_with_statsmodels_on_3x3():
    table = np.array([[22, 3, 1], [4, 30, 6], [2, 5, 27]])
    ours = cohens_kappa(table)
    theirs = sm_cohens_kappa(table, return_results=True)
    assert ours.kappa == pytest.approx(theirs.kappa)
    assert ours.standard_error == pytest.approx(theirs.std_kappa)


def test_kappa_from_labels():
    judge = ["regret"] * 20 + ["ok"] * 5 + ["regret"] * 10 + ["ok"] * 15
    human = ["regret"] * 25 + ["ok"] * 25
    assert cohens_kappa_from_labels(judge, human, categories=["regret", "ok"]).kappa == pytest.approx(0.4)


def test_kappa_is_undefined_without_variation():
    assert cohens_kappa([[5, 0], [0, 0]]).kappa is None
    assert cohens_kappa([[0, 0], [0, 0]]).n == 0


def test_rogan_gladen_by_hand():
    # q = 0.2 (80/400), Se = 0.9 (90/100), Sp = 0.95 (190/200) → p = 0.15 / 0.85.
    result = rogan_gladen(
        0.2, 0.2 * 0.8 / 400, sensitivity_hits=90, sensitivity_n=100, specificity_hits=190, specificity_n=200
    )
    p = 0.15 / 0.85
    var = (0.0004 + p**2 * 0.09 / 100 + (1 - p) ** 2 * 0.0475 / 200) / 0.85**2
    assert result.estimate == pytest.approx(p)
    assert result.standard_error == pytest.approx(math.sqrt(var))
    assert result.low == pytest.approx(p - 1.959964 * math.sqrt(var), abs=1e-6)


def test_rogan_gladen_clips_to_the_unit_interval():
    # Observed just below the false-positive rate 0.1: raw estimate slightly negative.
    result = rogan_gladen(0.09, 0.0004, sensitivity_hits=80, sensitivity_n=100, specificity_hits=90, specificity_n=100)
    assert result.raw_estimate == pytest.approx(-0.01 / 0.7)
    assert result.estimate == 0.0 and result.low == 0.0 and 0.0 < result.high < 1.0
    # Far below: the whole interval is negative and collapses to [0, 0].
    hopeless = rogan_gladen(
        0.02, 0.0001, sensitivity_hits=80, sensitivity_n=100, specificity_hits=90, specificity_n=100
    )
    assert (hopeless.estimate, hopeless.low, hopeless.high) == (0.0, 0.0, 0.0)


def test_rogan_gladen_refuses_a_chance_level_judge():
    result = rogan_gladen(0.3, 0.001, sensitivity_hits=50, sensitivity_n=100, specificity_hits=50, specificity_n=100)
    assert result.estimate is None and (result.low, result.high) == (0.0, 1.0)


def test_rogan_gladen_coverage_by_simulation():
    rng = np.random.default_rng(9)
    true_p, se, sp = 0.15, 0.85, 0.92
    q = true_p * se + (1 - true_p) * (1 - sp)
    reps, n, n_se, n_sp = 2000, 1000, 200, 400
    obs = rng.binomial(n, q, reps) / n
    se_hits = rng.binomial(n_se, se, reps)
    sp_hits = rng.binomial(n_sp, sp, reps)
    covered = 0
    for o, a, b in zip(obs, se_hits, sp_hits, strict=True):
        r = rogan_gladen(
            o, o * (1 - o) / n, sensitivity_hits=a, sensitivity_n=n_se, specificity_hits=b, specificity_n=n_sp
        )
        covered += r.low <= true_p <= r.high
    print(f"Rogan-Gladen coverage {covered / reps:.4f}")
    assert 0.93 <= covered / reps <= 0.97
