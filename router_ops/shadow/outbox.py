"""The transactional outbox: ShadowSample rows walked through their states.

Every transition is one conditional UPDATE whose row count says who won, so a
relay running twice, a task delivered twice, or a worker killed mid-call can
delay a job but never lose or duplicate it:

- `outbox_relay` claims pending rows (FOR UPDATE SKIP LOCKED, so relays run in
  parallel without blocking each other) and rows whose lease went stale, marks them
  enqueued, commits, then sends one Celery message per row. A message lost in a
  broker outage leaves the row enqueued; its lease expires and it is sent again.
- `shadow_claims_load` / `judge_claims_load` let exactly one delivery run a job, and
  hand out a fencing number (the attempt) that the finishing UPDATE checks: a delivery
  that lost its lease cannot overwrite the work of the one that took it over. The claim
  also releases the budget the attempt it ends still held (see budget.py).

Messages carry a batch of sample ids (up to SHADOW_TASK_BATCH): one task runs the
batch's provider calls concurrently on an event loop, so Celery's cost per message is
shared by the batch.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import connection, transaction

from router_ops.shadow import budget
from router_ops.shadow.selectors import FINGERPRINT_ENDPOINTS_SQL, FINGERPRINT_JUDGES_SQL

logger = logging.getLogger(__name__)

TASK_SHADOW_RUN = "shadow.run"
TASK_JUDGE_PAIR = "judging.judge_pair"
TASK_RELAY = "shadow.outbox_relay"
QUEUE_SHADOW = "celery"
QUEUE_JUDGE = "judge"


def lease_seconds() -> float:
    """After this long an enqueued or running job is presumed lost and is sent again.
    Longer than the tasks' hard time limit, so a live run is never duplicated."""
    return float(getattr(settings, "SHADOW_LEASE_S", 600))


@dataclass
class RelayResult:
    shadow_sent: int = 0
    judge_sent: int = 0
    send_failures: int = 0


_CLAIM_SHADOW = """
WITH pending AS (
    SELECT id FROM shadow_shadowsample WHERE status = 'pending'
    ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED
), stale AS (
    SELECT id FROM shadow_shadowsample
    WHERE status IN ('enqueued', 'running') AND lease_at < now() - make_interval(secs => %(lease)s)
    ORDER BY lease_at LIMIT %(n)s FOR UPDATE SKIP LOCKED
)
UPDATE shadow_shadowsample s SET status = 'enqueued', lease_at = now(), sends = s.sends + 1
WHERE s.id IN (SELECT id FROM pending UNION SELECT id FROM stale)
RETURNING s.id
"""

_CLAIM_JUDGE = """
WITH pending AS (
    SELECT id FROM shadow_shadowsample WHERE judge_status = 'pending'
    ORDER BY judge_lease_at LIMIT %(n)s FOR UPDATE SKIP LOCKED
), stale AS (
    SELECT id FROM shadow_shadowsample
    WHERE judge_status IN ('enqueued', 'running') AND judge_lease_at < now() - make_interval(secs => %(lease)s)
    ORDER BY judge_lease_at LIMIT %(n)s FOR UPDATE SKIP LOCKED
)
UPDATE shadow_shadowsample s SET judge_status = 'enqueued', judge_lease_at = now()
WHERE s.id IN (SELECT id FROM pending UNION SELECT id FROM stale)
RETURNING s.id
"""

_UNSEND_SHADOW = "UPDATE shadow_shadowsample SET status = 'pending' WHERE id = ANY(%s) AND status = 'enqueued'"
_UNSEND_JUDGE = (
    "UPDATE shadow_shadowsample SET judge_status = 'pending' WHERE id = ANY(%s) AND judge_status = 'enqueued'"
)


def _claim(sql: str, *, batch_size: int, lease: float) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"n": batch_size, "lease": lease})
        return sorted(row[0] for row in cursor.fetchall())


def task_batch_size() -> int:
    """Jobs per task message: one task runs a batch's provider calls concurrently."""
    return max(1, int(getattr(settings, "SHADOW_TASK_BATCH", 20)))


