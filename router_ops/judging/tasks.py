"""Celery interface of judging: take the sample ids, call one service. Runs on the "judge" queue."""

from __future__ import annotations

from celery import shared_task

from router_ops.judging import services
from router_ops.shadow import outbox
from router_ops.shadow.tasks import ids_of, max_retries, outcome_counts, retries_send


@shared_task(
    name=outbox.TASK_JUDGE_PAIR,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def judge_pair(self, sample_ids: list[int] | int) -> dict[str, int]:
    """Judge a batch of pairs; a job may run max_retries() + 1 times in all."""
    outcomes = services.pair_judges_execute(sample_ids=ids_of(sample_ids), max_attempts=max_retries() + 1)
    retries_send(self, outcomes, outbox.QUEUE_JUDGE)
    return outcome_counts(outcomes)
