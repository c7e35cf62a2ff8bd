from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from router_ops.ingest.models import Decision
from routerops_client import IngestSummary, RouterOpsClient, RouterOpsError, RouterOpsTransportError
from routerops_client.retry import RetryPolicy, retry_after_seconds
from tests.client.fake_routerops import Reply

UNAVAILABLE = {"error": {"code": "service_unavailable", "message": "Database restarting.", "details": None}}
THROTTLED = {"error": {"code": "throttled", "message": "Request was throttled.", "details": None}}


def decisions(n: int, *, start: int = 0) -> list[dict]:
    return [
        {
            "decision_id": f"d-{i}",
            "occurred_at": "2026-11-24T10:15:00Z",
            "router_version": "v1",
            "unit_id": f"u-{i % 7}",
            "routed_to": "cheap" if i % 3 else "strong",
        }
        for i in range(start, start + n)
    ]


class Sleeps(list):
    """Records the delays the client asks for instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(url: str, sleeps: Sleeps, **kwargs) -> RouterOpsClient:
    kwargs.setdefault("rng", random.Random(1))
    return RouterOpsClient(url, "ro_test_key", sleep=sleeps, **kwargs)


def test_it_retries_503_and_429_honouring_retry_after(fake_api):
    fake_api.script = [Reply(503, {"Retry-After": "1"}, UNAVAILABLE), Reply(429, {}, THROTTLED)]
    sleeps = Sleeps()
    with make_client(fake_api.url, sleeps) as client:
        summary = client.send_decisions(decisions(5))

    assert summary == IngestSummary(accepted=5, duplicates=0, rejected=0, errors=[], requests=1)
    assert len(fake_api.requests) == 3
    assert all(r.body == {"decisions": decisions(5)} for r in fake_api.requests)
    # Retry-After: 1 is a floor (the jittered backoff of retry 0 is at most 0.25 s).
    assert sleeps[0] == 1.0
    # No Retry-After on the 429: full jitter within base · 2^1.
    assert 0.0 <= sleeps[1] <= 0.5
    assert len(sleeps) == 2


def test_it_honours_retry_after_as_http_date(fake_api):
    when = datetime.now(UTC) + timedelta(seconds=10)
    fake_api.script = [Reply(503, {"Retry-After": format_datetime(when, usegmt=True)}, UNAVAILABLE)]
    sleeps = Sleeps()
    with make_client(fake_api.url, sleeps) as client:
        client.send_decisions(decisions(1))

    assert len(fake_api.requests) == 2
    # The date has whole seconds: between 9 and 10 s from when the header was read.
    assert len(sleeps) == 1 and 8.0 < sleeps[0] <= 10.0


def test_it_clamps_a_huge_retry_after_to_the_cap(fake_api):
    fake_api.script = [Reply(429, {"Retry-After": "3600"}, THROTTLED)]
    sleeps = Sleeps()
    with make_client(fake_api.url, sleeps, backoff_cap=5.0) as client:
        client.send_decisions(decisions(1))
    assert sleeps == [5.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_it_does_not_retry_other_4xx(fake_api, status):
    body = {"error": {"code": "invalid", "message": "The request is invalid; see details.", "details": {"x": ["y"]}}}
    fake_api.script = [Reply(status, {"Retry-After": "1"}, body)]
    sleeps = Sleeps()
    client = make_client(fake_api.url, sleeps)

    with pytest.raises(RouterOpsError) as caught:
        client.send_decisions(decisions(3))

    error = caught.value
    assert type(error) is RouterOpsError
    assert (error.status, error.code, error.message, error.details) == (
        status,
        "invalid",
        "The request is invalid; see details.",
        {"x": ["y"]},
    )
    assert error.attempts == 1
    assert len(fake_api.requests) == 1
    assert sleeps == []


def test_it_retries_any_5xx_then_raises_with_the_last_error_body(fake_api):
    fake_api.script = [
        Reply(500, {}, UNAVAILABLE),
        Reply(502, {}, "<html>Bad gateway</html>"),
        Reply(503, {}, UNAVAILABLE),
    ]
    sleeps = Sleeps()
    client = make_client(fake_api.url, sleeps, max_retries=2)

    with pytest.raises(RouterOpsError) as caught:
        client.send_decisions(decisions(2))

    assert (caught.value.status, caught.value.code, caught.value.attempts) == (503, "service_unavailable", 3)
    assert len(fake_api.requests) == 3
    assert len(sleeps) == 2


def test_a_non_json_error_from_a_proxy_keeps_its_text(fake_api):
    fake_api.script = [Reply(502, {}, "<html>Bad gateway</html>")]
    client = make_client(fake_api.url, Sleeps(), max_retries=0)
    with pytest.raises(RouterOpsError) as caught:
        client.send_decisions(decisions(1))
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        502,
        "http_502",
        "<html>Bad gateway</html>",
    )


def test_it_retries_connection_refused_then_raises_after_max_retries(closed_port):
    sleeps = Sleeps()
    client = make_client(f"http://127.0.0.1:{closed_port}", sleeps, max_retries=3, backoff_base=0.25)

    with pytest.raises(RouterOpsTransportError) as caught:
        client.send_decisions(decisions(1))

    assert caught.value.status is None
    assert caught.value.code == "transport_error"
    assert caught.value.attempts == 4
    assert "ConnectError" in caught.value.message
    assert len(sleeps) == 3
    # Full jitter: retry k waits within [0, base · 2^k].
    for retry, delay in enumerate(sleeps):
        assert 0.0 <= delay <= 0.25 * 2**retry


def test_it_retries_a_timeout(fake_api):
    fake_api.script = [Reply(200, delay=1.0, body={"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []})]
    sleeps = Sleeps()
    with make_client(fake_api.url, sleeps, timeout=0.2) as client:
        summary = client.send_decisions(decisions(1))
    # The first attempt may have been stored too: the resend is what idempotency is for.
    assert summary.accepted == 1
    assert len(fake_api.requests) == 2
    assert len(sleeps) == 1


def test_it_splits_2500_decisions_into_batches_of_at_most_1000(fake_api):
    sent = decisions(2500)
    with make_client(fake_api.url, Sleeps(), batch_size=1000) as client:
        summary = client.send_decisions(sent)

    assert [len(r.body["decisions"]) for r in fake_api.requests] == [1000, 1000, 500]
    assert [d for r in fake_api.requests for d in r.body["decisions"]] == sent
    assert all(r.path == "/api/v1/decisions" for r in fake_api.requests)
    assert summary == IngestSummary(accepted=2500, requests=3)


def test_it_translates_error_indexes_to_the_callers_list(fake_api):
    fake_api.reject_index = 3
    with make_client(fake_api.url, Sleeps(), batch_size=1000) as client:
        summary = client.send_decisions(decisions(2500))

    assert (summary.accepted, summary.rejected, summary.duplicates) == (2497, 3, 0)
    assert [(e["index"], e["decision_id"]) for e in summary.errors] == [(3, "d-3"), (1003, "d-1003"), (2003, "d-2003")]


def test_it_keeps_each_body_under_the_size_limit(fake_api):
    sent = decisions(40)
    with make_client(fake_api.url, Sleeps(), batch_size=1000, max_body_bytes=2000) as client:
        client.send_decisions(sent)

    sizes = [int(r.headers["Content-Length"]) for r in fake_api.requests]
    assert len(sizes) > 1
    assert max(sizes) <= 2000
    assert [d for r in fake_api.requests for d in r.body["decisions"]] == sent


def test_a_failed_batch_reports_what_earlier_batches_stored(fake_api):
    fake_api.script = [
        Reply(200, body={"accepted": 10, "duplicates": 0, "rejected": 0, "errors": []}),
        Reply(401, {}, {"error": {"code": "not_authenticated", "message": "Invalid API key.", "details": None}}),
    ]
    client = make_client(fake_api.url, Sleeps(), batch_size=10)
    with pytest.raises(RouterOpsError) as caught:
        client.send_decisions(decisions(30))
    assert caught.value.status == 401
    assert caught.value.summary == IngestSummary(accepted=10, requests=1)
    assert len(fake_api.requests) == 2


def test_it_rejects_a_batch_size_over_the_api_limit():
    with pytest.raises(ValueError, match="between 1 and 1000"):
        RouterOpsClient("http://127.0.0.1:1", "k", batch_size=1001)


def test_add_sends_full_batches_and_exit_flushes_the_rest(fake_api):
    with make_client(fake_api.url, Sleeps(), batch_size=3) as client:
        results = [client.add(d) for d in decisions(7)]
        assert [r.accepted if r else None for r in results] == [None, None, 3, None, None, 3, None]
        assert client.pending == 1
        assert len(fake_api.requests) == 2
    assert [[d["decision_id"] for d in r.body["decisions"]] for r in fake_api.requests] == [
        ["d-0", "d-1", "d-2"],
        ["d-3", "d-4", "d-5"],
        ["d-6"],
    ]


def test_a_failed_flush_keeps_the_buffer_for_the_next_one(fake_api):
    fake_api.script = [Reply(503, {}, UNAVAILABLE)]
    client = make_client(fake_api.url, Sleeps(), max_retries=0)
    client.add(decisions(1)[0])
    client.add(decisions(1, start=1)[0])

    with pytest.raises(RouterOpsError):
        client.flush()
    assert client.pending == 2

    summary = client.flush()
    assert summary.accepted == 2
    assert client.pending == 0
    assert client.flush() == IngestSummary()
    assert len(fake_api.requests) == 2


def test_it_sends_the_key_and_json(fake_api):
    with make_client(fake_api.url, Sleeps()) as client:
        client.send_decisions(decisions(1))
    headers = fake_api.requests[0].headers
    assert headers["Authorization"] == "Bearer ro_test_key"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("routerops-client/0.1.0 ")


def test_it_encodes_aware_datetimes_and_refuses_naive_ones_before_sending(fake_api):
    decision = decisions(1)[0]
    decision["occurred_at"] = datetime(2026, 11, 24, 11, 15, tzinfo=UTC) + timedelta(microseconds=5)
    with make_client(fake_api.url, Sleeps()) as client:
        client.send_decisions([decision])
        assert fake_api.requests[0].body["decisions"][0]["occurred_at"] == "2026-11-24T11:15:00.000005Z"

        naive = {**decision, "occurred_at": datetime(2026, 11, 24, 11, 15)}
        with pytest.raises(TypeError, match="naive datetime"):
            client.send_decisions([decisions(1)[0], naive])
    assert len(fake_api.requests) == 1


def test_send_feedback_posts_to_the_feedback_endpoint(fake_api):
    items = [{"decision_id": "d-1", "kind": "thumbs_down"}, {"decision_id": "d-2", "kind": "retry", "value": 2.0}]
    with make_client(fake_api.url, Sleeps()) as client:
        summary = client.send_feedback(items)
    assert summary.accepted == 2
    assert fake_api.requests[0].path == "/api/v1/feedback"
    sent = fake_api.requests[0].body["feedback"]
    # Each item goes out as given plus a content-derived idempotency key.
    assert [{k: v for k, v in item.items() if k != "feedback_id"} for item in sent] == items
    assert all(item["feedback_id"].startswith("fb-") for item in sent)
    assert sent[0]["feedback_id"] != sent[1]["feedback_id"]


def test_a_base_url_with_a_path_prefix_is_kept(fake_api):
    fake_api.script = [Reply(200, body={"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []})]
    with make_client(fake_api.url + "/routerops/", Sleeps()) as client:
        client.send_decisions(decisions(1))
    assert fake_api.requests[0].path == "/routerops/api/v1/decisions"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1", 1.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("Tue, 24 Nov 2026 10:15:07 GMT", 7.0),
        ("Tue, 24 Nov 2026 10:14:00 GMT", 0.0),
    ],
)
def test_retry_after_parsing(header, expected):
    now = datetime(2026, 11, 24, 10, 15, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now=now) == expected


def test_backoff_grows_exponentially_up_to_the_cap():
    class Top(random.Random):
        def uniform(self, a, b):
            return b  # the top of each jitter range

    policy = RetryPolicy(backoff_base=0.25, backoff_cap=3.0, rng=Top())
    assert [policy.delay(k) for k in range(6)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10_000) == 3.0


def test_the_client_imports_without_django():
    import subprocess
    import sys

    code = "import sys, routerops_client; assert 'django' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.django_db(transaction=True)
def test_end_to_end_resend_is_counted_as_duplicates(live_server, owner):
    sent = decisions(50)
    with RouterOpsClient(live_server.url, owner.keys["ingest"], batch_size=20) as client:
        first = client.send_decisions(sent)
        second = client.send_decisions(sent)

    assert first == IngestSummary(accepted=50, duplicates=0, rejected=0, errors=[], requests=3)
    assert second == IngestSummary(accepted=0, duplicates=50, rejected=0, errors=[], requests=3)
    stored = Decision.objects.filter(application=owner.application)
    assert sorted(stored.values_list("decision_id", flat=True)) == sorted(d["decision_id"] for d in sent)


@pytest.mark.django_db(transaction=True)
def test_end_to_end_207_reports_the_bad_item_by_the_callers_index(live_server, owner):
    sent = decisions(30)
    sent[25]["routed_to"] = "medium"
    with RouterOpsClient(live_server.url, owner.keys["ingest"], batch_size=10) as client:
        summary = client.send_decisions(sent)

    assert (summary.accepted, summary.rejected) == (29, 1)
    assert summary.errors == [
        {
            "index": 25,
            "decision_id": "d-25",
            "errors": {"routed_to": ["Unknown tier 'medium'; expected one of: cheap, strong."]},
        }
    ]
    assert Decision.objects.filter(application=owner.application).count() == 29


@pytest.mark.django_db(transaction=True)
def test_end_to_end_a_bad_key_is_refused_without_retries(live_server, owner):
    sleeps = Sleeps()
    client = RouterOpsClient(live_server.url, "ro_nope_notakey", sleep=sleeps)
    with pytest.raises(RouterOpsError) as caught:
        client.send_decisions(decisions(1))
    assert caught.value.status == 401
    assert sleeps == []
    assert Decision.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_resent_feedback_is_stored_once(live_server, owner):
    from router_ops.ingest.models import Feedback
    from routerops_client import RouterOpsClient

    items = [{"decision_id": "d-1", "kind": "thumbs_down", "occurred_at": "2026-11-24T10:00:00Z"}]
    with RouterOpsClient(live_server.url, owner.keys["ingest"]) as client:
        assert client.send_feedback(items).accepted == 1
        again = client.send_feedback(items)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert Feedback.objects.count() == 1
    assert Feedback.objects.get().feedback_id.startswith("fb-")
