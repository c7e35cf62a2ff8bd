from __future__ import annotations

from celery import shared_task

from router_ops.alerts.services import alerts_evaluate_all


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def alerts_evaluate_task() -> int:
    """Evaluate segment alert rules of every application (run by beat)."""
    return alerts_evaluate_all()
