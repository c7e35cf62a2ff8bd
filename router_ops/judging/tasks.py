"""Celery interface of judging: take the sample id, call one service. Runs on the "judge" queue."""

from __future__ import annotations

from celery import shared_task

from router_ops.judging import services
from router_ops.shadow import outbox
from router_ops.shadow.tasks import max_retries, retry_countdown


@shared_task(
    name=outbox.TASK_JUDGE_PAIR,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def judge_pair(self, sample_id: int) -> str:
    limit = max_retries()
    try:
        outcome = services.pair_judge_execute(sample_id=sample_id, final_attempt=self.request.retries >= limit)
    except services.JudgeRetry as exc:
        raise self.retry(countdown=retry_countdown(self.request.retries, exc.retry_after), max_retries=limit) from exc
    return outcome.status
