"""GET /metrics: who may scrape it, and that each value is derived from the rows."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from router_ops.api import metrics as metrics_module
from router_ops.api.metrics import INGEST_KEY, ingest_record
from router_ops.applications.services import membership_set
from router_ops.ingest.models import Decision
from router_ops.rollouts.models import RouterVersion
from router_ops.rollups.models import HourlyRollup
from router_ops.shadow.models import BudgetDay, ShadowSample

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture(autouse=True)
def _private_redis(monkeypatch):
    """The counters go to a Redis database of their own, emptied around each test."""
    url = settings.REDIS_URL.rsplit("/", 1)[0] + "/14"
    monkeypatch.setattr(settings, "REDIS_URL", url)
    monkeypatch.setattr(metrics_module, "_redis_client", None)
    monkeypatch.setattr(metrics_module, "_redis_down_until", 0.0)
    client = redis.Redis.from_url(url)
    client.delete(INGEST_KEY, "celery", "judge")
    yield client
    client.delete(INGEST_KEY, "celery", "judge")
    metrics_module._redis_client = None


def _scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.content.decode()


def _value(text: str, name: str, **labels) -> float | None:
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + label_text + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_it_refuses_anonymous_scrapes(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_refuses_a_wrong_token(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_it_refuses_keys_without_the_admin_scope(client, owner):
    for scopes in ("ingest", "read"):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {owner.keys[scopes]}")
        assert response.status_code == 403


def test_it_refuses_logged_in_non_superusers(client, owner):
    user = get_user_model().objects.create_user("vera")
    membership_set(user=user, application=owner.application, role="admin")
    client.force_login(user)
    assert client.get("/metrics").status_code == 403


def test_it_refuses_writes(client):
    assert client.post("/metrics").status_code == 405


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_exposes_ingestion_queue_outbox_spend_and_rollout_series(client, owner, _private_redis):
    ingest_record(kind="decisions", status=200, application_id=owner.application.id, accepted=5, duplicates=1)
    ingest_record(kind="decisions", status=207, application_id=owner.application.id, accepted=2, rejected=3)
    ingest_record(kind="decisions", status=401)
    _private_redis.rpush("celery", "a", "b")
    _private_redis.rpush("judge", "c")
    version = RouterVersion.objects.create(application=owner.application, name="v12")
    HourlyRollup.objects.create(
        application=owner.application,
        hour=timezone.now().replace(minute=0, second=0, microsecond=0),
        router_version_id=version.id,
        segment_id=0,
        tier="cheap",
        decisions=42,
    )
    decision = Decision.objects.create(
        application=owner.application,
        decision_id="d-1",
        occurred_at=timezone.now(),
        router_version=version,
        unit_id="u",
        routed_to="cheap",
    )
    sample = ShadowSample.objects.create(
        application=owner.application,
        decision=decision,
        direction=ShadowSample.DIRECTION_UP,
        primary_tier="cheap",
        shadow_tier="strong",
        inclusion_probability=0.5,
        reason="base",
    )
    ShadowSample.objects.filter(pk=sample.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    BudgetDay.objects.create(
        application=owner.application,
        day=timezone.now().date(),
        shadow_spent_usd=Decimal("1.25"),
        judge_spent_usd=Decimal("0.5"),
        refused=4,
    )

    text = _scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    app = "support-bot"
    assert _value(text, "routerops_redis_up") == 1.0
    assert _value(text, "routerops_ingest_items_total", application=app, kind="decisions", outcome="accepted") == 7
    assert _value(text, "routerops_ingest_items_total", application=app, kind="decisions", outcome="duplicates") == 1
    assert _value(text, "routerops_ingest_items_total", application=app, kind="decisions", outcome="rejected") == 3
    assert _value(text, "routerops_ingest_requests_total", application=app, kind="decisions", status="207") == 1
    assert _value(text, "routerops_ingest_requests_total", application="", kind="decisions", status="401") == 1
    assert _value(text, "routerops_celery_queue_length", queue="celery") == 2
    assert _value(text, "routerops_celery_queue_length", queue="judge") == 1
    assert _value(text, "routerops_decisions_total", application=app) == 42
    assert 119 <= _value(text, "routerops_outbox_lag_seconds", stage="shadow") < 180
    assert _value(text, "routerops_outbox_jobs", stage="shadow", status="pending") == 1
    assert _value(text, "routerops_shadow_spend_usd_today", application=app, kind="shadow") == 1.25
    assert _value(text, "routerops_shadow_spend_usd_today", application=app, kind="judge") == 0.5
    assert _value(text, "routerops_budget_refused_today", application=app) == 4
    for family in ("routerops_judge_failures_total", "routerops_rollouts", "routerops_gate_verdicts_total"):
        assert f"# TYPE {family} " in text


def test_an_admin_key_sees_only_its_own_application(client, owner, outsider):
    ingest_record(kind="decisions", status=200, application_id=owner.application.id, accepted=5)
    ingest_record(kind="decisions", status=200, application_id=outsider.application.id, accepted=9)
    text = _scrape(client, HTTP_AUTHORIZATION=f"Bearer {outsider.keys['admin']}")
    assert (
        _value(text, "routerops_ingest_items_total", application="other-app", kind="decisions", outcome="accepted") == 9
    )
    assert "support-bot" not in text


def test_a_superuser_session_may_scrape(client):
    client.force_login(get_user_model().objects.create_superuser("root", password=None))
    assert "# TYPE routerops_outbox_lag_seconds gauge" in _scrape(client)


@override_settings(METRICS_TOKEN=TOKEN)
def test_a_redis_outage_degrades_the_scrape_and_never_slows_ingestion(client, monkeypatch):
    monkeypatch.setattr(settings, "REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(metrics_module, "_redis_client", None)
    ingest_record(kind="decisions", status=200, application_id=1, accepted=1)  # must not raise
    assert metrics_module._redis() is None  # backing off
    text = _scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert _value(text, "routerops_redis_up") == 0.0
