"""Offline eval sets against production traffic: upload (service) and comparison (selector).

The comparison answers "would the offline accuracy hold on our traffic?":

- per dimension (an attribute such as `channel`): each value's share in the eval
  set and in the traffic of the window, the population stability index (PSI) of
  the two mixes with its conventional level, and the offline accuracy
  post-stratified to the traffic's mix with an interval (router_ops/stats/drift.py);
- per segment: its share of the eval set and of traffic, and the eval accuracy
  inside it;
- blind spots: dimension values and segments with real traffic (share ≥ 1 %)
  that the eval set barely covers (share < 0.2 %).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from router_ops.applications.models import Application
from router_ops.ingest.models import Decision
from router_ops.ingest.services import application_tiers
from router_ops.stats.drift import population_stability_index, psi_contributions, psi_level, reweighted_accuracy
from segments import dsl
from segments.evalset_parse import EvalFileError, ParseReport, parse_eval_file
from segments.models import Dimension, EvalItem, EvalSet, Segment
from segments.predicate import compile_predicate

DEFAULT_WINDOW = timedelta(days=7)
COVERAGE_TRAFFIC_MIN = 0.01  # "real traffic": at least 1 % of decisions in the window
COVERAGE_EVAL_MAX = 0.002  # "almost no eval coverage": under 0.2 % of eval items
MAX_CATEGORIES = 100
MAX_AUTO_DIMENSIONS = 10
MISSING = "(missing)"
OTHER = "(other)"
# Fields an eval item has; a segment rule naming any other decision field cannot be
# evaluated on eval items.
EVAL_ITEM_FIELDS = {"routed_to", "prompt"}


class DimensionError(ValueError):
    """A `dimension` to compare by that eval items cannot have."""


__all__ = ["DimensionError", "EvalFileError", "evalset_create", "evalset_compare", "evalset_list"]


@transaction.atomic
def evalset_create(
    *, application: Application, name: str, data: bytes, fmt: str, filename: str = "", created_by=None
) -> tuple[EvalSet | None, ParseReport]:
    """Parse an uploaded file and store its good rows.

    1. Parse (segments/evalset_parse.py): a file-level problem raises EvalFileError.
    2. No good row: nothing is stored; the report says why (returns None).
    3. Otherwise one EvalSet with the counts and the first errors, and its items.
    """
    report = parse_eval_file(data, fmt, tiers=application_tiers(application))
    if not report.rows:
        return None, report
    eval_set = EvalSet.objects.create(
        application=application,
        name=name[:200] or filename[:200] or "eval set",
        format=fmt,
        filename=filename[:255],
        created_by=created_by
        if getattr(created_by, "is_authenticated", False) and getattr(created_by, "pk", None)
        else None,
        items_count=len(report.rows),
        rejected_count=report.rejected,
        errors=[str(e) for e in report.errors],
        correct_count=sum(1 for r in report.rows if r.correct),
    )
    EvalItem.objects.bulk_create(
        [
            EvalItem(
                eval_set=eval_set,
                line=r.line,
                prompt=r.prompt,
                attributes=r.attributes,
                routed_to=r.routed_to,
                correct=r.correct,
            )
            for r in report.rows
        ],
        batch_size=2000,
    )
    return eval_set, report


def evalset_delete(*, eval_set: EvalSet) -> None:
    eval_set.delete()


def evalset_list(*, application: Application) -> QuerySet[EvalSet]:
    return EvalSet.objects.filter(application=application).order_by("-created_at", "-id")


# --- comparison --------------------------------------------------------------------------------


def category_label(value) -> str:
    """One label per attribute value, the same for eval items and traffic."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _dig(attributes, keys: tuple[str, ...]):
    value = attributes
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Category:
    value: str
    eval_count: int
    eval_share: float
    eval_correct: int
    eval_accuracy: float | None
    traffic_count: int
    traffic_share: float
    psi_term: float
    under_covered: bool


@dataclass(frozen=True)
class Reweighted:
    estimate: float | None
    low: float
    high: float
    covered_share: float
    uncovered: dict[str, float]


@dataclass(frozen=True)
class DimensionComparison:
    path: str
    psi: float | None
    psi_level: str | None
    categories: list[Category]
    reweighted: Reweighted | None
    under_covered: list[str]


