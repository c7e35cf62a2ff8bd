"""Celery interfaces of the shadow pipeline: take ids, call one service.

Time limits bound a prefork worker; under `-P threads` Celery cannot interrupt a
thread, so the provider adapter's explicit HTTP timeouts bound each call and the
outbox lease (SHADOW_LEASE_S, longer than a run can take) re-sends anything stuck.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from router_ops.shadow import outbox, services

logger = logging.getLogger(__name__)

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


def ids_of(sample_ids: list[int] | int) -> list[int]:
    """A message's sample ids (a message sent before batching carried a single id)."""
    return [sample_ids] if isinstance(sample_ids, int) else [int(i) for i in sample_ids]


def retries_send(task, outcomes: dict, queue: str) -> None:
    """Send the batch's jobs that failed transiently again later, as one message: backoff
    from their attempt count, never sooner than the provider asked. If the send fails,
    the rows' leases bring them back through the relay."""
    retry = {sample_id: o for sample_id, o in outcomes.items() if o.status == "retry"}
    if not retry:
        return
    attempt = max(o.attempt for o in retry.values())
    retry_after = max((o.retry_after or 0.0) for o in retry.values())
    try:
        task.apply_async(args=[sorted(retry)], queue=queue, countdown=retry_countdown(attempt - 1, retry_after))
    except Exception as exc:
        logger.warning("retry of %s not sent (the lease will bring them back): %s", sorted(retry), exc)


def outcome_counts(outcomes: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


@shared_task(
    name=outbox.TASK_SHADOW_RUN,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def shadow_run(self, sample_ids: list[int] | int) -> dict[str, int]:
    """Run a batch of shadow jobs; a job may run max_retries() + 1 times in all."""
    outcomes = services.shadow_runs_execute(sample_ids=ids_of(sample_ids), max_attempts=max_retries() + 1)
    retries_send(self, outcomes, outbox.QUEUE_SHADOW)
    return outcome_counts(outcomes)
