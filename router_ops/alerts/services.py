"""Segment alerts: detect transitions into and out of `alert`, record them, deliver them once.

Delivery goes to the outside world (a webhook, a mail server), so it happens
after the transition is committed and is claimed atomically per event: a
second evaluation, a second worker or the sweep never sends an event twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.urls import reverse

from router_ops.alerts.models import AlertEvent, AlertRule, SegmentAlertState
from router_ops.applications.models import Application
from router_ops.rollups.selectors import default_router_version, parse_window, segment_stats
from segments.models import Segment

logger = logging.getLogger(__name__)

ALERT = "alert"
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 2  # one retry


@dataclass(frozen=True)
class Transition:
    segment_id: int
    from_status: str
    to_status: str


def _notifies(from_status: str, to_status: str) -> bool:
    return (to_status == ALERT) != (from_status == ALERT)


def _move_state(rule: AlertRule, segment_id: int, status: str) -> str | None:
    """Set the rule's known status of a segment; return the previous one if this call changed it.

    The conditional UPDATE is the claim: of two concurrent evaluations seeing the
    same change, only one updates the row (the other's WHERE no longer matches).
    """
    state = SegmentAlertState.objects.filter(rule=rule, segment_id=segment_id).values_list("status", flat=True).first()
    if state is None:
        try:
            with transaction.atomic():
                SegmentAlertState.objects.create(rule=rule, segment_id=segment_id, status=status)
        except IntegrityError:  # a concurrent evaluation created it first
            return None
        return ""
    if state == status:
        return None
    changed = SegmentAlertState.objects.filter(rule=rule, segment_id=segment_id, status=state).update(
        status=status, updated_at=Now()
    )
    return state if changed else None


def _payload(application: Application, rule: AlertRule, entry: dict, from_status: str, version: str | None) -> dict:
    regret = entry["regret_rate"]
    base = getattr(settings, "ROUTEROPS_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    url = base + reverse("dashboard:segment", args=[application.slug, entry["segment"]])
    if regret["estimate"] is None:
        rate = "no judged pairs"
    else:
        rate = f"regret {regret['estimate']:.1%} ({regret['low']:.1%}–{regret['high']:.1%}), {regret['n']} judged"
    if entry["status"] == ALERT:
        headline = f"🚨 {application.display_name}: segment “{entry['name'] or entry['segment']}” is in ALERT"
    else:
        headline = f"✅ {application.display_name}: segment “{entry['name'] or entry['segment']}” recovered ({entry['status']})"
    text = f"{headline}\n{rate} over the last {rule.window} (router {version or '—'}). {entry['status_reason']}.\n{url}"
    return {
        "text": text,
        "application": application.slug,
        "segment": entry["segment"],
        "from_status": from_status,
        "to_status": entry["status"],
        "window": rule.window,
        "router_version": version,
        "regret_rate": regret,
        "traffic_share": entry["traffic_share"],
        "reason": entry["status_reason"],
        "url": url,
    }


def alerts_evaluate(*, application: Application, now=None) -> list[AlertEvent]:
    """Compare every segment's current status with the last one each active rule saw.

    1. For each active rule, compute segment statuses over its window (one rollup query).
    2. Move each segment's known status (conditional UPDATE; see `_move_state`).
    3. For a move into or out of `alert`, record one AlertEvent (first sighting of a
       segment counts as a move from "" — a segment already burning on day one alerts).
    4. After commit, deliver the new events (`alert_event_deliver`).
    Returns the events recorded by this call.
    """
    rules = list(AlertRule.objects.filter(application=application, active=True))
    if not rules:
        return []
    version = default_router_version(application)
    created: list[AlertEvent] = []
    for rule in rules:
        stats = segment_stats(
            application=application, router_version=version, window=parse_window(rule.window), now=now
        )
        ids = dict(Segment.objects.filter(application=application).values_list("slug", "id"))
        for entry in stats["segments"]:
            segment_id = ids.get(entry["segment"])
            if segment_id is None:
                continue
            with transaction.atomic():
                previous = _move_state(rule, segment_id, entry["status"])
                if previous is None or not _notifies(previous, entry["status"]):
                    continue
                created.append(
                    AlertEvent.objects.create(
                        application=application,
                        rule=rule,
                        segment_id=segment_id,
                        segment_slug=entry["segment"],
                        segment_name=entry["name"] or entry["segment"],
                        from_status=previous,
                        to_status=entry["status"],
                        payload=_payload(application, rule, entry, previous, stats["router_version"]),
                    )
                )
    for event in created:
        alert_event_deliver(event_id=event.id)
    return created


def alert_rule_create(
    *,
    application: Application,
    name: str,
    webhook_url: str = "",
    email_recipients: list[str] | None = None,
    window: str = "24h",
    active: bool = True,
) -> AlertRule:
    parse_window(window)
    return AlertRule.objects.create(
        application=application,
        name=name,
        webhook_url=webhook_url,
        email_recipients=list(email_recipients or []),
        window=window,
        active=active,
    )


def _post_webhook(url: str, text: str) -> dict:
    error = ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            response = httpx.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT_S)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 400:
            return {"channel": "webhook", "ok": True, "attempts": attempt, "detail": f"HTTP {response.status_code}"}
        error = f"HTTP {response.status_code}"
        if response.status_code < 500 and response.status_code != 429:
            break  # the receiver refused the message; sending it again will not help
    logger.warning("alert webhook to %s failed: %s", url, error)
    return {"channel": "webhook", "ok": False, "attempts": attempt, "detail": error}


def _send_email(recipients: list[str], subject: str, text: str) -> dict:
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any mail failure is recorded on the event, never raised
        logger.warning("alert email failed: %s", exc)
        return {"channel": "email", "ok": False, "attempts": 1, "detail": f"{type(exc).__name__}: {exc}"}
    return {"channel": "email", "ok": True, "attempts": 1, "detail": f"to {', '.join(recipients)}"}


def alert_event_deliver(*, event_id: int) -> bool:
    """Send one event to its rule's webhook and recipients, once.

    1. Claim the event (conditional UPDATE on `delivery_claimed_at IS NULL`); a lost claim returns False.
    2. POST {"text": …} to the webhook (explicit timeout, one retry on a transport error or 5xx/429).
    3. Email the recipients.
    4. Store each channel's result on the event.
    """
    claimed = AlertEvent.objects.filter(id=event_id, delivery_claimed_at__isnull=True).update(delivery_claimed_at=Now())
    if not claimed:
        return False
    event = AlertEvent.objects.select_related("rule").get(id=event_id)
    rule = event.rule
    results = []
    text = event.payload.get("text", "")
    if rule is not None and rule.webhook_url:
        results.append(_post_webhook(rule.webhook_url, text))
    if rule is not None and rule.email_recipients:
        subject = text.splitlines()[0] if text else f"RouterOps: {event.segment_slug} is {event.to_status}"
        results.append(_send_email(list(rule.email_recipients), subject, text))
    AlertEvent.objects.filter(id=event_id).update(deliveries=results)
    return True


def alerts_deliver_pending(*, limit: int = 100) -> int:
    """Deliver events recorded but never claimed (e.g. the process died right after the commit)."""
    ids = list(
        AlertEvent.objects.filter(delivery_claimed_at__isnull=True).order_by("id").values_list("id", flat=True)[:limit]
    )
    return sum(alert_event_deliver(event_id=event_id) for event_id in ids)


def alerts_evaluate_all() -> int:
    """Evaluate every application with an active rule; return the number of events recorded."""
    apps = Application.objects.filter(alert_rules__active=True).distinct()
    total = 0
    for application in apps:
        total += len(alerts_evaluate(application=application))
    alerts_deliver_pending()
    return total
