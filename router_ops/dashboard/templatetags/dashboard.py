"""Number formatting, status badges and interval bars shared by every dashboard page.

Formats are fixed here (not per template) so a number reads the same everywhere —
and the browser tests can format the API's numbers the same way."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.http import urlencode

register = template.Library()

DASH = "—"
STATUS_LABELS = {"ok": "OK", "watch": "Watch", "alert": "Alert", "insufficient_data": "Insufficient data", "": "New"}


def percent(value, digits: int = 1) -> str:
    if value is None:
        return DASH
    return f"{100 * value:.{digits}f} %"


@register.filter
def pct(value, digits=1):
    return percent(value, int(digits))


@register.filter
def pct0(value):
    return percent(value, 0)


@register.filter
def pp(value):
    """A difference of two rates, in percentage points, signed."""
    if value is None:
        return DASH
    return f"{100 * value:+.2f} pp"


@register.filter
def usd(value):
    if value is None:
        return DASH
    value = float(value)
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


@register.filter
def num(value):
    if value is None:
        return DASH
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


@register.filter
def interval(rate) -> str:
    """'8.4 % (7.1–9.9 %)' or '—'."""
    if not rate or rate.get("estimate") is None:
        return DASH
    return f"{100 * rate['estimate']:.1f} % ({100 * rate['low']:.1f}–{100 * rate['high']:.1f} %)"


@register.filter
def status_label(status) -> str:
    return STATUS_LABELS.get(status or "", status)


@register.simple_tag
def badge(status, reason=""):
    return format_html(
        '<span class="badge badge-{}" title="{}" data-status="{}">{}</span>',
        (status or "new").replace("_", "-"),
        reason or "",
        status or "",
        STATUS_LABELS.get(status or "", status),
    )


@register.simple_tag
def interval_bar(rate, scale, watch=None, alert=None):
    """A small bar: the 95 % interval as a band, the estimate as a tick, the alert level as a line."""
    if not rate or rate.get("estimate") is None:
        return format_html('<span class="ibar ibar-empty" title="No judged pairs"></span>')
    scale = float(scale) or 1.0

    def x(value: float) -> str:
        return f"{max(0.0, min(100.0, 100 * value / scale)):.2f}"

    marks = ""
    if alert is not None and alert <= scale:
        marks = format_html('<i class="ibar-alert" style="left:{}%"></i>', x(alert))
    low, high = rate["low"], rate["high"]
    return format_html(
        '<span class="ibar" title="95 % interval {}–{}, estimate {}">'
        '<b class="ibar-range" style="left:{}%;width:{}%"></b><b class="ibar-est" style="left:{}%"></b>{}</span>',
        percent(low),
        percent(high),
        percent(rate["estimate"]),
        x(low),
        f"{max(0.6, float(x(high)) - float(x(low))):.2f}",
        x(rate["estimate"]),
        marks,
    )


@register.simple_tag(takes_context=True)
def query(context, **changes):
    """The current query string with some parameters changed (None removes one)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = urlencode(sorted((k, v) for k, v in params.items()))
    return f"?{encoded}" if encoded else "?"


VERDICT_TEXT = {
    # (direction, verdict) → (label, css class): whether the router's choice was right.
    ("cheap_to_strong", "shadow_better"): ("Strong better · regret", "regret"),
    ("cheap_to_strong", "equivalent"): ("Equivalent", "fine"),
    ("cheap_to_strong", "primary_better"): ("Cheap better", "fine"),
    ("strong_to_cheap", "primary_better"): ("Strong better", "fine"),
    ("strong_to_cheap", "equivalent"): ("Equivalent · overspend", "overspend"),
    ("strong_to_cheap", "shadow_better"): ("Cheap better · overspend", "overspend"),
}


@register.filter
def verdict_label(sample, verdict=None) -> str:
    """The verdict in the reader's terms: which tier's answer was better, and what it means."""
    return VERDICT_TEXT.get((sample.direction, verdict or sample.verdict), ("Not judged", "none"))[0]


@register.filter
def verdict_class(sample, verdict=None) -> str:
    return VERDICT_TEXT.get((sample.direction, verdict or sample.verdict), ("Not judged", "none"))[1]


@register.filter
def cheap_answer(sample) -> str | None:
    run = getattr(sample, "run", None)
    if sample.direction == "cheap_to_strong":
        return sample.decision.response
    return run.response if run else None


@register.filter
def strong_answer(sample) -> str | None:
    run = getattr(sample, "run", None)
    if sample.direction == "cheap_to_strong":
        return run.response if run else None
    return sample.decision.response


@register.filter
def first_judgment(sample):
    judgments = list(sample.judgments.all())
    return next((j for j in judgments if j.status == "ok"), judgments[0] if judgments else None)


@register.filter
def x100(value) -> str:
    """A rate as a plain percentage number for data attributes (charts)."""
    return "" if value is None else f"{100 * float(value):.4g}"