@dataclass(frozen=True)
class SegmentComparison:
    id: int
    slug: str
    name: str
    rule: str
    evaluable: bool
    traffic_count: int
    traffic_share: float
    eval_count: int | None
    eval_share: float | None
    eval_accuracy: float | None
    under_covered: bool


@dataclass(frozen=True)
class EvalSetComparison:
    eval_set_id: int
    window: timedelta
    since: datetime
    until: datetime
    eval_items: int
    traffic_decisions: int
    offline_accuracy: float | None
    headline_dimension: str | None
    headline: str
    dimensions: list[DimensionComparison] = field(default_factory=list)
    segments: list[SegmentComparison] = field(default_factory=list)


_TRAFFIC_VALUES = """
SELECT attributes #> %(path)s::text[] AS v, count(*) AS n
FROM ingest_decision
WHERE application_id = %(app)s AND occurred_at >= %(since)s AND occurred_at < %(until)s
GROUP BY v
ORDER BY n DESC
LIMIT %(limit)s
"""


def _traffic_counts(application: Application, keys: tuple[str, ...], since, until, total: int) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _TRAFFIC_VALUES,
            {"path": list(keys), "app": application.id, "since": since, "until": until, "limit": MAX_CATEGORIES},
        )
        counts: dict[str, int] = {}
        for value, n in cursor.fetchall():
            parsed = json.loads(value) if isinstance(value, str) else value
            label = category_label(parsed)
            counts[label] = counts.get(label, 0) + int(n)
    rest = total - sum(counts.values())
    if rest > 0:
        counts[OTHER] = counts.get(OTHER, 0) + rest
    return counts


def _compare_dimension(path: dsl.Path, items: list[EvalItem], traffic: dict[str, int]) -> DimensionComparison:
    eval_total: dict[str, int] = {}
    eval_correct: dict[str, int] = {}
    lumped = OTHER in traffic
    for item in items:
        label = category_label(_dig(item.attributes, path.keys))
        if lumped and label not in traffic:
            label = OTHER
        eval_total[label] = eval_total.get(label, 0) + 1
        eval_correct[label] = eval_correct.get(label, 0) + int(item.correct)
    n_eval, n_traffic = len(items), sum(traffic.values())
    psi = terms = None
    reweighted = None
    if n_eval and n_traffic:
        terms = psi_contributions(eval_total, traffic)
        psi = population_stability_index(eval_total, traffic)
        result = reweighted_accuracy(eval_correct, eval_total, traffic)
        reweighted = Reweighted(result.estimate, result.low, result.high, result.covered_share, result.uncovered)
    categories = []
    for label in sorted(set(eval_total) | set(traffic), key=lambda c: (-traffic.get(c, 0), -eval_total.get(c, 0), c)):
        e, t = eval_total.get(label, 0), traffic.get(label, 0)
        eval_share = e / n_eval if n_eval else 0.0
        traffic_share = t / n_traffic if n_traffic else 0.0
        categories.append(
            Category(
                value=label,
                eval_count=e,
                eval_share=eval_share,
                eval_correct=eval_correct.get(label, 0),
                eval_accuracy=eval_correct.get(label, 0) / e if e else None,
                traffic_count=t,
                traffic_share=traffic_share,
                psi_term=terms.get(label, 0.0) if terms else 0.0,
                under_covered=traffic_share >= COVERAGE_TRAFFIC_MIN and eval_share < COVERAGE_EVAL_MAX,
            )
        )
    return DimensionComparison(
        path=dsl.render_path(path),
        psi=psi,
        psi_level=psi_level(psi) if psi is not None else None,
        categories=categories,
        reweighted=reweighted,
        under_covered=[c.value for c in categories if c.under_covered],
    )


def _fields(node: dsl.Node) -> set[str]:
    if isinstance(node, (dsl.And, dsl.Or)):
        return set().union(*(_fields(item) for item in node.items))
    if isinstance(node, dsl.Not):
        return _fields(node.expr)
    return {node.path.field} if node.path.field else set()


