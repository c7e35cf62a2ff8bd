"""Writes of the segments app: segments, their membership backfill, dimensions."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django.db.models import Count, F, Func, Max, Q, Value
from django.utils import timezone

from router_ops.applications.models import Application
from router_ops.ingest.models import Decision
from router_ops.rollups.services import rollup_mark_dirty_for_id_range
from segments.models import Dimension, Segment
from segments.rule_q import rule_q

logger = logging.getLogger(__name__)

SEGMENT_FIELDS = ("slug", "name", "rule", "active")
DIMENSION_FIELDS = ("path", "min_share", "bucket_edges", "active")


def _array_func(function: str, segment_id: int) -> Func:
    return Func(
        F("segment_ids"),
        Value(segment_id),
        function=function,
        output_field=ArrayField(models.IntegerField()),
    )


def _enqueue_backfill(segment_id: int) -> None:
    from segments.tasks import segment_backfill_task

    # robust: a broker outage must not turn a committed change into a 500; the
    # segment stays "pending" and segment_backfill_sweep enqueues it again.
    transaction.on_commit(lambda: segment_backfill_task.delay(segment_id), robust=True)


def _reset_backfill(segment: Segment) -> None:
    segment.backfill_status = Segment.BACKFILL_PENDING
    segment.backfill_through_id = 0
    segment.backfill_upto_id = None
    segment.backfill_processed = 0
    segment.backfill_total = None
    segment.backfill_started_at = None
    segment.backfill_finished_at = None
    segment.backfill_error = ""


def segment_create(*, application: Application, slug: str, rule: str, name: str = "", active: bool = True) -> Segment:
    """Validate and store a segment, then backfill its membership once committed."""
    segment = Segment(application=application, slug=slug, name=name, rule=rule.strip(), active=active)
    _reset_backfill(segment)
    segment.full_clean()
    with transaction.atomic():
        segment.save()
        _enqueue_backfill(segment.id)
    return segment


def segment_update(*, segment: Segment, **changes) -> Segment:
    """Change fields of a segment. A new rule, or reactivation, re-runs the backfill
    (the cursor restarts at 0, so a backfill in flight continues with the new rule)."""
    unknown = set(changes) - set(SEGMENT_FIELDS)
    if unknown:
        raise TypeError(f"segment_update got unknown fields: {sorted(unknown)}")
    if "rule" in changes:
        changes["rule"] = changes["rule"].strip()
    rerun = ("rule" in changes and changes["rule"] != segment.rule) or (
        changes.get("active") is True and not segment.active
    )
    for field, value in changes.items():
        setattr(segment, field, value)
    segment.full_clean()
    with transaction.atomic():
        if rerun:
            # Lock first: a running batch holds this row and must finish before the reset.
            Segment.objects.select_for_update().filter(id=segment.id).first()
            _reset_backfill(segment)
        segment.save()
        if rerun:
            _enqueue_backfill(segment.id)
    return segment


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment and, once committed, remove its id from every decision."""
    from segments.tasks import segment_membership_purge_task

    application_id, segment_id = segment.application_id, segment.id
    with transaction.atomic():
        segment.delete()
        transaction.on_commit(lambda: segment_membership_purge_task.delay(application_id, segment_id), robust=True)


def segment_backfill_request(*, segment: Segment) -> Segment:
    """Re-run the backfill from the start (admin action, API)."""
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(id=segment.id)
        _reset_backfill(locked)
        locked.save(update_fields=[f.name for f in Segment._meta.fields if f.name.startswith("backfill_")])
        _enqueue_backfill(locked.id)
    return locked


