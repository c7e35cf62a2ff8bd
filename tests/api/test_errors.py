"""One error shape (router_ops/api/errors.py) and the body limits of router_ops/api/body.py."""

from __future__ import annotations

import orjson
import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.test import Client, override_settings
from rest_framework import exceptions

from router_ops.api.errors import Conflict, PayloadTooLarge, ServiceUnavailable, exception_handler
from router_ops.applications.access import KeyRateThrottle
from router_ops.applications.models import RateWindow
from router_ops.ingest.models import Decision, Feedback
from tests.ingest.payloads import decision, error

LIMIT = 2048


def body_of_size(size: int, decision_id: str = "d-1") -> bytes:
    """A valid single decision whose JSON is exactly `size` bytes."""
    empty = orjson.dumps(decision(decision_id, prompt=""))
    body = orjson.dumps(decision(decision_id, prompt="x" * (size - len(empty))))
    assert len(body) == size
    return body


def raw_post(persona, url, body: bytes):
    return Client(headers={"Authorization": f"Bearer {persona.keys['ingest']}"}).post(
        url, body, content_type="application/json"
    )


# --- 413 -----------------------------------------------------------------------------------


@override_settings(INGEST_MAX_BODY_BYTES=LIMIT, DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_it_refuses_a_body_over_the_limit(owner):
    response = raw_post(owner, "/api/v1/decisions", body_of_size(LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == error("payload_too_large", "Body of 2049 bytes exceeds the limit of 2048 bytes.")
    assert Decision.objects.count() == 0


@override_settings(INGEST_MAX_BODY_BYTES=LIMIT, DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
def test_it_accepts_a_body_up_to_the_limit(owner, size):
    response = raw_post(owner, "/api/v1/decisions", body_of_size(size))
    assert response.status_code == 200, response.content
    empty = len(orjson.dumps(decision("d-1", prompt="")))
    assert Decision.objects.get().prompt == "x" * (size - empty)


@override_settings(INGEST_MAX_BODY_BYTES=LIMIT, DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_feedback_has_the_same_limit(owner):
    item = {"decision_id": "d-1", "kind": "thumbs_down", "feedback_id": "x" * 100}
    body = orjson.dumps({"feedback": [item] * 20})
    assert len(body) > LIMIT
    response = raw_post(owner, "/api/v1/feedback", body)
    assert response.status_code == 413
    assert response.json() == error("payload_too_large", f"Body of {len(body)} bytes exceeds the limit of 2048 bytes.")
    assert Feedback.objects.count() == 0


@override_settings(INGEST_MAX_BODY_BYTES=4096, DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT)
def test_django_s_own_upload_limit_also_answers_413(owner):
    response = raw_post(owner, "/api/v1/decisions", body_of_size(3000))
    assert response.status_code == 413
    assert response.json() == error("payload_too_large", "Body exceeds the limit of 2048 bytes.")
    assert Decision.objects.count() == 0


def test_the_default_limit_is_5_mib(settings):
    assert settings.INGEST_MAX_BODY_BYTES == 5 * 1024 * 1024 == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


# --- 429 -----------------------------------------------------------------------------------


@pytest.fixture
def three_per_minute(monkeypatch):
    # KeyRateThrottle reads DRF's class attribute THROTTLE_RATES, bound when DRF was
    # imported: override_settings(REST_FRAMEWORK=…) would not reach it.
    monkeypatch.setattr(KeyRateThrottle, "THROTTLE_RATES", {"ingest": "3/min", "read": "3/min"})
    # A fixed clock makes the wait exact.
    monkeypatch.setattr(KeyRateThrottle, "timer", lambda self: 1_800_000_000.0)
    cache.clear()
    yield
    cache.clear()


def test_it_throttles_a_key_beyond_its_rate(owner, three_per_minute):
    client = owner.client()
    for i in range(3):
        assert client.post("/api/v1/decisions", decision(f"d-{i}"), format="json").status_code == 200
    response = client.post("/api/v1/decisions", decision("d-3"), format="json")
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert response.json() == error("throttled", "Request was throttled. Expected available in 60 seconds.")
    assert sorted(Decision.objects.values_list("decision_id", flat=True)) == ["d-0", "d-1", "d-2"]


def test_feedback_shares_the_ingest_budget(owner, three_per_minute):
    client = owner.client()
    for i in range(3):
        assert client.post("/api/v1/decisions", decision(f"d-{i}"), format="json").status_code == 200
    response = client.post("/api/v1/feedback", {"feedback": [{"decision_id": "d-0", "kind": "retry"}]}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert Feedback.objects.count() == 0


def test_each_key_has_its_own_budget(owner, outsider, three_per_minute):
    for i in range(3):
        owner.client().post("/api/v1/decisions", decision(f"d-{i}"), format="json")
    assert owner.client().post("/api/v1/decisions", decision("d-3"), format="json").status_code == 429
    assert (
        owner.client("ingest,read,admin").post("/api/v1/decisions", decision("d-3"), format="json").status_code == 200
    )
    assert outsider.client().post("/api/v1/decisions", decision("d-0"), format="json").status_code == 200


def test_the_count_lives_in_the_database_so_every_web_process_shares_it(owner, three_per_minute):
    # Another gunicorn worker has its own memory (emptied here): it must still see the three.
    client = owner.client()
    for i in range(3):
        assert client.post("/api/v1/decisions", decision(f"d-{i}"), format="json").status_code == 200
    cache.clear()
    assert client.post("/api/v1/decisions", decision("d-3"), format="json").status_code == 429
    assert list(RateWindow.objects.values_list("count", flat=True)) == [3]  # refused requests are not counted


def test_a_new_window_opens_a_fresh_budget_and_forgets_the_old(owner, monkeypatch, three_per_minute):
    client = owner.client()
    for i in range(4):
        client.post("/api/v1/decisions", decision(f"d-{i}"), format="json")
    monkeypatch.setattr(KeyRateThrottle, "timer", lambda self: 1_800_000_000.0 + 61)
    assert client.post("/api/v1/decisions", decision("d-4"), format="json").status_code == 200
    assert list(RateWindow.objects.values_list("window_start", "count")) == [(1_800_000_060, 1)]


def test_the_wait_is_the_rest_of_the_window(owner, monkeypatch, three_per_minute):
    monkeypatch.setattr(KeyRateThrottle, "timer", lambda self: 1_800_000_000.0 + 45.5)
    client = owner.client()
    for i in range(3):
        client.post("/api/v1/decisions", decision(f"d-{i}"), format="json")
    response = client.post("/api/v1/decisions", decision("d-3"), format="json")
    assert response.status_code == 429 and response["Retry-After"] == "15"


def test_refused_requests_do_not_use_the_budget(owner, three_per_minute):
    for _ in range(5):
        assert owner.client("read").post("/api/v1/decisions", decision(), format="json").status_code == 403
    assert owner.client("read").post("/api/v1/decisions", decision(), format="json").status_code == 403
    for i in range(3):
        assert owner.client().post("/api/v1/decisions", decision(f"d-{i}"), format="json").status_code == 200


# --- other statuses through the real stack --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/decisions/extra"])
def test_unknown_api_paths_answer_404_in_the_error_shape(client, path):
    response = client.post(path, {}, content_type="application/json")
    assert response.status_code == 404
    assert response.json() == error("not_found", f"No endpoint at {path}.")


# --- the exception handler -------------------------------------------------------------------


def handle(exc):
    response = exception_handler(exc, {})
    return response.status_code, response.data, response


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (
            exceptions.ValidationError({"field": ["Bad."]}),
            400,
            error("invalid", "The request is invalid; see details.", {"field": ["Bad."]}),
        ),
        (exceptions.ValidationError(["Bad."]), 400, error("invalid", "The request is invalid; see details.", ["Bad."])),
        (exceptions.ValidationError("Bad."), 400, error("invalid", "The request is invalid; see details.", ["Bad."])),
        (exceptions.ParseError("Nope."), 400, error("parse_error", "Nope.")),
        (
            exceptions.NotAuthenticated(),
            401,
            error("not_authenticated", "Authentication credentials were not provided."),
        ),
        (exceptions.PermissionDenied("No."), 403, error("permission_denied", "No.")),
        (exceptions.NotFound(), 404, error("not_found", "Not found.")),
        (Http404("No such rollout."), 404, error("not_found", "No such rollout.")),
        (
            DjangoPermissionDenied(),
            403,
            error("permission_denied", "You do not have permission to perform this action."),
        ),
        (Conflict("Already running."), 409, error("conflict", "Already running.")),
        (PayloadTooLarge(), 413, error("payload_too_large", "Request body is too large.")),
        (
            exceptions.UnsupportedMediaType("text/plain"),
            415,
            error("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
        ),
        (
            exceptions.Throttled(wait=7),
            429,
            error("throttled", "Request was throttled. Expected available in 7 seconds."),
        ),
        (ServiceUnavailable(), 503, error("service_unavailable", "A dependency is unavailable; retry later.")),
    ],
)
def test_every_error_has_the_one_shape(db, exc, status, body):
    code, data, _ = handle(exc)
    assert (code, data) == (status, body)


def test_retry_after_is_kept_or_added(db):
    assert handle(exceptions.Throttled(wait=7))[2]["Retry-After"] == "7"
    assert handle(ServiceUnavailable())[2]["Retry-After"] == "5"
    assert handle(exceptions.NotAuthenticated())[2].has_header("Retry-After") is False


def test_a_real_bug_is_left_to_django():
    assert exception_handler(ZeroDivisionError(), {}) is None
