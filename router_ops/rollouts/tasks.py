"""Celery interface of the rollouts app: thin, idempotent, scheduled in router_ops/celery.py."""

from __future__ import annotations

from celery import shared_task

from router_ops.rollouts.services import rollouts_sweep


@shared_task(name="router_ops.rollouts.tasks.rollouts_sweep_task", ignore_result=True)
def rollouts_sweep_task() -> None:
    """Re-check every running rollout's gates: roll back clear failures, advance passing stages."""
    rollouts_sweep()
