from __future__ import annotations

import pytest

from router_ops.stats.intervals import Interval, wilson_interval, wilson_interval_effective, z_value


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe 1998, Stat. Med. 17, Table I, method 3 (score, no continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # Worked by hand from Wilson 1927 with z = 1.959964.
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_it_matches_textbook_wilson_values(successes, n, low, high):
    interval = wilson_interval(successes, n)
    assert interval.estimate == pytest.approx(successes / n)
    assert round(interval.low, 4) == low
    assert round(interval.high, 4) == high


def test_it_has_exact_endpoints_at_the_boundaries():
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == 1.0


def test_it_returns_no_estimate_for_no_data():
    assert wilson_interval(0, 0) == Interval(estimate=None, low=0.0, high=1.0)
    assert wilson_interval_effective(0.3, 0.0) == Interval(estimate=None, low=0.0, high=1.0)


def test_it_widens_with_confidence():
    narrow = wilson_interval(8, 10, confidence=0.8)
    wide = wilson_interval(8, 10, confidence=0.99)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_effective_version_equals_counts_version():
    assert wilson_interval_effective(0.25, 40) == wilson_interval(10, 40)


def test_it_rejects_bad_input():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(1, -1)
    with pytest.raises(ValueError):
        z_value(1.0)


def test_z_value():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
