"""Request ids and JSON log lines."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import RequestFactory

from router_ops.observability import JsonFormatter, RequestIdFilter, RequestIdMiddleware, request_id_get

pytestmark = pytest.mark.django_db


def test_it_generates_a_request_id_and_echoes_it(client):
    response = client.get("/healthz")
    assert len(response["X-Request-ID"]) == 32


def test_it_keeps_a_sane_incoming_request_id(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.2")
    assert response["X-Request-ID"] == "lb-7f3a.2"


@pytest.mark.parametrize("incoming", ["x" * 129, "a\nb", "<script>", "id with spaces", ""])
def test_it_replaces_an_unsafe_request_id(client, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming and len(response["X-Request-ID"]) == 32


def test_the_request_id_is_in_every_log_record_of_the_request():
    seen = {}

    def view(request):
        seen["inside"] = request_id_get()
        seen["attribute"] = request.id
        return __import__("django.http", fromlist=["HttpResponse"]).HttpResponse("ok")

    response = RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="abc-1"))
    assert seen == {"inside": "abc-1", "attribute": "abc-1"}
    assert response["X-Request-ID"] == "abc-1"
    assert request_id_get() == ""  # reset after the request


def test_json_formatter_writes_one_object_per_line_with_request_id_and_extras():
    formatter = JsonFormatter()
    record = logging.LogRecord("router_ops.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.request_id = "rid-1"
    record.decisions = 3
    record.obj = object()
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "router_ops.x"
    assert entry["request_id"] == "rid-1"
    assert entry["decisions"] == 3
    assert entry["obj"].startswith("<object object")
    assert entry["time"].endswith("+00:00")


def test_json_formatter_includes_the_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


def test_request_id_filter_adds_the_attribute_for_text_formats():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert RequestIdFilter().filter(record) is True
    assert record.request_id == ""
