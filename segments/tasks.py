"""Celery interfaces of the segments app: they take ids and call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def segment_backfill_task(segment_id: int) -> None:
    from segments.services import segment_backfill

    segment_backfill(segment_id)


@shared_task(acks_late=True)
def segment_membership_purge_task(application_id: int, segment_id: int) -> None:
    from segments.services import segment_membership_purge

    segment_membership_purge(application_id=application_id, segment_id=segment_id)


@shared_task(acks_late=True)
def segment_backfill_sweep_task() -> int:
    from segments.services import segment_backfill_sweep

    return segment_backfill_sweep()


@shared_task(acks_late=True)
def discovery_run_task(run_id: int) -> None:
    from segments.discovery import discovery_run

    discovery_run(run_id)


@shared_task(acks_late=True)
def discovery_sweep_task() -> int:
    from segments.discovery import discovery_sweep

    return discovery_sweep()
