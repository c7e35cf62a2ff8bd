"""Segment alerts: one event, one webhook POST and one email per transition into or out
of `alert` — never on a repeated evaluation. The webhook is a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.test import Client

from router_ops.alerts.models import AlertEvent, AlertRule, SegmentAlertState
from router_ops.alerts.services import alert_event_deliver, alert_rule_create, alerts_evaluate, alerts_evaluate_all
from router_ops.alerts.tasks import alerts_evaluate_task
from router_ops.rollups.services import rollup_mark_dirty, rollup_refresh
from router_ops.shadow.models import ShadowSample
from tests.dashboard.world import build_world

pytestmark = pytest.mark.django_db


class Receiver:
    """A Slack-like webhook: records every POSTed JSON body; answers with queued statuses (then 200)."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/slack"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def world(owner):
    return build_world(owner.application)


@pytest.fixture
def rule(world, receiver):
    return alert_rule_create(
        application=world.application,
        name="On-call",
        webhook_url=receiver.url,
        email_recipients=["oncall@example.com"],
        window="7d",
    )


def heal(world, slug: str) -> None:
    """The segment's cheap answers turn out fine: every regret verdict becomes 'equivalent'."""
    segment = world.segments[slug]
    samples = ShadowSample.objects.filter(application=world.application, segment_ids__contains=[segment.id])
    samples.filter(verdict="shadow_better").update(verdict="equivalent", materially_disagree=False)
    rollup_mark_dirty(
        application_id=world.application.id, hours=samples.values_list("decision__occurred_at", flat=True)
    )
    rollup_refresh(batch_size=500)


def test_it_sends_once_when_a_segment_enters_alert(world, rule, receiver):
    events = alerts_evaluate(application=world.application)
    assert [(e.segment_slug, e.from_status, e.to_status) for e in events] == [("enterprise-api", "", "alert")]
    assert len(receiver.bodies) == 1
    text = receiver.bodies[0]["text"]
    assert set(receiver.bodies[0]) == {"text"}
    assert "Enterprise API" in text and "ALERT" in text and "/apps/support-bot/segments/enterprise-api/" in text
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["oncall@example.com"]
    assert "Enterprise API" in mail.outbox[0].subject
    event = AlertEvent.objects.get()
    assert event.deliveries == [
        {"channel": "webhook", "ok": True, "attempts": 1, "detail": "HTTP 200"},
        {"channel": "email", "ok": True, "attempts": 1, "detail": "to oncall@example.com"},
    ]
    assert event.payload["regret_rate"]["estimate"] > 0.2
    # Every segment's status is remembered, alerting or not.
    assert SegmentAlertState.objects.filter(rule=rule).count() == 3


def test_it_does_not_send_again_on_repeated_evaluations(world, rule, receiver):
    alerts_evaluate(application=world.application)
    for _ in range(3):
        assert alerts_evaluate(application=world.application) == []
    assert len(receiver.bodies) == 1
    assert len(mail.outbox) == 1
    assert AlertEvent.objects.count() == 1


def test_it_sends_once_on_recovery(world, rule, receiver):
    alerts_evaluate(application=world.application)
    heal(world, "enterprise-api")
    (event,) = alerts_evaluate(application=world.application)
    assert (event.from_status, event.segment_slug) == ("alert", "enterprise-api")
    assert event.to_status != "alert"
    assert alerts_evaluate(application=world.application) == []
    assert len(receiver.bodies) == 2
    assert "recovered" in receiver.bodies[1]["text"]
    assert len(mail.outbox) == 2
    assert list(AlertEvent.objects.order_by("id").values_list("to_status", flat=True)) == ["alert", event.to_status]


def test_a_segment_that_is_fine_from_the_start_never_notifies(world, receiver):
    heal(world, "enterprise-api")
    alert_rule_create(application=world.application, name="r", webhook_url=receiver.url, window="7d")
    assert alerts_evaluate(application=world.application) == []
    assert receiver.bodies == []
    assert mail.outbox == []


def test_it_retries_the_webhook_once_on_a_server_error(world, rule, receiver):
    receiver.statuses = [503]
    alerts_evaluate(application=world.application)
    assert len(receiver.bodies) == 2
    assert AlertEvent.objects.get().deliveries[0] == {
        "channel": "webhook",
        "ok": True,
        "attempts": 2,
        "detail": "HTTP 200",
    }


def test_a_failing_webhook_is_recorded_and_not_resent(world, rule, receiver):
    receiver.statuses = [500, 500]
    alerts_evaluate(application=world.application)
    event = AlertEvent.objects.get()
    assert event.deliveries[0] == {"channel": "webhook", "ok": False, "attempts": 2, "detail": "HTTP 500"}
    assert event.deliveries[1]["ok"] is True  # email still went out
    alerts_evaluate_all()
    assert len(receiver.bodies) == 2


def test_an_unreachable_webhook_does_not_break_evaluation(world, receiver):
    alert_rule_create(application=world.application, name="r", webhook_url="http://127.0.0.1:9/nothing", window="7d")
    (event,) = alerts_evaluate(application=world.application)
    delivery = AlertEvent.objects.get(id=event.id).deliveries[0]
    assert delivery["ok"] is False and delivery["attempts"] == 2 and "ConnectError" in delivery["detail"]


def test_an_event_is_delivered_at_most_once(world, rule, receiver):
    (event,) = alerts_evaluate(application=world.application)
    assert alert_event_deliver(event_id=event.id) is False
    assert len(receiver.bodies) == 1


def test_an_inactive_rule_does_nothing(world, rule, receiver):
    AlertRule.objects.filter(id=rule.id).update(active=False)
    assert alerts_evaluate(application=world.application) == []
    assert receiver.bodies == [] and not SegmentAlertState.objects.exists()


def test_the_periodic_task_evaluates_every_application(world, rule, receiver):
    assert alerts_evaluate_task.apply().get() == 1
    assert alerts_evaluate_task.apply().get() == 0
    assert len(receiver.bodies) == 1


def test_history_is_visible_on_the_alerts_page(world, rule, receiver, member):
    alerts_evaluate(application=world.application)
    client = Client()
    client.force_login(member)
    body = client.get("/apps/support-bot/alerts/").content.decode()
    assert "On-call" in body and "Enterprise API" in body
    assert 'data-status="alert"' in body and "webhook ✓" in body and "email ✓" in body
