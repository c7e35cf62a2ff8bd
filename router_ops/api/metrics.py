"""GET /metrics: Prometheus text format (exposition format 0.0.4).

gunicorn runs several processes, so nothing here is a process-local counter:
every value is read at scrape time from PostgreSQL or Redis, and the ingestion
counters are Redis hash fields incremented by `ingest_record` (one pipelined
round trip per request, skipped for a few seconds after Redis fails so an
outage never slows ingestion down).

Access: `Authorization: Bearer <METRICS_TOKEN>` (setting/env; whole platform),
an API key with the admin scope (its own application's series, plus the
platform-wide queue and outbox series), or a logged-in superuser.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from rest_framework import exceptions

from router_ops.api.errors import json_error
from router_ops.applications.authentication import ApiKeyAuthentication, KeyPrincipal
from router_ops.applications.models import ApiKey

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INGEST_KEY = "routerops:metrics:ingest"
CELERY_QUEUES = ("celery", "judge")
INGEST_OUTCOMES = ("accepted", "duplicates", "rejected")
_REDIS_BACKOFF_S = 5.0

_redis_client: redis.Redis | None = None
_redis_down_until = 0.0
_redis_lock = threading.Lock()


def _redis() -> redis.Redis | None:
    """A short-timeout client, or None while Redis is considered down."""
    global _redis_client
    if time.monotonic() < _redis_down_until:
        return None
    with _redis_lock:
        if _redis_client is None:
            _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=0.25)
        return _redis_client


def _redis_failed(exc: Exception) -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + _REDIS_BACKOFF_S
    logger.warning("metrics: redis unavailable (%s); counters skipped for %.0fs", type(exc).__name__, _REDIS_BACKOFF_S)


def ingest_record(
    *,
    kind: str,
    status: int,
    application_id: int | None = None,
    accepted: int = 0,
    duplicates: int = 0,
    rejected: int = 0,
) -> None:
    """Count one ingestion request (kind "decisions" or "feedback") and its items. Never raises.

    Call it once per request, for errors too (application_id None when the
    request was not authenticated).
    """
    client = _redis()
    if client is None:
        return
    app = application_id if application_id is not None else 0
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(INGEST_KEY, f"requests|{app}|{kind}|{status}", 1)
        for outcome, number in zip(INGEST_OUTCOMES, (accepted, duplicates, rejected), strict=True):
            if number:
                pipe.hincrby(INGEST_KEY, f"items|{app}|{kind}|{outcome}", number)
        pipe.execute()
    except redis.RedisError as exc:
        _redis_failed(exc)


# -- exposition ------------------------------------------------------------------------


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{label_text}}} {float(value)!r}" if label_text else f"{name} {float(value)!r}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _app_filter(alias: str, application_ids: list[int] | None) -> str:
    return "" if application_ids is None else f" AND {alias}.application_id = ANY(%(apps)s)"


def metrics_render(application_ids: list[int] | None) -> str:
    """The exposition for all applications (None) or the given ones."""
    out = Exposition()
    params = {"apps": application_ids or [], "today": timezone.now().date()}
    slugs = dict(_rows("SELECT id, slug FROM applications_application", {}))
    slugs[0] = ""

    def app_label(app_id: int) -> dict:
        return {"application": slugs.get(app_id, str(app_id))}

    # Ingestion counters (Redis).
    requests: list[tuple[dict, float]] = []
    items: list[tuple[dict, float]] = []
    client = _redis()
    redis_up = 0.0
    queue_lengths: list[tuple[dict, float]] = []
    if client is not None:
        try:
            for field, value in sorted(client.hgetall(INGEST_KEY).items()):
                series, app, kind, last = field.decode().split("|")
                if application_ids is not None and int(app) not in application_ids:
                    continue
                labels = {**app_label(int(app)), "kind": kind}
                if series == "requests":
                    requests.append(({**labels, "status": last}, int(value)))
                else:
                    items.append(({**labels, "outcome": last}, int(value)))
            pipe = client.pipeline(transaction=False)
            for queue in CELERY_QUEUES:
                pipe.llen(queue)
            queue_lengths = [({"queue": q}, n) for q, n in zip(CELERY_QUEUES, pipe.execute(), strict=True)]
            redis_up = 1.0
        except (redis.RedisError, ValueError) as exc:
            _redis_failed(exc)
    out.family("routerops_redis_up", "gauge", "1 if Redis answered this scrape.", [({}, redis_up)])
    out.family("routerops_ingest_requests_total", "counter", "Ingestion requests by HTTP status.", requests)
    out.family("routerops_ingest_items_total", "counter", "Ingested items by outcome.", items)
    out.family(
        "routerops_celery_queue_length", "gauge", "Messages waiting in a Celery queue (Redis LLEN).", queue_lengths
    )

    # Decisions (from the hourly rollups: a count(*) over the decision table would not scale).
    rows = _rows(
        "SELECT r.application_id, coalesce(sum(r.decisions), 0) FROM rollups_hourlyrollup r WHERE r.segment_id = 0"  # noqa: S608 - constant SQL fragments; values are bound parameters
        + _app_filter("r", application_ids)
        + " GROUP BY r.application_id",
        params,
    )
    out.family(
        "routerops_decisions_total",
        "counter",
        "Decisions stored (rolled up; lags by the rollup interval).",
        [(app_label(a), n) for a, n in rows],
    )

    # Outbox: pending jobs and the age of the oldest one (platform-wide, served by partial indexes).
    now = timezone.now()
    oldest_shadow = _rows("SELECT created_at FROM shadow_shadowsample WHERE status = 'pending' ORDER BY id LIMIT 1", {})
    oldest_judge = _rows(
        "SELECT coalesce(min(judge_lease_at), min(finished_at)) FROM shadow_shadowsample WHERE judge_status = 'pending'",
        {},
    )
    lag = [({"stage": "shadow"}, (now - oldest_shadow[0][0]).total_seconds() if oldest_shadow else 0.0)]
    if oldest_judge and oldest_judge[0][0] is not None:
        lag.append(({"stage": "judge"}, max(0.0, (now - oldest_judge[0][0]).total_seconds())))
    else:
        lag.append(({"stage": "judge"}, 0.0))
    out.family("routerops_outbox_lag_seconds", "gauge", "Age of the oldest job not yet handed to a worker.", lag)
    open_jobs = _rows(
        "SELECT 'shadow', status, count(*) FROM shadow_shadowsample WHERE status IN ('pending', 'enqueued', 'running')"
        " GROUP BY status UNION ALL "
        "SELECT 'judge', judge_status, count(*) FROM shadow_shadowsample"
        " WHERE judge_status IN ('pending', 'enqueued', 'running') GROUP BY judge_status",
        {},
    )
    out.family(
        "routerops_outbox_jobs",
        "gauge",
        "Shadow and judge jobs not finished, by state.",
        [({"stage": stage, "status": status}, n) for stage, status, n in open_jobs],
    )

    # Spend today (UTC) against the budget.
    rows = _rows(
        "SELECT b.application_id, b.shadow_spent_usd, b.judge_spent_usd, b.refused FROM shadow_budgetday b"  # noqa: S608 - constant SQL fragments; values are bound parameters
        " WHERE b.day = %(today)s" + _app_filter("b", application_ids),
        params,
    )
    spend = []
    for app_id, shadow, judge, _ in rows:
        spend += [({**app_label(app_id), "kind": "shadow"}, shadow), ({**app_label(app_id), "kind": "judge"}, judge)]
    out.family("routerops_shadow_spend_usd_today", "gauge", "Shadow and judge spend of the current UTC day.", spend)
    out.family(
        "routerops_budget_refused_today",
        "gauge",
        "Calls not made today for lack of budget.",
        [(app_label(a), refused) for a, _, _, refused in rows],
    )

    # Failures: shadow jobs and judge jobs that ended failed, and failed judgments.
    rows = _rows(
        "SELECT s.application_id, 'shadow', count(*) FROM shadow_shadowsample s WHERE s.status = 'failed'"  # noqa: S608 - constant SQL fragments; values are bound parameters
        + _app_filter("s", application_ids)
        + " GROUP BY s.application_id UNION ALL "
        "SELECT s.application_id, 'judge', count(*) FROM shadow_shadowsample s WHERE s.judge_status = 'failed'"
        + _app_filter("s", application_ids)
        + " GROUP BY s.application_id",
        params,
    )
    out.family(
        "routerops_jobs_failed_total",
        "counter",
        "Shadow and judge jobs that failed for good.",
        [({**app_label(a), "stage": stage}, n) for a, stage, n in rows],
    )
    rows = _rows(
        "SELECT j.application_id, j.judge_kind, count(*) FROM judging_judgment j WHERE j.status = 'failed'"  # noqa: S608 - constant SQL fragments; values are bound parameters
        + _app_filter("j", application_ids)
        + " GROUP BY j.application_id, j.judge_kind",
        params,
    )
    out.family(
        "routerops_judge_failures_total",
        "counter",
        "Judgments that failed (no verdict).",
        [({**app_label(a), "judge_kind": kind}, n) for a, kind, n in rows],
    )

    # Rollouts and gate verdicts.
    rows = _rows(
        "SELECT r.application_id, r.status, count(*) FROM rollouts_rollout r WHERE true"  # noqa: S608 - constant SQL fragments; values are bound parameters
        + _app_filter("r", application_ids)
        + " GROUP BY r.application_id, r.status",
        params,
    )
    out.family(
        "routerops_rollouts",
        "gauge",
        "Rollouts by status.",
        [({**app_label(a), "status": status}, n) for a, status, n in rows],
    )
    rows = _rows(
        "SELECT r.application_id, s.verdict, count(*) FROM rollouts_rolloutstage s"  # noqa: S608 - constant SQL fragments; values are bound parameters
        " JOIN rollouts_rollout r ON r.id = s.rollout_id WHERE s.verdict <> ''"
        + _app_filter("r", application_ids)
        + " GROUP BY r.application_id, s.verdict",
        params,
    )
    out.family(
        "routerops_gate_verdicts_total",
        "counter",
        "Rollout stage gate verdicts.",
        [({**app_label(a), "verdict": verdict}, n) for a, verdict, n in rows],
    )
    return out.text()


def _scope(request) -> list[int] | None | HttpResponse:
    """The applications the caller may see (None = all), or the error response."""
    header = request.headers.get("Authorization", "")
    token = getattr(settings, "METRICS_TOKEN", "") or ""
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential:
        if token and hmac.compare_digest(credential.encode(), token.encode()):
            return None
        try:
            authenticated = ApiKeyAuthentication().authenticate(request)
        except exceptions.AuthenticationFailed:
            authenticated = None
        if authenticated is None:
            return json_error(
                401, "not_authenticated", "Invalid metrics token or API key.", headers={"WWW-Authenticate": "Bearer"}
            )
        principal: KeyPrincipal = authenticated[0]
        if ApiKey.SCOPE_ADMIN not in principal.api_key.scopes:
            return json_error(403, "permission_denied", "Metrics need an API key with the 'admin' scope.")
        return [principal.application.id]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user.is_superuser:
            return None
        return json_error(403, "permission_denied", "Metrics are for superusers, METRICS_TOKEN or an admin API key.")
    return json_error(
        401,
        "not_authenticated",
        "Send Authorization: Bearer <METRICS_TOKEN or admin API key>.",
        headers={"WWW-Authenticate": "Bearer"},
    )


@require_GET
def metrics(request):
    scope = _scope(request)
    if isinstance(scope, HttpResponse):
        return scope
    return HttpResponse(metrics_render(scope), content_type=CONTENT_TYPE)
