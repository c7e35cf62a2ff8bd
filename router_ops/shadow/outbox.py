"""The transactional outbox: ShadowSample rows walked through their states.

Every transition is one conditional UPDATE whose row count says who won, so a
relay running twice, a task delivered twice, or a worker killed mid-call can
delay a job but never lose or duplicate it:

- `outbox_relay` claims pending rows (FOR UPDATE SKIP LOCKED, so relays run in
  parallel without blocking each other) and rows whose lease went stale, marks them
  enqueued, commits, then sends one Celery message per row. A message lost in a
  broker outage leaves the row enqueued; its lease expires and it is sent again.
- `shadow_claim` / `judge_claim` let exactly one delivery run a job, and hand out
  a fencing number (the attempt) that the finishing UPDATE checks: a delivery that
  lost its lease cannot overwrite the work of the one that took it over.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

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


def _send(task_name: str, queue: str, ids: list[int], unsend_sql: str) -> tuple[int, int]:
    """Send one message per id; on a broker failure put the unsent rows back to pending."""
    from router_ops.celery import app

    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for sample_id in ids:
                app.send_task(
                    task_name,
                    args=[sample_id],
                    queue=queue,
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2},
                )
                sent += 1
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
    2. Send one `shadow.run` message per claimed row (queue "celery").
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


# -- claims by the tasks ------------------------------------------------------------

_SHADOW_CLAIM = """
UPDATE shadow_shadowsample SET status = 'running', attempts = attempts + 1, lease_at = now()
WHERE id = %(id)s AND (status IN ('pending', 'enqueued')
      OR (status = 'running' AND lease_at < now() - make_interval(secs => %(lease)s)))
RETURNING attempts
"""

_JUDGE_CLAIM = """
UPDATE shadow_shadowsample SET judge_status = 'running', judge_attempts = judge_attempts + 1, judge_lease_at = now()
WHERE id = %(id)s AND (judge_status IN ('pending', 'enqueued')
      OR (judge_status = 'running' AND judge_lease_at < now() - make_interval(secs => %(lease)s)))
RETURNING judge_attempts
"""


def _claim_one(sql: str, sample_id: int) -> int | None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"id": sample_id, "lease": lease_seconds()})
        row = cursor.fetchone()
    return row[0] if row else None


def shadow_claim(*, sample_id: int) -> int | None:
    """The attempt number if this delivery now owns the shadow job, else None (done,
    failed, or running elsewhere): a redelivered message is then a no-op."""
    return _claim_one(_SHADOW_CLAIM, sample_id)


def judge_claim(*, sample_id: int) -> int | None:
    return _claim_one(_JUDGE_CLAIM, sample_id)