def segment_backfill(segment_id: int, batch_size: int = 10_000) -> Segment | None:
    """Make `segment_ids` of existing decisions agree with the segment's rule.

    1. Claim: mark the segment running; on a fresh start fix the last decision id
       it covers (`backfill_upto_id`, later decisions get membership at ingestion)
       and the total to process.
    2. Batches, each its own transaction holding the segment row lock: take the
       next `batch_size` decisions of the application by id after the cursor;
       array_append the id where the rule matches and it is missing, array_remove
       it where the rule does not match and it is present; advance the cursor and
       the processed count in the same transaction.
    3. When the cursor reaches the bound: done. Idempotent and restartable: a
       second delivery or a restart resumes at the cursor, and re-applying a batch
       changes nothing. A rule change resets the cursor (segment_update) and marks
       the row pending, which stops this loop; the task enqueued by the change
       starts over with the new rule.
    On an error the segment is marked failed with the reason, and the error re-raised.
    """
    with transaction.atomic():
        segment = Segment.objects.select_for_update().filter(id=segment_id).first()
        if segment is None:
            return None
        if segment.backfill_status == Segment.BACKFILL_DONE:
            return segment
        if segment.backfill_upto_id is None:
            bounds = Decision.objects.filter(application_id=segment.application_id).aggregate(
                top=Max("id"), n=Count("id")
            )
            segment.backfill_upto_id = bounds["top"] or 0
            segment.backfill_total = bounds["n"]
            segment.backfill_through_id = 0
            segment.backfill_processed = 0
            segment.backfill_started_at = timezone.now()
        segment.backfill_status = Segment.BACKFILL_RUNNING
        segment.backfill_error = ""
        segment.save(update_fields=[f.name for f in Segment._meta.fields if f.name.startswith("backfill_")])
    try:
        while True:
            with transaction.atomic():
                segment = Segment.objects.select_for_update().filter(id=segment_id).first()
                if segment is None or segment.backfill_status != Segment.BACKFILL_RUNNING:
                    return segment
                if segment.backfill_through_id >= (segment.backfill_upto_id or 0):
                    segment.backfill_status = Segment.BACKFILL_DONE
                    segment.backfill_finished_at = timezone.now()
                    segment.save(update_fields=["backfill_status", "backfill_finished_at"])
                    return segment
                _backfill_batch(segment, batch_size)
    except Exception as exc:
        Segment.objects.filter(id=segment_id).update(
            backfill_status=Segment.BACKFILL_FAILED, backfill_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise


def _backfill_batch(segment: Segment, batch_size: int) -> None:
    low, bound = segment.backfill_through_id, segment.backfill_upto_id
    ids = Decision.objects.filter(application_id=segment.application_id, id__gt=low, id__lte=bound).order_by("id")
    # The pk index walks ids in order: the batch_size-th id after the cursor bounds the batch.
    edge = list(ids.values_list("id", flat=True)[batch_size - 1 : batch_size])
    high = edge[0] if edge else bound
    rows = Decision.objects.filter(application_id=segment.application_id, id__gt=low, id__lte=high)
    processed = batch_size if edge else rows.count()
    q = rule_q(segment.rule)
    added = (
        rows.filter(q)
        .exclude(segment_ids__contains=[segment.id])
        .update(segment_ids=_array_func("array_append", segment.id))
    )
    removed = rows.filter(~q, segment_ids__contains=[segment.id]).update(
        segment_ids=_array_func("array_remove", segment.id)
    )
    if added or removed:
        # Membership changed for old decisions: their hours' rollups must be recomputed.
        rollup_mark_dirty_for_id_range(application_id=segment.application_id, low_id=low, high_id=high)
    Segment.objects.filter(id=segment.id).update(
        backfill_through_id=high, backfill_processed=F("backfill_processed") + processed
    )


def segment_membership_purge(*, application_id: int, segment_id: int, batch_size: int = 10_000) -> int:
    """Remove a deleted segment's id from every decision, in bounded id ranges."""
    removed = 0
    low = 0
    top = Decision.objects.filter(application_id=application_id).aggregate(top=Max("id"))["top"] or 0
    while low < top:
        high = low + batch_size * 10
        changed = Decision.objects.filter(
            application_id=application_id, id__gt=low, id__lte=high, segment_ids__contains=[segment_id]
        ).update(segment_ids=_array_func("array_remove", segment_id))
        if changed:
            rollup_mark_dirty_for_id_range(application_id=application_id, low_id=low, high_id=high)
        removed += changed
        low = high
    return removed


def segment_backfill_sweep(*, stale_after: timedelta = timedelta(minutes=10)) -> int:
    """Enqueue backfills left pending (broker down at commit time) or running with no
    progress for a while (worker lost). Periodic; harmless when nothing is stale."""
    from segments.tasks import segment_backfill_task

    cutoff = timezone.now() - stale_after
    stale = Segment.objects.filter(
        Q(backfill_status=Segment.BACKFILL_PENDING, updated_at__lt=cutoff)
        | Q(backfill_status=Segment.BACKFILL_RUNNING, backfill_started_at__lt=cutoff)
    ).values_list("id", flat=True)
    count = 0
    for segment_id in stale:
        segment_backfill_task.delay(segment_id)
        count += 1
    return count


def dimension_create(
    *,
    application: Application,
    path: str,
    min_share: float = 0.01,
    bucket_edges: list[float] | None = None,
    active: bool = True,
) -> Dimension:
    dimension = Dimension(
        application=application,
        path=path.strip(),
        min_share=min_share,
        bucket_edges=list(bucket_edges or []),
        active=active,
    )
    dimension.full_clean()
    dimension.save()
    return dimension


def dimension_update(*, dimension: Dimension, **changes) -> Dimension:
    unknown = set(changes) - set(DIMENSION_FIELDS)
    if unknown:
        raise TypeError(f"dimension_update got unknown fields: {sorted(unknown)}")
    for field, value in changes.items():
        setattr(dimension, field, value.strip() if field == "path" else value)
    dimension.full_clean()
    dimension.save()
    return dimension


def dimension_delete(*, dimension: Dimension) -> None:
    dimension.delete()
