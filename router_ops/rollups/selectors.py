"""Reads over the hourly rollups: per-segment statistics and time series.

Pages, the stats API and the gates read these; none of them scans the raw
decision table. Every rate is a Hájek (traffic-weighted) estimate with a 95 %
interval and the sample count it rests on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from router_ops.applications.models import Application
from router_ops.ingest.models import Decision
from router_ops.rollouts.models import RouterVersion
from router_ops.rollups.models import ALL_TRAFFIC, HourlyRollup
from router_ops.stats.summaries import rate_status
from router_ops.stats.weighted import hajek_rate_from_sums

WINDOW_PATTERN = re.compile(r"^([1-9][0-9]{0,3})([hd])$")
MAX_WINDOW = timedelta(days=400)

SUM_FIELDS = (
    "decisions",
    "cost_usd",
    "strong_cost_usd",
    "sampled",
    "judged",
    "shadow_cost_usd",
    "judge_cost_usd",
    "feedback_negative",
    "feedback_total",
    "sum_w",
    "sum_w2",
    "sum_w_bad",
    "sum_w2_bad",
    "sum_w_disagree",
    "sum_w2_disagree",
    "n_bad",
    "n_disagree",
)


def parse_window(text: str) -> timedelta:
    """'24h', '7d' … → timedelta; ValueError with a message a user can act on."""
    match = WINDOW_PATTERN.match(text or "")
    if not match:
        raise ValueError("Use a number of hours or days, e.g. 24h or 7d.")
    amount, unit = int(match.group(1)), match.group(2)
    window = timedelta(hours=amount) if unit == "h" else timedelta(days=amount)
    if window > MAX_WINDOW:
        raise ValueError(f"At most {MAX_WINDOW.days} days.")
    return window


def window_start(window: timedelta, now: datetime | None = None) -> datetime:
    """The first hour in the window (rollups are hourly, so the window starts on an hour)."""
    return ((now or timezone.now()) - window).replace(minute=0, second=0, microsecond=0)


def default_router_version(application: Application) -> RouterVersion | None:
    """The active version; without one, the version that reported the most recent decision."""
    active = RouterVersion.objects.filter(application=application, status=RouterVersion.STATUS_ACTIVE).first()
    if active is not None:
        return active
    latest = (
        Decision.objects.filter(application=application).order_by("-occurred_at").values("router_version_id").first()
    )
    if latest is None:
        return RouterVersion.objects.filter(application=application).order_by("-created_at").first()
    return RouterVersion.objects.get(pk=latest["router_version_id"])


@dataclass
class Sums:
    values: dict = field(default_factory=lambda: dict.fromkeys(SUM_FIELDS, 0))

    def add(self, row: dict) -> None:
        for key in SUM_FIELDS:
            self.values[key] += row.get(key) or 0

    def __getitem__(self, key: str):
        return self.values[key]


def _rate(sums: Sums, bad: str) -> dict:
    rate = hajek_rate_from_sums(
        n=sums["judged"],
        sum_w=sums["sum_w"],
        sum_w2=sums["sum_w2"],
        sum_wy=sums[f"sum_w_{bad}"],
        sum_w2y=sums[f"sum_w2_{bad}"],
    )
    return {
        "estimate": rate.estimate,
        "low": rate.low,
        "high": rate.high,
        "n": rate.n,
        "effective_n": round(rate.design_n_eff, 1),
    }


def _combined(*parts: Sums) -> Sums:
    total = Sums()
    for part in parts:
        total.add(part.values)
    return total


def _entry(slug: str, name: str, by_tier: dict[str, Sums], all_decisions: int, application: Application) -> dict:
    everything = _combined(*by_tier.values())
    cheap = by_tier.get("cheap", Sums())
    strong = by_tier.get("strong", Sums())
    decisions = everything["decisions"]
    cheap_share = cheap["decisions"] / decisions if decisions else None
    regret = _rate(cheap, "bad")
    status = rate_status(
        estimate=regret["estimate"],
        low=regret["low"],
        high=regret["high"],
        n_eff=regret["effective_n"],
        watch_threshold=application.regret_watch,
        alert_threshold=application.regret_alert,
        min_n_eff=application.min_effective_samples,
    )
    impact = (
        (decisions / all_decisions) * cheap_share * regret["estimate"]
        if all_decisions and cheap_share is not None and regret["estimate"] is not None
        else None
    )
    return {
        "segment": slug,
        "name": name,
        "traffic_share": decisions / all_decisions if all_decisions else 0.0,
        "decisions": decisions,
        "cheap_share": cheap_share,
        "shadow_samples": everything["sampled"],
        "judged": everything["judged"],
        "disagreement_rate": _rate(everything, "disagree"),
        "regret_rate": regret,
        "overspend_rate": _rate(strong, "bad"),
        "impact": impact,
        "status": status.status,
        "status_reason": status.reason,
        "cost_usd": round(everything["cost_usd"], 6),
        "savings_usd": round(everything["strong_cost_usd"] - everything["cost_usd"], 6),
        "strong_cost_usd": round(everything["strong_cost_usd"], 6),
        "shadow_cost_usd": round(everything["shadow_cost_usd"], 6),
        "feedback_negative": everything["feedback_negative"],
        "feedback_total": everything["feedback_total"],
    }


def _segment_names(application: Application, ids: set[int]) -> dict[int, tuple[str, str]]:
    from segments.models import Segment  # the segments app owns the names

    return {
        row["id"]: (row["slug"], row["name"])
        for row in Segment.objects.filter(application=application, id__in=ids).values("id", "slug", "name")
    }


def segment_stats(
    *,
    application: Application,
    router_version: RouterVersion | None,
    window: timedelta,
    segment_slug: str | None = None,
    now: datetime | None = None,
) -> dict:
    """API.md's `GET /api/v1/segments/stats` body (without the window label).

    One query over the rollups; segments sorted by impact (largest first), then name.
    """
    overall_by_tier: dict[str, Sums] = {}
    by_segment: dict[int, dict[str, Sums]] = {}
    if router_version is not None:
        rows = (
            HourlyRollup.objects.filter(
                application=application, router_version_id=router_version.id, hour__gte=window_start(window, now)
            )
            .values("segment_id", "tier")
            .annotate(**{key: Sum(key) for key in SUM_FIELDS})
        )
        for row in rows:
            target = (
                overall_by_tier if row["segment_id"] == ALL_TRAFFIC else by_segment.setdefault(row["segment_id"], {})
            )
            target.setdefault(row["tier"], Sums()).add(row)
    all_decisions = _combined(*overall_by_tier.values())["decisions"]
    names = _segment_names(application, set(by_segment)) if by_segment else {}
    segments = [
        _entry(names[seg_id][0], names[seg_id][1], tiers, all_decisions, application)
        for seg_id, tiers in by_segment.items()
        if seg_id in names and (segment_slug is None or names[seg_id][0] == segment_slug)
    ]
    segments.sort(key=lambda e: (-(e["impact"] or 0.0), e["segment"]))
    return {
        "router_version": router_version.name if router_version else None,
        "overall": _entry("all", "All traffic", overall_by_tier, all_decisions, application),
        "segments": segments,
    }


def rate_series(
    *,
    application: Application,
    router_version: RouterVersion | None,
    window: timedelta,
    segment_id: int = ALL_TRAFFIC,
    now: datetime | None = None,
) -> list[dict]:
    """Per time bucket (hour for windows ≤ 48 h, else day): decisions, cheap share, regret
    and disagreement with intervals. One query."""
    if router_version is None:
        return []
    rows = HourlyRollup.objects.filter(
        application=application,
        router_version_id=router_version.id,
        segment_id=segment_id,
        hour__gte=window_start(window, now),
    )
    if window <= timedelta(hours=48):
        grouped = rows.values("hour", "tier").annotate(**{key: Sum(key) for key in SUM_FIELDS}).order_by("hour")
        key_name = "hour"
    else:
        grouped = (
            rows.annotate(day=TruncDay("hour"))
            .values("day", "tier")
            .annotate(**{key: Sum(key) for key in SUM_FIELDS})
            .order_by("day")
        )
        key_name = "day"
    buckets: dict[datetime, dict[str, Sums]] = {}
    for row in grouped:
        buckets.setdefault(row[key_name], {}).setdefault(row["tier"], Sums()).add(row)
    series = []
    for when, by_tier in sorted(buckets.items()):
        everything = _combined(*by_tier.values())
        cheap = by_tier.get("cheap", Sums())
        series.append(
            {
                "t": when.isoformat(),
                "decisions": everything["decisions"],
                "cheap_share": cheap["decisions"] / everything["decisions"] if everything["decisions"] else None,
                "cost_usd": everything["cost_usd"],
                "strong_cost_usd": everything["strong_cost_usd"],
                "regret_rate": _rate(cheap, "bad"),
                "disagreement_rate": _rate(everything, "disagree"),
            }
        )
    return series
