"""Turning a rate series into the arrays the page's Chart.js charts read (via json_script)."""

from __future__ import annotations

from datetime import datetime


def _label(iso: str, hourly: bool) -> str:
    when = datetime.fromisoformat(iso)
    return when.strftime("%b %d %H:00") if hourly else when.strftime("%b %d")


def chart_payload(series: list[dict], *, hourly: bool) -> dict:
    """Percentages (0–100) rounded for display; None where a bucket has no judged pair."""

    def pct(value):
        return None if value is None else round(100 * value, 2)

    def band(key: str) -> dict:
        rates = [point[key] for point in series]
        return {
            "estimate": [pct(r["estimate"]) for r in rates],
            "low": [pct(r["low"]) if r["estimate"] is not None else None for r in rates],
            "high": [pct(r["high"]) if r["estimate"] is not None else None for r in rates],
            "n": [r["n"] for r in rates],
        }

    return {
        "labels": [_label(point["t"], hourly) for point in series],
        "decisions": [point["decisions"] for point in series],
        "cheap_share": [pct(point["cheap_share"]) for point in series],
        "regret": band("regret_rate"),
        "disagreement": band("disagreement_rate"),
    }
