"""Server-rendered pages. Thin: each resolves the application the user may see,
calls selectors and renders a template."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render

from router_ops.alerts.forms import AlertRuleForm
from router_ops.alerts.models import AlertEvent, AlertRule
from router_ops.alerts.services import alert_rule_create
from router_ops.applications.models import Membership
from router_ops.dashboard import selectors
from router_ops.dashboard.charts import chart_payload
from router_ops.rollups.selectors import parse_window, rate_series, segment_stats

PAIRS_PER_PAGE = 10
ALERT_EVENTS_SHOWN = 100


def _scope(request, slug: str, tab: str) -> dict:
    """What every application page needs: the application (404 for non-members),
    the window and router version pickers, the user's role and the active tab."""
    application = selectors.application_for_user(user=request.user, slug=slug)
    window_text = request.GET.get("window") or selectors.DEFAULT_WINDOW
    if window_text not in selectors.WINDOWS:
        window_text = selectors.DEFAULT_WINDOW
    versions = selectors.router_versions_list(application=application)
    version = selectors.router_version_pick(
        application=application, versions=versions, name=request.GET.get("version") or None
    )
    return {
        "application": application,
        "window_text": window_text,
        "window": parse_window(window_text),
        "windows": selectors.WINDOWS,
        "versions": versions,
        "version": version,
        "tab": tab,
        "thresholds": {"watch": application.regret_watch, "alert": application.regret_alert},
    }


def _interval_scale(entries: list[dict], application) -> float:
    """Common x-axis for a table's interval bars: covers every upper bound and the alert level."""
    highs = [e["regret_rate"]["high"] for e in entries if e["regret_rate"]["estimate"] is not None]
    top = max([application.regret_alert * 1.5, *highs]) if highs else application.regret_alert * 1.5
    return min(1.0, max(top, 0.05))


@login_required
def home(request):
    applications = selectors.applications_for_user(request.user).annotate(
        segment_count=Count("segments", distinct=True)
    )
    if applications.count() == 1:
        return redirect("dashboard:overview", applications.first().slug)
    return render(request, "dashboard/home.html", {"applications": applications})


@login_required
def overview(request, slug: str):
    scope = _scope(request, slug, "overview")
    stats = segment_stats(application=scope["application"], router_version=scope["version"], window=scope["window"])
    series = rate_series(application=scope["application"], router_version=scope["version"], window=scope["window"])
    worst = [e for e in stats["segments"] if e["impact"]][:5] or stats["segments"][:5]
    return render(
        request,
        "dashboard/overview.html",
        {
            **scope,
            "overall": stats["overall"],
            "worst": worst,
            "segment_count": len(stats["segments"]),
            "status_counts": _status_counts(stats["segments"]),
            "chart": chart_payload(series, hourly=scope["window"] <= timedelta(hours=48)),
            "scale": _interval_scale(worst, scope["application"]),
        },
    )


def _status_counts(entries: list[dict]) -> dict[str, int]:
    counts = {"alert": 0, "watch": 0, "ok": 0, "insufficient_data": 0}
    for entry in entries:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return counts


@login_required
def segments(request, slug: str):
    scope = _scope(request, slug, "segments")
    stats = segment_stats(application=scope["application"], router_version=scope["version"], window=scope["window"])
    defined = selectors.segments_by_slug(application=scope["application"])
    rows = [{**entry, "segment_obj": defined.get(entry["segment"])} for entry in stats["segments"]]
    seen = {entry["segment"] for entry in stats["segments"]}
    quiet = [segment for slug_, segment in sorted(defined.items()) if slug_ not in seen]
    return render(
        request,
        "dashboard/segments.html",
        {
            **scope,
            "overall": stats["overall"],
            "rows": rows,
            "quiet": quiet,
            "defined_count": len(defined),
            "status_counts": _status_counts(stats["segments"]),
            "scale": _interval_scale([*stats["segments"], stats["overall"]], scope["application"]),
        },
    )


