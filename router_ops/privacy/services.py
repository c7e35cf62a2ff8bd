"""Redaction at ingestion and retention of prompt and response text."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import orjson
from django.db import transaction
from django.utils import timezone

from router_ops.applications.models import Application
from router_ops.ingest.models import Decision
from router_ops.ingest.validation import CleanDecision
from router_ops.privacy.models import DEFAULT_RETENTION_DAYS, PrivacySettings
from router_ops.privacy.redaction import DEFAULT_RULES, RedactionRules, redact, redact_json, rules_build

logger = logging.getLogger(__name__)

# Decisions that arrive late by less than this are still purged by the next run
# (the purge restarts this far before its watermark).
RETENTION_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class PrivacyPolicy:
    store_text: bool
    rules: RedactionRules
    retention_days: int | None


DEFAULT_POLICY = PrivacyPolicy(store_text=True, rules=DEFAULT_RULES, retention_days=DEFAULT_RETENTION_DAYS)

# Compiled policies per process, keyed by application id and stamped with the
# settings row's updated_at: an edit anywhere changes the stamp, so every process
# recompiles on its next batch. The stamp costs one indexed query per batch.
_cache: dict[int, tuple[object, PrivacyPolicy]] = {}
_lock = threading.Lock()


def privacy_policy(application: Application | int) -> PrivacyPolicy:
    application_id = application if isinstance(application, int) else application.id
    row = (
        PrivacySettings.objects.filter(application_id=application_id)
        .values_list("updated_at", "store_text", "builtin_rules", "custom_patterns", "retention_days")
        .first()
    )
    if row is None:
        return DEFAULT_POLICY
    stamp = row[0]
    cached = _cache.get(application_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    _, store_text, builtin, custom, retention_days = row
    try:
        rules = rules_build(builtin=builtin, custom=custom)
    except ValueError:
        # Only possible if a row was written around `full_clean` (raw SQL, a data
        # migration): redact with the built-in rules rather than fail the ingestion.
        logger.error("privacy: invalid custom pattern for application %s; using built-in rules only", application_id)
        rules = RedactionRules(builtin=DEFAULT_RULES.builtin & frozenset(builtin))
    policy = PrivacyPolicy(store_text=store_text, rules=rules, retention_days=retention_days)
    with _lock:
        _cache[application_id] = (stamp, policy)
    return policy


def privacy_policy_clear() -> None:
    """Forget every compiled policy (tests)."""
    with _lock:
        _cache.clear()


def _merge(total: dict[str, int], found: dict[str, int]) -> None:
    for rule, number in found.items():
        total[rule] = total.get(rule, 0) + number


def decision_redact(
    decision: CleanDecision, policy: PrivacyPolicy, counts: dict[str, int], *, now: datetime | None = None
) -> CleanDecision:
    """The decision as it may be stored: text dropped or redacted, string attributes redacted."""
    changes: dict = {}
    keep_text = policy.store_text
    if keep_text and policy.retention_days is not None and now is not None:
        # Already past retention on arrival: the purge's watermark may have passed it.
        keep_text = decision.occurred_at >= now - timedelta(days=policy.retention_days)
    if not keep_text:
        if decision.prompt is not None or decision.messages is not None or decision.response is not None:
            changes.update(prompt=None, messages=None, response=None)
    else:
        for field in ("prompt", "response"):
            text = getattr(decision, field)
            if text:
                redacted, found = redact(text, policy.rules)
                if found:
                    changes[field] = redacted
                    _merge(counts, found)
        if decision.messages is not None:
            messages = orjson.loads(decision.messages)
            found: dict[str, int] = {}
            for message in messages:
                message["content"], hits = redact(message["content"], policy.rules)
                _merge(found, hits)
            if found:
                changes["messages"] = orjson.dumps(messages).decode()
                _merge(counts, found)
    if decision.attributes:
        found = {}
        attributes = redact_json(decision.attributes, policy.rules, found)
        if found:
            changes.update(attributes=attributes, attributes_json=orjson.dumps(attributes).decode())
            _merge(counts, found)
    return replace(decision, **changes) if changes else decision


def privacy_apply(
    *, application: Application, decisions: list[CleanDecision], counts: dict[str, int] | None = None
) -> list[CleanDecision]:
    """Redact a validated batch before it is stored (and so before it can be mirrored).

    1. Load the application's policy (one query; compiled rules cached per process).
    2. With "store text" off, or for a decision already past retention, drop
       prompt, messages and response.
    3. Otherwise replace what the rules find in the prompt, each message's
       content and the response with `[REDACTED:<rule>]`.
    4. Redact every string value inside `attributes` (keys are kept).
    `counts`, when given, receives the number of replacements per rule.
    """
    if not decisions:
        return decisions
    policy = privacy_policy(application)
    found: dict[str, int] = {} if counts is None else counts
    now = timezone.now()
    return [decision_redact(decision, policy, found, now=now) for decision in decisions]


def text_redactor(application: Application | int):
    """A function redacting texts with the application's rules, as they are now (one
    query): for a batch of shadow answers before they are stored."""
    policy = privacy_policy(application)
    if not policy.store_text:
        return lambda text: ""
    return lambda text: redact(text, policy.rules)[0]


def text_redact(application: Application | int, text: str) -> str:
    """Redact one text with the application's rules (e.g. a shadow model's answer before it is stored)."""
    return text_redactor(application)(text)


def privacy_settings_update(*, application: Application, **fields) -> PrivacySettings:
    """Create or change an application's privacy settings; raises ValidationError on bad values."""
    settings_row = PrivacySettings.objects.filter(application=application).first() or PrivacySettings(
        application=application
    )
    for name, value in fields.items():
        setattr(settings_row, name, value)
    settings_row.full_clean(exclude=["application"])
    settings_row.save()
    return settings_row


