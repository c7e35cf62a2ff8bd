"""Reads of the segments app: segments, dimensions and the automatic slices they yield."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, QuerySet
from django.utils import timezone

from router_ops.applications.models import Application
from router_ops.ingest.models import Decision
from segments import dsl
from segments.models import Dimension, Segment
from segments.rule_q import rule_q

MAX_SLICES_PER_DIMENSION = 100


def segment_list(*, application: Application) -> QuerySet[Segment]:
    return Segment.objects.filter(application=application).order_by("slug")


def dimension_list(*, application: Application) -> QuerySet[Dimension]:
    return Dimension.objects.filter(application=application).order_by("path")


@dataclass(frozen=True)
class Slice:
    """One automatic slice: `rule` selects exactly the `count` decisions counted."""

    dimension_id: int
    path: str
    label: str
    count: int
    share: float
    rule: str


@dataclass(frozen=True)
class DimensionSlices:
    dimension_id: int
    path: str
    total: int
    min_share: float
    slices: list[Slice]


def _bucket_nodes(path: dsl.Path, edges: list[float]) -> list[tuple[str, dsl.Node]]:
    name = dsl.render_path(path)
    bounds = [Decimal(int(edge)) if float(edge).is_integer() else Decimal(repr(float(edge))) for edge in edges]
    nodes: list[tuple[str, dsl.Node]] = [
        (f"{name} < {dsl.format_number(bounds[0])}", dsl.Compare(path, "<", bounds[0]))
    ]
    for low, high in zip(bounds, bounds[1:], strict=False):
        label = f"{dsl.format_number(low)} ≤ {name} < {dsl.format_number(high)}"
        nodes.append((label, dsl.And((dsl.Compare(path, ">=", low), dsl.Compare(path, "<", high)))))
    nodes.append((f"{name} ≥ {dsl.format_number(bounds[-1])}", dsl.Compare(path, ">=", bounds[-1])))
    nodes.append((f"{name} missing", dsl.Not(dsl.Exists(path))))
    return nodes


_ATTRIBUTE_VALUES = """
SELECT min(v::text), min(jsonb_typeof(v)), count(*) AS n
FROM (
    SELECT CASE WHEN jsonb_typeof(attributes #> %(path)s::text[]) = 'null' THEN NULL
                ELSE attributes #> %(path)s::text[] END AS v
    FROM ingest_decision
    WHERE application_id = %(app)s AND occurred_at >= %(since)s AND occurred_at < %(until)s
) values_in_window
GROUP BY v
HAVING count(*) >= %(threshold)s
ORDER BY n DESC, 1
LIMIT %(limit)s
"""


def _attribute_values(application: Application, path: dsl.Path, since, until, threshold: int) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            _ATTRIBUTE_VALUES,
            {
                "path": list(path.keys),
                "app": application.id,
                "since": since,
                "until": until,
                "threshold": threshold,
                "limit": MAX_SLICES_PER_DIMENSION,
            },
        )
        return cursor.fetchall()


def _categorical_nodes(application, path: dsl.Path, base: QuerySet, since, until, threshold: int):
    """(label, node, count) per frequent value; a value the rule language cannot name
    (a list or an object) is left out."""
    out = []
    if path.field:
        column = "router_version__name" if path.field == "router_version" else path.field
        rows = (base.values_list(column).annotate(n=Count("id")).filter(n__gte=threshold).order_by("-n", column))[
            :MAX_SLICES_PER_DIMENSION
        ]
        for value, count in rows:
            if value is None:
                out.append((f"{path.field} missing", dsl.Not(dsl.Exists(path)), count))
                continue
            literal = value if isinstance(value, str) else _number(value)
            out.append((f"{path.field} = {dsl.render_literal(literal)}", dsl.Compare(path, "==", literal), count))
        return out
    name = dsl.render_path(path)
    for text, kind, count in _attribute_values(application, path, since, until, threshold):
        if text is None:
            out.append((f"{name} missing", dsl.Not(dsl.Exists(path)), count))
        elif kind == "string":
            literal = json.loads(text)
            out.append((f"{name} = {dsl.render_literal(literal)}", dsl.Compare(path, "==", literal), count))
        elif kind == "number":
            literal = Decimal(text)
            out.append((f"{name} = {dsl.format_number(literal)}", dsl.Compare(path, "==", literal), count))
        elif kind == "boolean":
            out.append((f"{name} = {text}", dsl.Compare(path, "==", text == "true"), count))
    return out


def _number(value) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def dimension_slices(
    *, application: Application, window: timedelta, now: datetime | None = None
) -> list[DimensionSlices]:
    """For each active dimension, the slices holding at least `min_share` of the
    decisions that occurred in the window: one per frequent value, or one per
    bucket for a dimension with `bucket_edges`. Each slice carries a rule that
    selects exactly the decisions it counts (so "make this a segment" is a copy).
    """
    until = now or timezone.now()
    since = until - window
    base = Decision.objects.filter(application=application, occurred_at__gte=since, occurred_at__lt=until)
    total = base.count()
    results = []
    for dimension in Dimension.objects.filter(application=application, active=True).order_by("path"):
        path = dsl.parse_path(dimension.path)
        threshold = max(1, math.ceil(dimension.min_share * total - 1e-9))
        slices: list[Slice] = []
        if total:
            if dimension.bucket_edges:
                nodes = _bucket_nodes(path, dimension.bucket_edges)
                counts = base.aggregate(
                    **{f"b{i}": Count("id", filter=rule_q(node)) for i, (_, node) in enumerate(nodes)}
                )
                found = [(label, node, counts[f"b{i}"]) for i, (label, node) in enumerate(nodes)]
                found = [item for item in found if item[2] >= threshold]
            else:
                found = _categorical_nodes(application, path, base, since, until, threshold)
            slices = [
                Slice(dimension.id, dimension.path, label, count, count / total, dsl.render(node))
                for label, node, count in found
            ]
        results.append(DimensionSlices(dimension.id, dimension.path, total, dimension.min_share, slices))
    return results
