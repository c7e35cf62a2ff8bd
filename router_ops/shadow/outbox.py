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

import orjson
from django.conf import settings
from django.db import connection, transaction

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


# -- claim and load in one round trip (the tasks' hot path) -------------------------------
#
# The claim UPDATE returns the row, joined to what the job needs, plus fingerprints of the
# application's configuration (selectors.pipeline_config): one statement in autocommit
# instead of a claim transaction and five ORM reads. The claim itself is the same
# conditional UPDATE as _SHADOW_CLAIM / _JUDGE_CLAIM.

_SHADOW_CLAIM_LOAD = f"""
WITH c AS (
    UPDATE shadow_shadowsample SET status = 'running', attempts = attempts + 1, lease_at = now()
    WHERE id = %(id)s AND (status IN ('pending', 'enqueued')
          OR (status = 'running' AND lease_at < now() - make_interval(secs => %(lease)s)))
    RETURNING id, attempts, application_id, decision_id, shadow_tier
)
SELECT c.attempts, c.application_id, c.shadow_tier, d.prompt, d.messages::text,
       {FINGERPRINT_ENDPOINTS_SQL}
FROM c JOIN ingest_decision d ON d.id = c.decision_id
"""  # noqa: S608 (module constants only)

_JUDGE_CLAIM_LOAD = f"""
WITH c AS (
    UPDATE shadow_shadowsample
    SET judge_status = 'running', judge_attempts = judge_attempts + 1, judge_lease_at = now()
    WHERE id = %(id)s AND (judge_status IN ('pending', 'enqueued')
          OR (judge_status = 'running' AND judge_lease_at < now() - make_interval(secs => %(lease)s)))
    RETURNING id, judge_attempts, application_id, decision_id
)
SELECT c.judge_attempts, c.application_id, c.decision_id, d.prompt, d.messages::text, d.response,
       d.attributes::text, r.id IS NOT NULL, r.response,
       EXISTS (SELECT 1 FROM judging_judgment j WHERE j.sample_id = c.id),
       {FINGERPRINT_ENDPOINTS_SQL} || {FINGERPRINT_JUDGES_SQL}
FROM c JOIN ingest_decision d ON d.id = c.decision_id
LEFT JOIN shadow_shadowrun r ON r.sample_id = c.id
"""  # noqa: S608 (module constants only)


@dataclass(frozen=True)
class ShadowClaim:
    attempt: int
    application_id: int
    shadow_tier: str
    prompt: str | None
    messages: object  # the decision's messages (parsed JSON) or None
    fingerprint: str


@dataclass(frozen=True)
class JudgeClaim:
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


def shadow_claim_load(*, sample_id: int) -> ShadowClaim | None:
    """`shadow_claim` that also returns the job's inputs; None when this delivery lost."""
    with connection.cursor() as cursor:
        cursor.execute(_SHADOW_CLAIM_LOAD, {"id": sample_id, "lease": lease_seconds()})
        row = cursor.fetchone()
    if row is None:
        return None
    attempt, app_id, tier, prompt, messages, fingerprint = row
    return ShadowClaim(attempt, app_id, tier, prompt, _json(messages), fingerprint)


def judge_claim_load(*, sample_id: int) -> JudgeClaim | None:
    """`judge_claim` that also returns the pair; None when this delivery lost."""
    with connection.cursor() as cursor:
        cursor.execute(_JUDGE_CLAIM_LOAD, {"id": sample_id, "lease": lease_seconds()})
        row = cursor.fetchone()
    if row is None:
        return None
    attempt, app_id, decision_id, prompt, messages, response, attributes, has_run, shadow, judged, fingerprint = row
    return JudgeClaim(
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
