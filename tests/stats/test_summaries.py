from __future__ import annotations

import pytest

from router_ops.stats.summaries import rate_status

THRESHOLDS = {"watch_threshold": 0.05, "alert_threshold": 0.10, "min_n_eff": 30}


@pytest.mark.parametrize(
    ("estimate", "low", "high", "n_eff", "status"),
    [
        (0.30, 0.15, 0.50, 10, "alert"),  # lower bound above alert: fires even on few samples
        (None, 0.0, 1.0, 0, "insufficient_data"),
        (0.02, 0.0, 0.30, 12, "insufficient_data"),  # below min n_eff
        (0.08, 0.06, 0.11, 500, "watch"),  # above watch, alert not proven
        (0.12, 0.09, 0.16, 400, "watch"),  # above alert in estimate only
        (0.04, 0.01, 0.12, 60, "insufficient_data"),  # cannot rule out the alert level
        (0.03, 0.02, 0.045, 900, "ok"),
        (0.05, 0.04, 0.07, 900, "ok"),  # at the watch level is not above it
    ],
)
def test_it_classifies(estimate, low, high, n_eff, status):
    result = rate_status(estimate=estimate, low=low, high=high, n_eff=n_eff, **THRESHOLDS)
    assert result.status == status
    assert result.reason


def test_it_rejects_inverted_thresholds():
    with pytest.raises(ValueError):
        rate_status(estimate=0.1, low=0.0, high=0.2, n_eff=100, watch_threshold=0.2, alert_threshold=0.1)
