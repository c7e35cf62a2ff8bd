from __future__ import annotations

import math

import pytest

from router_ops.stats.drift import (
    population_stability_index,
    psi_contributions,
    psi_level,
    reweighted_accuracy,
)


def test_psi_by_hand():
    expected = {"api": 0.5, "web": 0.3, "mobile": 0.2}
    actual = {"api": 40, "web": 40, "mobile": 20}  # counts are normalised
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)
    assert psi_contributions(expected, actual)["mobile"] == 0.0


def test_psi_uses_epsilon_for_empty_bins():
    psi = population_stability_index({"a": 10}, {"a": 5, "b": 5})
    by_hand = (0.5 - 1.0) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi == pytest.approx(by_hand)
    assert math.isfinite(psi)


def test_psi_is_zero_for_identical_mixes_and_symmetric():
    a, b = {"x": 1, "y": 3}, {"x": 2, "y": 1}
    assert population_stability_index(a, a) == 0.0
    assert population_stability_index(a, b) == pytest.approx(population_stability_index(b, a))


def test_psi_levels():
    assert [psi_level(v) for v in (0.05, 0.1, 0.2, 0.25, 1.0)] == ["stable", "moderate", "moderate", "major", "major"]


def test_psi_rejects_empty_distribution():
    with pytest.raises(ValueError):
        population_stability_index({"a": 0}, {"a": 1})


def test_reweighting_to_the_production_mix():
    # Offline 126/150 = 84 %; production is mostly the hard category.
    result = reweighted_accuracy({"easy": 96, "hard": 30}, {"easy": 100, "hard": 50}, {"easy": 300, "hard": 700})
    assert result.offline_accuracy == pytest.approx(0.84)
    assert result.estimate == pytest.approx(0.3 * 0.96 + 0.7 * 0.6)
    assert result.covered_share == 1.0 and result.uncovered == {}
    assert result.low < result.estimate < result.high
    se = math.sqrt(0.09 * 0.96 * 0.04 / 100 + 0.49 * 0.6 * 0.4 / 50)
    assert result.high - result.low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_uncovered_traffic_widens_the_interval():
    covered = reweighted_accuracy({"a": 90}, {"a": 100}, {"a": 1})
    partial = reweighted_accuracy({"a": 90, "gone": 5}, {"a": 100, "gone": 5}, {"a": 80, "new": 20})
    assert partial.estimate == pytest.approx(0.9)
    assert partial.covered_share == pytest.approx(0.8)
    assert partial.uncovered == {"new": pytest.approx(0.2)}
    assert partial.low == pytest.approx(0.8 * covered.low)
    assert partial.high == pytest.approx(0.8 * covered.high + 0.2)


def test_no_overlap_gives_no_estimate():
    result = reweighted_accuracy({"a": 1}, {"a": 2}, {"b": 10})
    assert result.estimate is None and (result.low, result.high) == (0.0, 1.0)
