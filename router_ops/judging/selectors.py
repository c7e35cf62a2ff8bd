"""Reads of the judging app."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from rest_framework.exceptions import NotFound

from router_ops.applications.models import Application
from router_ops.judging.models import Judge, Judgment


def judges_list(*, application: Application) -> QuerySet[Judge]:
    return Judge.objects.filter(application=application).order_by("id")


def judge_get(*, application: Application, pk: int) -> Judge:
    judge = Judge.objects.filter(application=application, pk=pk).first()
    if judge is None:
        raise NotFound(f"No judge {pk} in this application.")
    return judge


def judge_position_inconsistency(*, judge: Judge) -> dict:
    """Share of a pairwise judge's successful judgments whose two orders disagreed
    (the position-bias metric, DESIGN.md §5)."""
    row = Judgment.objects.filter(judge=judge, status=Judgment.OK, swap_consistent__isnull=False).aggregate(
        n=Count("id"), inconsistent=Count("id", filter=Q(swap_consistent=False))
    )
    n = row["n"]
    return {"judged": n, "inconsistent": row["inconsistent"], "rate": (row["inconsistent"] / n) if n else None}
