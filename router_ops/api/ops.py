"""/healthz (process up) and /readyz (database and broker reachable)."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any failure means "not ready"; say which
        return f"{type(exc).__name__}: {exc}"


def _check_broker() -> str | None:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def readyz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    ready = all(v is None for v in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": {k: v or "ok" for k, v in checks.items()}}
    response = JsonResponse(body, status=200 if ready else 503)
    if not ready:
        response["Retry-After"] = "5"
    return response
