"""API keys: stored as an HMAC, compared in constant time, never written to logs."""

from __future__ import annotations

import hmac
import logging
from io import StringIO

import pytest
from django.core.management import call_command

from router_ops.applications import keys
from router_ops.applications.models import ApiKey
from router_ops.observability import JsonFormatter

pytestmark = pytest.mark.django_db


def test_only_the_hmac_is_stored(owner):
    plaintext = owner.keys["ingest"]
    stored = ApiKey.objects.get(prefix=keys.key_prefix(plaintext))
    assert stored.key_hash == keys.key_hash(plaintext, __import__("django.conf").conf.settings.API_KEY_PEPPER)
    secret = plaintext.split("_", 2)[2]
    for value in ApiKey.objects.values_list("prefix", "key_hash", "name").get(pk=stored.pk):
        assert secret not in value and plaintext not in value


def test_the_comparison_is_constant_time(monkeypatch, owner):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    response = owner.client("read").get("/api/v1/routing-config")
    assert response.status_code in (200, 404)
    assert len(calls) == 1


def _all_logs(caplog) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records) + caplog.text


def test_no_key_reaches_the_logs_on_good_bad_and_revoked_keys(client, owner, caplog):
    caplog.set_level(logging.DEBUG)
    good = owner.keys["read"]
    bad = good[:-4] + "AAAA"
    client.get("/api/v1/routing-config", HTTP_AUTHORIZATION=f"Bearer {good}")
    client.get("/api/v1/routing-config", HTTP_AUTHORIZATION=f"Bearer {bad}")
    client.get("/api/v1/routing-config", HTTP_AUTHORIZATION="Bearer sk-not-ours-0123456789abcdef")
    client.post("/api/v1/decisions", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {good}")
    logs = _all_logs(caplog)
    for secret in (good, bad, good.split("_", 2)[2], "sk-not-ours-0123456789abcdef"):
        assert secret not in logs


def test_key_creation_prints_the_key_once_and_logs_nothing_of_it(owner, caplog):
    caplog.set_level(logging.DEBUG)
    out = StringIO()
    call_command("create_api_key", "support-bot", "--scopes", "read", stdout=out)
    plaintext = out.getvalue().strip().splitlines()[-1]
    assert plaintext.startswith("ro_")
    logs = _all_logs(caplog)
    assert plaintext not in logs and plaintext.split("_", 2)[2] not in logs