def _send(task_name: str, queue: str, ids: list[int], unsend_sql: str) -> tuple[int, int]:
    """Send the ids in messages of `task_batch_size()`; on a broker failure put the unsent
    rows back to pending. Returns (jobs sent, jobs not sent)."""
    from router_ops.celery import app

    size = task_batch_size()
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(ids), size):
                batch = ids[start : start + size]
                app.send_task(
                    task_name,
                    args=[batch],
                    queue=queue,
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2},
                )
                sent += len(batch)
    except Exception as exc:  # the broker is down: the rows wait for the next relay run
        logger.warning("outbox relay: sending %s failed after %d of %d: %s", task_name, sent, len(ids), exc)
        with connection.cursor() as cursor:
            cursor.execute(unsend_sql, [ids[sent:]])
        return sent, len(ids) - sent
    return sent, 0


def outbox_relay(*, batch_size: int = 500, lease: float | None = None) -> RelayResult:
    """Hand pending and stale shadow and judge jobs to Celery.

    1. Claim up to `batch_size` shadow jobs (pending, or enqueued/running with a stale
       lease) and mark them enqueued with a fresh lease; commit.
    2. Send the claimed rows in `shadow.run` messages of SHADOW_TASK_BATCH ids (queue "celery").
    3. The same for judge jobs (`judging.judge_pair`, queue "judge").
    A failed send returns its rows to pending; a lost message is re-sent when its lease expires.
    """
    lease = lease_seconds() if lease is None else lease
    result = RelayResult()
    ids = _claim(_CLAIM_SHADOW, batch_size=batch_size, lease=lease)
    if ids:
        result.shadow_sent, failed = _send(TASK_SHADOW_RUN, QUEUE_SHADOW, ids, _UNSEND_SHADOW)
        result.send_failures += failed
    ids = _claim(_CLAIM_JUDGE, batch_size=batch_size, lease=lease)
    if ids:
        result.judge_sent, failed = _send(TASK_JUDGE_PAIR, QUEUE_JUDGE, ids, _UNSEND_JUDGE)
        result.send_failures += failed
    return result


_nudge_lock = threading.Lock()
_nudge_last = 0.0
NUDGE_INTERVAL_S = 0.5


def relay_nudge() -> None:
    """Ask a worker to run the relay now (after an ingestion commit), at most twice a
    second per process. Best effort: if the broker is down, beat's sweep catches up."""
    global _nudge_last
    now = time.monotonic()
    with _nudge_lock:
        if now - _nudge_last < NUDGE_INTERVAL_S:
            return
        _nudge_last = now
    from router_ops.celery import app

    try:
        app.send_task(TASK_RELAY, queue=QUEUE_SHADOW, retry=False)
    except Exception as exc:
        logger.warning("outbox relay nudge not sent: %s", exc)


# -- claims by the tasks: claim and load in one round trip --------------------------------
#
# A task claims its batch of jobs with one conditional UPDATE that hands out the fencing
# attempt numbers and returns each row joined to what the job needs, plus fingerprints of
# the application's configuration (selectors.pipeline_config). Rows are locked in id
# order, so two deliveries of overlapping batches queue instead of deadlocking; a row
# done, failed, or running elsewhere under a live lease is simply not returned.
#
# A claim ends the row's previous attempt, if any: the budget that attempt still holds (a
# worker killed mid-call, recorded on the row by budget.py) is released in the same
# statement. Every path on which an attempt gives the job back (retry, failure) settles
# first, so what is left is exactly what a dead or superseded attempt held. The rows
# `prior` reads are locked, so they are their latest versions.

_SHADOW_CLAIM_LOAD = f"""
WITH prior AS (
    SELECT id, application_id, shadow_reserved_usd AS usd, shadow_reserved_day AS day FROM shadow_shadowsample
    WHERE id = ANY(%(ids)s) AND (status IN ('pending', 'enqueued')
          OR (status = 'running' AND lease_at < now() - make_interval(secs => %(lease)s)))
    ORDER BY id FOR UPDATE
), c AS (
    UPDATE shadow_shadowsample s
    SET status = 'running', attempts = s.attempts + 1, lease_at = now(), shadow_reserved_usd = 0
    FROM prior WHERE s.id = prior.id
    RETURNING s.id, s.attempts, s.application_id, s.decision_id, s.shadow_tier
), released AS ({budget.RELEASE_PRIOR_SQL})
SELECT c.id, c.attempts, c.application_id, c.shadow_tier, d.prompt, d.messages::text,
       {FINGERPRINT_ENDPOINTS_SQL}
FROM c JOIN ingest_decision d ON d.id = c.decision_id
ORDER BY c.id
"""  # noqa: S608 (module constants only)

