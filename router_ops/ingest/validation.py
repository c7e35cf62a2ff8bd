"""Validation of decision and feedback items on the ingestion hot path. Pure: no Django.

A DRF serializer costs ~150 µs per decision; these plain functions cost a few µs
and give the same per-field error shape (`{"field": ["message", …]}`), collecting
every error of an item, not just the first (bench/ingest.py measures both paths).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

MAX_ID = 128
MAX_VERSION = 64
MAX_MODEL = 200
MAX_INT = 2_147_483_647  # PostgreSQL integer
MAX_COST = 999_999.0  # numeric(14, 8)
MAX_SHADOW_DECISIONS = 16
MAX_ATTRIBUTES_BYTES = 16_384

DECISION_FIELDS = frozenset(
    {
        "decision_id",
        "occurred_at",
        "router_version",
        "unit_id",
        "routed_to",
        "model",
        "router_score",
        "prompt",
        "messages",
        "response",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "cost_usd",
        "attributes",
        "shadow_decisions",
    }
)
SHADOW_FIELDS = frozenset({"router_version", "routed_to", "router_score"})
FEEDBACK_FIELDS = frozenset({"decision_id", "kind", "value", "occurred_at", "feedback_id"})
MAX_KIND = 64

Errors = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class CleanDecision:
    decision_id: str
    occurred_at: datetime
    router_version: str
    unit_id: str
    routed_to: str
    model: str
    router_score: float | None
    prompt: str | None
    messages: str | None  # JSON text
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    cost_usd: float | None
    attributes: dict
    attributes_json: str
    shadow_decisions: list[dict]
    shadow_decisions_json: str


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _string(item: dict, field: str, errors: Errors, *, required: bool, max_length: int | None = None) -> str | None:
    value = item.get(field)
    if value is None:
        if required:
            _add(errors, field, "This field is required." if field not in item else "This field may not be null.")
        return None
    if not isinstance(value, str):
        _add(errors, field, "Must be a string.")
        return None
    if required and not value.strip():
        _add(errors, field, "May not be blank.")
        return None
    if max_length is not None and len(value) > max_length:
        _add(errors, field, f"Ensure this field has no more than {max_length} characters.")
        return None
    if "\x00" in value:
        _add(errors, field, "May not contain NUL characters.")
        return None
    return value


# RFC 3339 §5.6 date-time; "T" and "Z" may be lower case, and a space may stand for "T".
# datetime.fromisoformat alone also takes ISO week dates, "+0100", "," fractions.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_timestamp(value: object) -> datetime | str:
    """An RFC 3339 timestamp with a UTC offset, as a UTC datetime, or the reason it is not one."""
    if not isinstance(value, str):
        return "Must be an RFC 3339 timestamp string, e.g. 2026-11-24T10:15:00Z."
    match = _RFC3339.fullmatch(value)
    if match is None:
        if _DATE_ONLY.fullmatch(value):
            return "Must be an RFC 3339 timestamp with date and time, e.g. 2026-11-24T10:15:00Z."
        return "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."
    if match["offset"] is None:
        return "Must include a UTC offset (Z or ±hh:mm)."
    try:
        # Python 3.11 wants "T"/"Z" upper case. Converting to UTC here refuses instants
        # that PostgreSQL would store but Python could never load again (year 0 or 10000).
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        return "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."


def _timestamp(item: dict, field: str, errors: Errors) -> datetime | None:
    if item.get(field) is None:
        _add(errors, field, "This field is required." if field not in item else "This field may not be null.")
        return None
    parsed = parse_timestamp(item[field])
    if isinstance(parsed, str):
        _add(errors, field, parsed)
        return None
    return parsed


def _number(
    item: dict, field: str, errors: Errors, *, minimum: float | None = None, maximum: float | None = None
) -> float | None:
    value = item.get(field)
    if value is None:
        return None
    # bool is an int subclass in Python; JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _add(errors, field, "Must be a number.")
        return None
    value = float(value)
    if not math.isfinite(value):
        _add(errors, field, "Must be a finite number.")
    elif minimum is not None and value < minimum:
        _add(errors, field, f"Must be greater than or equal to {minimum:g}.")
    elif maximum is not None and value > maximum:
        _add(errors, field, f"Must be less than or equal to {maximum:g}.")
    else:
        return value
    return None


def _count(item: dict, field: str, errors: Errors) -> int | None:
    value = item.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _add(errors, field, "Must be an integer.")
    elif value < 0:
        _add(errors, field, "Must be greater than or equal to 0.")
    elif value > MAX_INT:
        _add(errors, field, f"Must be less than or equal to {MAX_INT}.")
    else:
        return value
    return None


# A NUL character, escaped by orjson as \u0000; an even run of backslashes before it
# is escaped backslashes, i.e. the harmless literal text "\u0000".
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _json_text(value: object) -> str | None:
    """JSON text for a jsonb column, or None if PostgreSQL would refuse it (NUL characters)."""
    text = orjson.dumps(value).decode()
    return None if "\\u0000" in text and _ESCAPED_NUL.search(text) else text


def _messages(item: dict, errors: Errors) -> str | None:
    value = item.get("messages")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        _add(errors, "messages", "Must be a non-empty list of {role, content} objects.")
        return None
    for position, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            _add(errors, "messages", f"Item {position} must be an object with string 'role' and 'content'.")
            return None
    text = _json_text(value)
    if text is None:
        _add(errors, "messages", "May not contain NUL characters.")
    return text


def _shadow_decisions(item: dict, tiers: frozenset[str], errors: Errors) -> list[dict]:
    value = item.get("shadow_decisions")
    if value is None:
        return []
    if not isinstance(value, list):
        _add(errors, "shadow_decisions", "Must be a list of objects.")
        return []
    if len(value) > MAX_SHADOW_DECISIONS:
        _add(errors, "shadow_decisions", f"At most {MAX_SHADOW_DECISIONS} shadow decisions.")
        return []
    clean = []
    for position, shadow in enumerate(value):
        if not isinstance(shadow, dict):
            _add(errors, "shadow_decisions", f"Item {position} must be an object.")
            continue
        unknown = sorted(set(shadow) - SHADOW_FIELDS)
        if unknown:
            _add(errors, "shadow_decisions", f"Item {position}: unknown field(s): {', '.join(unknown)}.")
            continue
        sub: Errors = {}
        version = _string(shadow, "router_version", sub, required=True, max_length=MAX_VERSION)
        routed_to = _string(shadow, "routed_to", sub, required=True, max_length=32)
        if routed_to is not None and routed_to not in tiers:
            _add(sub, "routed_to", f"Unknown tier {routed_to!r}; expected one of: {', '.join(sorted(tiers))}.")
        score = _number(shadow, "router_score", sub)
        if sub:
            for field, messages in sub.items():
                for message in messages:
                    _add(errors, "shadow_decisions", f"Item {position}, {field}: {message}")
            continue
        entry = {"router_version": version, "routed_to": routed_to}
        if score is not None:
            entry["router_score"] = score
        clean.append(entry)
    return clean


def decision_validate(item: object, tiers: frozenset[str]) -> CleanDecision | Errors:
    """Validate one decision object; return the clean decision or every error found."""
    if not isinstance(item, dict):
        return {"non_field_errors": ["Each decision must be a JSON object."]}
    errors: Errors = {}
    for field in item.keys() - DECISION_FIELDS:
        _add(errors, field, "Unknown field.")
    decision_id = _string(item, "decision_id", errors, required=True, max_length=MAX_ID)
    occurred_at = _timestamp(item, "occurred_at", errors)
    router_version = _string(item, "router_version", errors, required=True, max_length=MAX_VERSION)
    unit_id = _string(item, "unit_id", errors, required=True, max_length=MAX_ID)
    routed_to = _string(item, "routed_to", errors, required=True, max_length=32)
    if routed_to is not None and routed_to not in tiers:
        _add(errors, "routed_to", f"Unknown tier {routed_to!r}; expected one of: {', '.join(sorted(tiers))}.")
    model = _string(item, "model", errors, required=False, max_length=MAX_MODEL)
    router_score = _number(item, "router_score", errors)
    prompt = _string(item, "prompt", errors, required=False)
    messages = _messages(item, errors)
    if item.get("prompt") is not None and item.get("messages") is not None:
        _add(errors, "messages", "Give either prompt or messages, not both.")
    response = _string(item, "response", errors, required=False)
    prompt_tokens = _count(item, "prompt_tokens", errors)
    completion_tokens = _count(item, "completion_tokens", errors)
    latency_ms = _number(item, "latency_ms", errors, minimum=0)
    cost_usd = _number(item, "cost_usd", errors, minimum=0, maximum=MAX_COST)

    attributes = item.get("attributes")
    attributes_json = "{}"
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict):
        _add(errors, "attributes", "Must be a JSON object.")
    else:
        attributes_json = _json_text(attributes)
        if attributes_json is None:
            _add(errors, "attributes", "May not contain NUL characters.")
        elif len(attributes_json.encode()) > MAX_ATTRIBUTES_BYTES:
            _add(errors, "attributes", f"At most {MAX_ATTRIBUTES_BYTES} bytes of JSON.")
    shadow_decisions = _shadow_decisions(item, tiers, errors)

    if errors:
        return errors
    return CleanDecision(
        decision_id=decision_id,
        occurred_at=occurred_at,
        router_version=router_version,
        unit_id=unit_id,
        routed_to=routed_to,
        model=model or "",
        router_score=router_score,
        prompt=prompt,
        messages=messages,
        response=response,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        attributes=attributes,
        attributes_json=attributes_json,
        shadow_decisions=shadow_decisions,
        shadow_decisions_json=orjson.dumps(shadow_decisions).decode(),
    )


@dataclass(frozen=True, slots=True)
class CleanFeedback:
    decision_id: str
    kind: str
    value: float | None
    occurred_at: datetime | None
    feedback_id: str | None


def feedback_validate(item: object) -> CleanFeedback | Errors:
    if not isinstance(item, dict):
        return {"non_field_errors": ["Each feedback item must be a JSON object."]}
    errors: Errors = {}
    for field in item.keys() - FEEDBACK_FIELDS:
        _add(errors, field, "Unknown field.")
    decision_id = _string(item, "decision_id", errors, required=True, max_length=MAX_ID)
    kind = _string(item, "kind", errors, required=True, max_length=MAX_KIND)
    value = _number(item, "value", errors)
    # Optional for feedback: when absent, the time it was received.
    occurred_at = _timestamp(item, "occurred_at", errors) if item.get("occurred_at") is not None else None
    feedback_id = _string(item, "feedback_id", errors, required=False, max_length=MAX_ID)
    if feedback_id is not None and not feedback_id.strip():
        # Blank ids would all collide on the unique constraint: later items silently dropped.
        _add(errors, "feedback_id", "May not be blank.")
    if errors:
        return errors
    return CleanFeedback(decision_id, kind, value, occurred_at, feedback_id)