@login_required
def segment_detail(request, slug: str, segment_slug: str):
    scope = _scope(request, slug, "segments")
    application = scope["application"]
    segment = selectors.segment_get(application=application, slug=segment_slug)
    stats = segment_stats(
        application=application, router_version=scope["version"], window=scope["window"], segment_slug=segment.slug
    )
    entry = stats["segments"][0] if stats["segments"] else None
    series = rate_series(
        application=application, router_version=scope["version"], window=scope["window"], segment_id=segment.id
    )
    kind = request.GET.get("pairs", "all")
    if kind not in selectors.PAIR_FILTERS:
        kind = "all"
    pairs = selectors.example_pairs(
        application=application, router_version=scope["version"], window=scope["window"], segment=segment, kind=kind
    )
    page = Paginator(pairs, PAIRS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "dashboard/segment_detail.html",
        {
            **scope,
            "segment": segment,
            "entry": entry,
            "overall": stats["overall"],
            "chart": chart_payload(series, hourly=scope["window"] <= timedelta(hours=48)),
            "feedback": selectors.feedback_by_kind(
                application=application, router_version=scope["version"], window=scope["window"], segment=segment
            ),
            "page": page,
            "pair_kind": kind,
            "pair_kinds": [
                ("all", "All judged"),
                ("regret", "Regret"),
                ("disagree", "Disagree"),
                ("overspend", "Overspend"),
            ],
        },
    )


@login_required
def pair_detail(request, slug: str, sample_id: int):
    scope = _scope(request, slug, "segments")
    sample = selectors.pair_get(application=scope["application"], sample_id=sample_id)
    decision = sample.decision
    segments_of = [
        s for s in selectors.segments_by_slug(application=scope["application"]).values() if s.id in decision.segment_ids
    ]
    return render(
        request,
        "dashboard/pair_detail.html",
        {
            **scope,
            "sample": sample,
            "decision": decision,
            "run": getattr(sample, "run", None),
            "judgments": list(sample.judgments.all()),
            "feedback": list(decision.feedback.order_by("occurred_at")),
            "pair_segments": segments_of,
            "attributes": sorted((decision.attributes or {}).items()),
        },
    )


@login_required
def compare(request, slug: str):
    scope = _scope(request, slug, "compare")
    versions = scope["versions"]
    by_name = {v.name: v for v in versions}
    a_name = request.GET.get("a") or (scope["version"].name if scope["version"] else None)
    b_name = request.GET.get("b") or next((v.name for v in versions if v.name != a_name), None)
    if (a_name and a_name not in by_name) or (b_name and b_name not in by_name):
        raise Http404("No such router version")
    comparison = None
    if a_name and b_name:
        comparison = selectors.version_comparison(
            application=scope["application"], a=by_name[a_name], b=by_name[b_name], window=scope["window"]
        )
    return render(request, "dashboard/compare.html", {**scope, "a": a_name, "b": b_name, "comparison": comparison})


@login_required
def alerts(request, slug: str):
    scope = _scope(request, slug, "alerts")
    application = scope["application"]
    role = selectors.user_role(user=request.user, application=application)
    can_edit = role in (Membership.ROLE_OPERATOR, Membership.ROLE_ADMIN)
    form = AlertRuleForm()
    if request.method == "POST":
        if not can_edit:
            raise Http404("Not allowed")
        form = AlertRuleForm(request.POST)
        if form.is_valid():
            alert_rule_create(application=application, **form.cleaned_data)
            messages.success(request, "Alert rule saved. It is evaluated every minute.")
            return redirect("dashboard:alerts", application.slug)
    events = AlertEvent.objects.filter(application=application).select_related("rule")[:ALERT_EVENTS_SHOWN]
    return render(
        request,
        "dashboard/alerts.html",
        {
            **scope,
            "rules": AlertRule.objects.filter(application=application),
            "events": events,
            "form": form,
            "can_edit": can_edit,
        },
    )