_JUDGE_CLAIM_LOAD = f"""
WITH prior AS (
    SELECT id, application_id, judge_reserved_usd AS usd, judge_reserved_day AS day FROM shadow_shadowsample
    WHERE id = ANY(%(ids)s) AND (judge_status IN ('pending', 'enqueued')
          OR (judge_status = 'running' AND judge_lease_at < now() - make_interval(secs => %(lease)s)))
    ORDER BY id FOR UPDATE
), c AS (
    UPDATE shadow_shadowsample s
    SET judge_status = 'running', judge_attempts = s.judge_attempts + 1, judge_lease_at = now(),
        judge_reserved_usd = 0
    FROM prior WHERE s.id = prior.id
    RETURNING s.id, s.judge_attempts, s.application_id, s.decision_id
), released AS ({budget.RELEASE_PRIOR_SQL})
SELECT c.id, c.judge_attempts, c.application_id, c.decision_id, d.prompt, d.messages::text, d.response,
       d.attributes::text, r.id IS NOT NULL, r.response,
       EXISTS (SELECT 1 FROM judging_judgment j WHERE j.sample_id = c.id),
       {FINGERPRINT_ENDPOINTS_SQL} || {FINGERPRINT_JUDGES_SQL}
FROM c JOIN ingest_decision d ON d.id = c.decision_id
LEFT JOIN shadow_shadowrun r ON r.sample_id = c.id
ORDER BY c.id
"""  # noqa: S608 (module constants only)


@dataclass(frozen=True)
class JobOutcome:
    """What one delivery did with one shadow or judge job."""

    status: str  # skipped | done | failed | superseded | retry
    reason: str = ""
    attempt: int = 0
    retry_after: float | None = None  # status "retry": the provider asked to wait this long
    verdict: str = ""  # a judge job that is done: the pair's verdict


@dataclass(frozen=True)
class ShadowClaim:
    sample_id: int
    attempt: int  # the fencing number: the finishing UPDATE checks it
    application_id: int
    shadow_tier: str
    prompt: str | None
    messages: object  # the decision's messages (parsed JSON) or None
    fingerprint: str


@dataclass(frozen=True)
class JudgeClaim:
    sample_id: int
    attempt: int
    application_id: int
    decision_id: int
    prompt: str | None
    messages: object
    response: str | None  # the primary answer
    attributes: dict
    shadow_response: str | None  # None: no shadow run
    has_judgments: bool  # an earlier delivery stored some: take the slow, exact path
    fingerprint: str


def _json(text: str | None):
    return None if text is None else orjson.loads(text)


def _claim_rows(sql: str, sample_ids: list[int]) -> list[tuple]:
    if not sample_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(sql, {"ids": sorted(set(sample_ids)), "lease": lease_seconds()})
        return cursor.fetchall()


def shadow_claims_load(*, sample_ids: list[int]) -> list[ShadowClaim]:
    """Claim the shadow jobs this delivery may run, with their inputs (in id order).
    An id missing from the answer is done, failed, or running elsewhere: a no-op."""
    return [
        ShadowClaim(sample_id, attempt, app_id, tier, prompt, _json(messages), fingerprint)
        for sample_id, attempt, app_id, tier, prompt, messages, fingerprint in _claim_rows(
            _SHADOW_CLAIM_LOAD, sample_ids
        )
    ]


def judge_claims_load(*, sample_ids: list[int]) -> list[JudgeClaim]:
    """`shadow_claims_load` for judge jobs: the pairs this delivery now owns."""
    claims = []
    for row in _claim_rows(_JUDGE_CLAIM_LOAD, sample_ids):
        sample_id, attempt, app_id, decision_id, prompt, messages, response, attributes = row[:8]
        has_run, shadow, judged, fingerprint = row[8:]
        claims.append(
            JudgeClaim(
                sample_id=sample_id,
                attempt=attempt,
                application_id=app_id,
                decision_id=decision_id,
                prompt=prompt,
                messages=_json(messages),
                response=response,
                attributes=_json(attributes) or {},
                shadow_response=shadow if has_run else None,
                has_judgments=judged,
                fingerprint=fingerprint,
            )
        )
    return claims
