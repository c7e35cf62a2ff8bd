"""Celery interface of the privacy app: thin, calls one service."""

from __future__ import annotations

from celery import shared_task

from router_ops.privacy.services import retention_purge


@shared_task(name="router_ops.privacy.tasks.retention_purge_task", ignore_result=True)
def retention_purge_task() -> dict[str, int]:
    # Idempotent: a second delivery finds nothing left to purge.
    return retention_purge()