def _dimension_paths(application: Application, items: list[EvalItem], dimension: str | None) -> list[dsl.Path]:
    if dimension:
        try:
            path = dsl.parse_path(dimension)
        except dsl.RuleError:
            raise DimensionError(
                f"{dimension!r} is not an attribute path; e.g. channel or attributes.client.name."
            ) from None
        if path.field:
            raise DimensionError(
                f"{dimension!r} is a decision field; eval items carry attributes only (e.g. channel, tenant)."
            )
        return [path]
    declared = []
    for d in Dimension.objects.filter(application=application, active=True, bucket_edges=[]).order_by("path"):
        path = dsl.parse_path(d.path)
        if not path.field:
            declared.append(path)
    if declared:
        return declared
    # Nothing declared: the eval set's own top-level attributes.
    keys = sorted({key for item in items for key in item.attributes if isinstance(key, str)})
    return [dsl.Path(None, (key,)) for key in keys[:MAX_AUTO_DIMENSIONS]]


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _headline(offline: float | None, dimension: DimensionComparison | None) -> str:
    if offline is None:
        return "The eval set has no items."
    if dimension is None or dimension.reweighted is None or dimension.reweighted.estimate is None:
        return f"offline {_pct(offline)}; no traffic in the window to compare with"
    r = dimension.reweighted
    half = 100 * (r.high - r.low) / 2
    return f"offline {_pct(offline)}; on your traffic's mix {_pct(r.estimate)} ± {half:.0f} (by {dimension.path})"


def evalset_compare(
    *, eval_set: EvalSet, window: timedelta = DEFAULT_WINDOW, dimension: str | None = None, now: datetime | None = None
) -> EvalSetComparison:
    """Eval-set mix against the traffic of [now − window, now), per dimension and per segment.

    Dimensions: `dimension` if given (an attribute path), else the application's
    active unbucketed attribute dimensions, else the eval set's top-level
    attributes. The headline re-weights by `dimension`, or by the dimension with
    the largest PSI (the mix that shifted most).
    """
    application = eval_set.application
    until = now or timezone.now()
    since = until - window
    items = list(EvalItem.objects.filter(eval_set=eval_set).only("attributes", "routed_to", "prompt", "correct"))
    decisions = Decision.objects.filter(application=application, occurred_at__gte=since, occurred_at__lt=until)
    total = decisions.count()
    offline = sum(1 for i in items if i.correct) / len(items) if items else None

    dimensions = [
        _compare_dimension(path, items, _traffic_counts(application, path.keys, since, until, total) if total else {})
        for path in _dimension_paths(application, items, dimension)
    ]
    if dimension:
        headline_dimension = dimensions[0] if dimensions else None
    else:
        scored = [d for d in dimensions if d.psi is not None]
        headline_dimension = max(scored, key=lambda d: d.psi) if scored else None

    segments = list(Segment.objects.filter(application=application, active=True).order_by("slug"))
    counts = (
        decisions.aggregate(**{f"s{s.id}": Count("id", filter=Q(segment_ids__contains=[s.id])) for s in segments})
        if segments and total
        else {}
    )
    segment_rows = []
    for segment in segments:
        traffic_count = counts.get(f"s{segment.id}", 0)
        traffic_share = traffic_count / total if total else 0.0
        evaluable = _fields(dsl.parse(segment.rule)) <= EVAL_ITEM_FIELDS
        eval_count = eval_share = eval_accuracy = None
        if evaluable:
            matches = compile_predicate(segment.rule)
            inside = [
                i for i in items if matches({"attributes": i.attributes, "routed_to": i.routed_to, "prompt": i.prompt})
            ]
            eval_count = len(inside)
            eval_share = eval_count / len(items) if items else 0.0
            eval_accuracy = sum(1 for i in inside if i.correct) / eval_count if eval_count else None
        segment_rows.append(
            SegmentComparison(
                id=segment.id,
                slug=segment.slug,
                name=segment.display_name,
                rule=segment.rule,
                evaluable=evaluable,
                traffic_count=traffic_count,
                traffic_share=traffic_share,
                eval_count=eval_count,
                eval_share=eval_share,
                eval_accuracy=eval_accuracy,
                under_covered=bool(
                    evaluable and traffic_share >= COVERAGE_TRAFFIC_MIN and (eval_share or 0.0) < COVERAGE_EVAL_MAX
                ),
            )
        )
    return EvalSetComparison(
        eval_set_id=eval_set.id,
        window=window,
        since=since,
        until=until,
        eval_items=len(items),
        traffic_decisions=total,
        offline_accuracy=offline,
        headline_dimension=headline_dimension.path if headline_dimension else None,
        headline=_headline(offline, headline_dimension),
        dimensions=dimensions,
        segments=segment_rows,
    )
