"""Reads behind the dashboard pages. Every number comes from the rollup selectors
(the same ones the stats API uses); only example pairs and feedback kinds read raw rows,
one bounded page at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404

from router_ops.applications.models import Application, Membership
from router_ops.ingest.models import Feedback
from router_ops.judging.models import Judgment
from router_ops.rollouts.models import RouterVersion
from router_ops.rollups.selectors import default_router_version, segment_stats, window_start
from router_ops.shadow.models import ShadowSample
from segments.models import Segment

WINDOWS = ("24h", "7d", "30d")
DEFAULT_WINDOW = "7d"


def applications_for_user(user) -> QuerySet[Application]:
    if user.is_superuser:
        return Application.objects.all()
    return Application.objects.filter(memberships__user=user)


def application_for_user(*, user, slug: str) -> Application:
    """The application if the user may see it; 404 otherwise (never 403: its existence is private)."""
    application = applications_for_user(user).filter(slug=slug).first()
    if application is None:
        raise Http404("No such application")
    return application


def user_role(*, user, application: Application) -> str | None:
    if user.is_superuser:
        return Membership.ROLE_ADMIN
    return Membership.objects.filter(user=user, application=application).values_list("role", flat=True).first()


def router_versions_list(*, application: Application) -> list[RouterVersion]:
    return list(RouterVersion.objects.filter(application=application).order_by("-created_at"))


def router_version_pick(
    *, application: Application, versions: list[RouterVersion], name: str | None
) -> RouterVersion | None:
    """The named version (404 when unknown), else the default the stats API uses."""
    if name:
        for version in versions:
            if version.name == name:
                return version
        raise Http404("No such router version")
    if not versions:
        return None
    for version in versions:
        if version.status == RouterVersion.STATUS_ACTIVE:
            return version
    return default_router_version(application)


def segments_by_slug(*, application: Application) -> dict[str, Segment]:
    return {s.slug: s for s in Segment.objects.filter(application=application)}


def segment_get(*, application: Application, slug: str) -> Segment:
    segment = Segment.objects.filter(application=application, slug=slug).first()
    if segment is None:
        raise Http404("No such segment")
    return segment


PAIR_FILTERS = {
    "all": Q(),
    "regret": Q(direction=ShadowSample.DIRECTION_UP, verdict="shadow_better"),
    "disagree": Q(materially_disagree=True),
    "overspend": Q(direction=ShadowSample.DIRECTION_DOWN) & ~Q(verdict="primary_better"),
}


def example_pairs(
    *,
    application: Application,
    router_version: RouterVersion | None,
    window: timedelta,
    segment: Segment | None = None,
    kind: str = "all",
) -> QuerySet[ShadowSample]:
    """Judged pairs, newest first, with everything a pair card shows in 2 queries per page."""
    if router_version is None:
        return ShadowSample.objects.none()
    pairs = ShadowSample.objects.filter(
        application=application,
        decision__router_version_id=router_version.id,
        decision__occurred_at__gte=window_start(window),
    ).exclude(verdict="")
    if segment is not None:
        pairs = pairs.filter(segment_ids__contains=[segment.id])
    return (
        pairs.filter(PAIR_FILTERS.get(kind, Q()))
        .select_related("decision", "run")
        .prefetch_related(
            Prefetch("judgments", queryset=Judgment.objects.select_related("judge").order_by("-created_at"))
        )
        .order_by("-id")
    )


def pair_get(*, application: Application, sample_id: int) -> ShadowSample:
    sample = (
        ShadowSample.objects.filter(application=application, id=sample_id)
        .select_related("decision", "run")
        .prefetch_related(
            Prefetch("judgments", queryset=Judgment.objects.select_related("judge").order_by("-created_at"))
        )
        .first()
    )
    if sample is None:
        raise Http404("No such pair")
    return sample


def feedback_by_kind(
    *, application: Application, router_version: RouterVersion | None, window: timedelta, segment: Segment
) -> list[dict]:
    """Feedback signals on the segment's decisions in the window, by kind (one grouped query)."""
    if router_version is None:
        return []
    rows = (
        Feedback.objects.filter(
            application=application,
            decision__router_version_id=router_version.id,
            decision__occurred_at__gte=window_start(window),
            decision__segment_ids__contains=[segment.id],
        )
        .values("kind")
        .annotate(count=Count("id"))
        .order_by("-count", "kind")
    )
    return list(rows)


def version_comparison(
    *, application: Application, a: RouterVersion, b: RouterVersion, window: timedelta, now: datetime | None = None
) -> dict:
    """Per segment, both versions' regret, cheap share and quality loss per request
    (cheap share × regret: the share of all requests that got a worse answer)."""
    left = segment_stats(application=application, router_version=a, window=window, now=now)
    right = segment_stats(application=application, router_version=b, window=window, now=now)

    def loss(entry: dict | None) -> float | None:
        if not entry or entry["cheap_share"] is None or entry["regret_rate"]["estimate"] is None:
            return None
        return entry["cheap_share"] * entry["regret_rate"]["estimate"]

    by_a = {e["segment"]: e for e in left["segments"]}
    by_b = {e["segment"]: e for e in right["segments"]}
    slugs = sorted(set(by_a) | set(by_b), key=lambda s: (-(max(loss(by_a.get(s)) or 0, loss(by_b.get(s)) or 0)), s))
    rows = []
    for slug, ea, eb in [("all", left["overall"], right["overall"])] + [(s, by_a.get(s), by_b.get(s)) for s in slugs]:
        la, lb = loss(ea), loss(eb)
        rows.append(
            {
                "segment": slug,
                "name": (ea or eb)["name"],
                "a": ea,
                "b": eb,
                "loss_a": la,
                "loss_b": lb,
                "loss_delta": (lb - la) if la is not None and lb is not None else None,
            }
        )
    return {"overall": rows[0], "segments": rows[1:]}
