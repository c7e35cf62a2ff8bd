"""Celery interfaces of the shadow pipeline: take ids, call one service.

Time limits bound a prefork worker; under `-P threads` Celery cannot interrupt a
thread, so the provider adapter's explicit HTTP timeouts bound each call and the
outbox lease (SHADOW_LEASE_S, longer than a run can take) re-sends anything stuck.
"""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings

from router_ops.shadow import outbox, services

RETRY_CAP_S = 600.0


def retry_countdown(retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    base = float(getattr(settings, "SHADOW_RETRY_BASE_S", 10.0))
    delay = min(RETRY_CAP_S, base * 2**retries) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def max_retries() -> int:
    return int(getattr(settings, "SHADOW_TASK_MAX_RETRIES", 3))


@shared_task(name=outbox.TASK_RELAY, ignore_result=True, acks_late=True, soft_time_limit=50, time_limit=60, expires=30)
def outbox_relay(batch_size: int = 500) -> dict:
    result = outbox.outbox_relay(batch_size=batch_size)
    return {"shadow_sent": result.shadow_sent, "judge_sent": result.judge_sent, "send_failures": result.send_failures}


@shared_task(
    name=outbox.TASK_SHADOW_RUN,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def shadow_run(self, sample_id: int) -> str:
    limit = max_retries()
    try:
        outcome = services.shadow_run_execute(sample_id=sample_id, final_attempt=self.request.retries >= limit)
    except services.ShadowRetry as exc:
        raise self.retry(countdown=retry_countdown(self.request.retries, exc.retry_after), max_retries=limit) from exc
    return outcome.status