def _purge_window(
    *, application_id: int, start: datetime | None, cutoff: datetime, batch_size: int
) -> tuple[int, int, int]:
    """Purge text of one application's decisions that occurred in [start, cutoff), batch by batch.

    Walks the (application, occurred_at) index with a keyset cursor, so each batch
    reads only rows it has not seen; each batch commits on its own, so locks are
    short and an interrupted purge keeps what it did.
    """
    from router_ops.judging.models import Judgment
    from router_ops.shadow.models import ShadowRun

    decisions = runs = judgments = 0
    cursor: tuple[datetime, int] | None = None
    while True:
        rows = Decision.objects.filter(application_id=application_id, occurred_at__lt=cutoff)
        if start is not None:
            rows = rows.filter(occurred_at__gte=start)
        if cursor is not None:
            rows = rows.filter(occurred_at__gte=cursor[0]).exclude(occurred_at=cursor[0], id__lte=cursor[1])
        batch = list(rows.order_by("occurred_at", "id").values_list("occurred_at", "id")[:batch_size])
        if not batch:
            break
        ids = [row_id for _, row_id in batch]
        with transaction.atomic():
            decisions += (
                Decision.objects.filter(id__in=ids)
                .exclude(prompt__isnull=True, messages__isnull=True, response__isnull=True)
                .update(prompt=None, messages=None, response=None)
            )
            runs += ShadowRun.objects.filter(sample__decision_id__in=ids).exclude(response="").update(response="")
            # Judges quote the texts in their replies; the verdicts stay.
            judgments += (
                Judgment.objects.filter(sample__decision_id__in=ids)
                .exclude(replies=[], rationale="")
                .update(replies=[], rationale="")
            )
        cursor = batch[-1]
        if len(batch) < batch_size:
            break
    return decisions, runs, judgments


def retention_purge(*, now: datetime | None = None, batch_size: int = 10_000) -> dict[str, int]:
    """Purge prompt and response text past each application's retention period.

    1. For each application, the cutoff is now − retention_days (applications
       without settings use DEFAULT_RETENTION_DAYS; retention_days empty = keep).
    2. Null prompt, messages and response of its decisions that occurred before
       the cutoff, empty their shadow answers and the judges' quoted replies, in
       bounded batches; counts, costs, attributes, segments and verdicts stay.
    3. Move the application's watermark to the cutoff, so the next run starts
       there (less RETENTION_GRACE for late arrivals) instead of at the beginning.
    Returns the number of rows changed per table.
    """
    now = now or timezone.now()
    policies = dict(PrivacySettings.objects.values_list("application_id", "retention_days"))
    watermarks = dict(PrivacySettings.objects.values_list("application_id", "text_purged_before"))
    totals = {"applications": 0, "decisions": 0, "shadow_runs": 0, "judgments": 0}
    for application_id in Application.objects.order_by("id").values_list("id", flat=True):
        retention_days = policies.get(application_id, DEFAULT_RETENTION_DAYS)
        if retention_days is None:
            continue
        cutoff = now - timedelta(days=retention_days)
        watermark = watermarks.get(application_id)
        start = watermark - RETENTION_GRACE if watermark is not None else None
        if start is not None and start >= cutoff:
            continue
        decisions, runs, judgments = _purge_window(
            application_id=application_id, start=start, cutoff=cutoff, batch_size=batch_size
        )
        # Never move the watermark backwards (retention_days may have been raised).
        updated = (
            PrivacySettings.objects.filter(application_id=application_id)
            .exclude(text_purged_before__gt=cutoff)
            .update(text_purged_before=cutoff)
        )
        if not updated and application_id not in policies:
            PrivacySettings.objects.get_or_create(
                application_id=application_id, defaults={"text_purged_before": cutoff}
            )
        totals["applications"] += 1
        totals["decisions"] += decisions
        totals["shadow_runs"] += runs
        totals["judgments"] += judgments
    if totals["decisions"]:
        logger.info("retention purge: %s", totals)
    return totals
