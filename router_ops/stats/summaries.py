"""Turning a rate interval into a status a dashboard or an alert can use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "watch", "alert", "insufficient_data"]


@dataclass(frozen=True)
class RateStatus:
    """status plus a one-line human-readable reason (shown as the badge's tooltip)."""

    status: Status
    reason: str


def rate_status(
    *,
    estimate: float | None,
    low: float,
    high: float,
    n_eff: float,
    watch_threshold: float,
    alert_threshold: float,
    min_n_eff: float = 30.0,
) -> RateStatus:
    """Classify a "bad-thing" rate (regret, overspend) against watch and alert levels.

    Rules, first match wins:
    1. "alert" — the interval's lower bound exceeds the alert threshold: the rate
       is above the alert level with ~97.5 % one-sided confidence. Fires whatever
       n_eff is: a fire is never hidden behind "too few samples".
    2. "insufficient_data" — no estimate, or n_eff < ``min_n_eff``: the weighted
       interval's approximation is not trusted there (few heavy weights).
    3. "watch" — the point estimate exceeds the watch threshold (worth a look,
       not yet proven above the alert level).
    4. "insufficient_data" — the upper bound exceeds the alert threshold: the data
       cannot rule out an alert-level rate, so "ok" would overclaim.
    5. "ok" — estimate at or below watch and the alert level ruled out.
    Inputs: the interval (e.g. a WeightedRate's estimate/low/high/n_eff) and
    thresholds with 0 ≤ watch ≤ alert ≤ 1.
    """
    # Decision rule on confidence bounds (interval-based testing, e.g. Wellek 2010,
    # Testing Statistical Hypotheses of Equivalence and Noninferiority, ch. 1).
    if not 0.0 <= watch_threshold <= alert_threshold <= 1.0:
        raise ValueError("thresholds must satisfy 0 <= watch <= alert <= 1")
    if estimate is not None and low > alert_threshold:
        return RateStatus("alert", f"lower bound {low:.1%} is above the alert level {alert_threshold:.1%}")
    if estimate is None:
        return RateStatus("insufficient_data", "no samples yet")
    if n_eff < min_n_eff:
        return RateStatus("insufficient_data", f"effective sample {n_eff:.0f} is below {min_n_eff:.0f}")
    if estimate > watch_threshold:
        return RateStatus("watch", f"estimate {estimate:.1%} is above the watch level {watch_threshold:.1%}")
    if high > alert_threshold:
        return RateStatus(
            "insufficient_data", f"upper bound {high:.1%} cannot rule out the alert level {alert_threshold:.1%}"
        )
    return RateStatus("ok", f"estimate {estimate:.1%}, upper bound {high:.1%} below the alert level")
