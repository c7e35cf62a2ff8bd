"""Per-field validation of decisions (router_ops/ingest/validation.py) through POST /api/v1/decisions.

A single decision that fails answers 400 with the error shape and the per-field
errors as `details`; a batch answers 207 with the errors listed per item. Either
way nothing of the invalid item is stored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from router_ops.applications.models import ModelEndpoint
from router_ops.ingest.models import Decision
from router_ops.ingest.validation import CleanDecision, decision_validate
from router_ops.rollouts.models import RouterVersion
from tests.ingest.payloads import decision, invalid, without

TIERS_ERROR = "Unknown tier {!r}; expected one of: cheap, strong."
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
STRING = "Must be a string."
NUMBER = "Must be a number."
INTEGER = "Must be an integer."
GE0 = "Must be greater than or equal to 0."
NUL = "May not contain NUL characters."
BLANK = "May not be blank."
MESSAGES = "Must be a non-empty list of {role, content} objects."


def too_long(n: int) -> str:
    return f"Ensure this field has no more than {n} characters."


def post(persona, body):
    return persona.client().post("/api/v1/decisions", body, format="json")


def assert_rejected(persona, body, details):
    response = post(persona, body)
    assert response.status_code == 400, response.content
    assert response.json() == invalid(details)
    assert Decision.objects.count() == 0
    # Validation happens before anything is written: not even the draft router version.
    assert RouterVersion.objects.count() == 0


@pytest.mark.parametrize("field", ["decision_id", "occurred_at", "router_version", "unit_id", "routed_to"])
def test_it_requires_field(owner, field):
    assert_rejected(owner, without(decision(), field), {field: [REQUIRED]})


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("decision_id", NOT_NULL),
        ("occurred_at", NOT_NULL),
        ("router_version", NOT_NULL),
        ("unit_id", NOT_NULL),
        ("routed_to", NOT_NULL),
    ],
)
def test_it_rejects_null_required_field(owner, field, message):
    assert_rejected(owner, decision(**{field: None}), {field: [message]})


def test_it_reports_every_missing_field_at_once(owner):
    assert_rejected(
        owner,
        {},
        {f: [REQUIRED] for f in ("decision_id", "occurred_at", "router_version", "unit_id", "routed_to")},
    )


@pytest.mark.parametrize("field", ["decision_id", "router_version", "unit_id", "routed_to"])
def test_it_rejects_blank_required_string(owner, field):
    assert_rejected(owner, decision(**{field: "  "}), {field: [BLANK]})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("decision_id", 123, STRING),
        ("decision_id", ["d-1"], STRING),
        ("router_version", 12, STRING),
        ("unit_id", {"id": 1}, STRING),
        ("routed_to", True, STRING),
        ("model", 1, STRING),
        ("prompt", ["hi"], STRING),
        ("response", 42, STRING),
        ("router_score", "0.3", NUMBER),
        ("router_score", True, NUMBER),
        ("latency_ms", "840", NUMBER),
        ("latency_ms", False, NUMBER),
        ("cost_usd", "0.1", NUMBER),
        ("cost_usd", True, NUMBER),
        ("prompt_tokens", 1.5, INTEGER),
        ("prompt_tokens", 10.0, INTEGER),
        ("prompt_tokens", "10", INTEGER),
        ("prompt_tokens", True, INTEGER),
        ("completion_tokens", False, INTEGER),
        ("completion_tokens", [1], INTEGER),
    ],
)
def test_it_rejects_wrong_type(owner, field, value, message):
    assert_rejected(owner, decision(**{field: value}), {field: [message]})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prompt_tokens", -1, GE0),
        ("completion_tokens", -5, GE0),
        ("latency_ms", -0.5, GE0),
        ("cost_usd", -0.0001, GE0),
        ("prompt_tokens", 2_147_483_648, "Must be less than or equal to 2147483647."),
        ("completion_tokens", 10**12, "Must be less than or equal to 2147483647."),
        ("cost_usd", 1_000_000, "Must be less than or equal to 999999."),
    ],
)
def test_it_rejects_out_of_range_number(owner, field, value, message):
    assert_rejected(owner, decision(**{field: value}), {field: [message]})


@pytest.mark.parametrize(
    ("field", "limit"),
    [("decision_id", 128), ("unit_id", 128), ("router_version", 64), ("routed_to", 32), ("model", 200)],
)
def test_it_rejects_too_long_string(owner, field, limit):
    assert_rejected(owner, decision(**{field: "x" * (limit + 1)}), {field: [too_long(limit)]})


def test_it_accepts_strings_at_their_limits(owner):
    ModelEndpoint.objects.create(
        application=owner.application, name="wide", tier="t" * 32, base_url="http://llm.local", model="m"
    )
    body = decision("d" * 128, unit_id="u" * 128, router_version="v" * 64, routed_to="t" * 32, model="m" * 200)
    response = post(owner, body)
    assert response.status_code == 200, response.content
    row = Decision.objects.get()
    assert (row.decision_id, row.unit_id, row.routed_to, row.model) == ("d" * 128, "u" * 128, "t" * 32, "m" * 200)
    assert row.router_version.name == "v" * 64


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-24T10:15:00", "Must include a UTC offset (Z or ±hh:mm)."),
        ("2026-11-24T10:15:00.250", "Must include a UTC offset (Z or ±hh:mm)."),
        ("2026-11-24", "Must be an RFC 3339 timestamp with date and time, e.g. 2026-11-24T10:15:00Z."),
        ("yesterday", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        ("2026-11-24T10:15Z", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        ("2026-13-24T10:15:00Z", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        ("2026-11-24T24:00:00Z", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        ("2026-W48-1T10:15:00Z", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        ("2026-11-24T10:15:00+0100", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        # Valid offsets whose UTC instant falls outside what Python (and so every reader) can load.
        ("9999-12-31T23:59:59-01:00", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        ("0001-01-01T00:00:00+01:00", "Not a valid RFC 3339 timestamp, e.g. 2026-11-24T10:15:00Z."),
        (1732443300, "Must be an RFC 3339 timestamp string, e.g. 2026-11-24T10:15:00Z."),
        (True, "Must be an RFC 3339 timestamp string, e.g. 2026-11-24T10:15:00Z."),
    ],
)
def test_it_rejects_bad_timestamp(owner, value, message):
    assert_rejected(owner, decision(occurred_at=value), {"occurred_at": [message]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T10:15:00Z", datetime(2026, 11, 24, 10, 15, tzinfo=UTC)),
        ("2026-11-24T10:15:00+05:30", datetime(2026, 11, 24, 4, 45, tzinfo=UTC)),
        ("2026-11-24T10:15:00-08:00", datetime(2026, 11, 24, 18, 15, tzinfo=UTC)),
        ("2026-11-24T10:15:00.123456Z", datetime(2026, 11, 24, 10, 15, 0, 123456, tzinfo=UTC)),
        # RFC 3339 §5.6: "T" and "Z" may be lower case; a space may separate date and time.
        ("2026-11-24t10:15:00z", datetime(2026, 11, 24, 10, 15, tzinfo=UTC)),
        ("2026-11-24 10:15:00+00:00", datetime(2026, 11, 24, 10, 15, tzinfo=UTC)),
    ],
)
def test_it_stores_the_instant_of_an_offset_timestamp(owner, value, expected):
    response = post(owner, decision(occurred_at=value))
    assert response.status_code == 200, response.content
    assert Decision.objects.get().occurred_at == expected


def test_it_rejects_unknown_tier(owner):
    assert_rejected(owner, decision(routed_to="medium"), {"routed_to": [TIERS_ERROR.format("medium")]})


def test_it_accepts_a_tier_configured_for_the_application(owner, outsider):
    ModelEndpoint.objects.create(
        application=owner.application, name="mid-1", tier="medium", base_url="http://llm.local", model="mid-1"
    )
    assert post(owner, decision(routed_to="medium")).status_code == 200
    # The tier belongs to the owner's application only.
    response = post(outsider, decision(routed_to="medium"))
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"routed_to": [TIERS_ERROR.format("medium")]}
    assert Decision.objects.filter(application=outsider.application).count() == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hello", MESSAGES),
        ([], MESSAGES),
        ({"role": "user", "content": "hi"}, MESSAGES),
        (["hi"], "Item 0 must be an object with string 'role' and 'content'."),
        ([{"role": "user"}], "Item 0 must be an object with string 'role' and 'content'."),
        (
            [{"role": "user", "content": "a"}, {"role": 1, "content": "b"}],
            "Item 1 must be an object with string 'role' and 'content'.",
        ),
        ([{"role": "user", "content": None}], "Item 0 must be an object with string 'role' and 'content'."),
        ([{"role": "user", "content": "a\x00b"}], NUL),
    ],
)
def test_it_rejects_bad_messages(owner, value, message):
    assert_rejected(owner, decision(messages=value), {"messages": [message]})


def test_it_rejects_prompt_and_messages_together(owner):
    body = decision(prompt="hi", messages=[{"role": "user", "content": "hi"}])
    assert_rejected(owner, body, {"messages": ["Give either prompt or messages, not both."]})


@pytest.mark.parametrize(
    "field", ["decision_id", "router_version", "unit_id", "routed_to", "model", "prompt", "response"]
)
def test_it_rejects_nul_characters(owner, field):
    assert_rejected(owner, decision(**{field: "a\x00b"}), {field: [NUL]})


@pytest.mark.parametrize(
    "attributes",
    [{"tenant": "a\x00"}, {"a\x00": "x"}, {"nested": {"deep": ["x", "\x00"]}}],
)
def test_it_rejects_nul_characters_in_attributes(owner, attributes):
    assert_rejected(owner, decision(attributes=attributes), {"attributes": [NUL]})


def test_it_keeps_a_literal_backslash_u0000_that_is_not_a_nul(owner):
    # The text `\u0000` (backslash, u, four zeros) is legal in jsonb; only the NUL character is not.
    attributes = {"path": "C:\\u0000\\dir", "nested": ["\\\\u0000"]}
    messages = [{"role": "user", "content": "print('\\u0000')"}]
    response = post(owner, decision(attributes=attributes, messages=messages))
    assert response.status_code == 200, response.content
    row = Decision.objects.get()
    assert row.attributes == attributes
    assert row.messages == messages


@pytest.mark.parametrize("value", [["tenant", "acme"], "acme", 3, True])
def test_it_rejects_non_object_attributes(owner, value):
    assert_rejected(owner, decision(attributes=value), {"attributes": ["Must be a JSON object."]})


def test_it_rejects_oversized_attributes(owner):
    # {"k":"…"} is 8 bytes of JSON around the value: 16,385 bytes in all.
    assert_rejected(owner, decision(attributes={"k": "x" * 16_377}), {"attributes": ["At most 16384 bytes of JSON."]})


def test_it_measures_attributes_in_bytes_not_characters(owner):
    # 6,000 three-byte characters: 6,008 characters but 18,008 bytes of JSON.
    assert_rejected(owner, decision(attributes={"k": "€" * 6_000}), {"attributes": ["At most 16384 bytes of JSON."]})


def test_it_accepts_attributes_at_the_limit(owner):
    attributes = {"k": "x" * 16_376}  # exactly 16,384 bytes
    response = post(owner, decision(attributes=attributes))
    assert response.status_code == 200, response.content
    assert Decision.objects.get().attributes == attributes


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        ("v13", ["Must be a list of objects."]),
        ({"router_version": "v13", "routed_to": "strong"}, ["Must be a list of objects."]),
        ([{"router_version": "v13", "routed_to": "strong"}] * 17, ["At most 16 shadow decisions."]),
        (["v13"], ["Item 0 must be an object."]),
        (
            [{"router_version": "v13", "routed_to": "strong", "model": "x", "why": 1}],
            ["Item 0: unknown field(s): model, why."],
        ),
        ([{"routed_to": "strong"}], ["Item 0, router_version: This field is required."]),
        ([{"router_version": "v13"}], ["Item 0, routed_to: This field is required."]),
        (
            [{"router_version": "v13", "routed_to": "strong"}, {"router_version": "v14", "routed_to": "mid"}],
            ["Item 1, routed_to: Unknown tier 'mid'; expected one of: cheap, strong."],
        ),
        (
            [{"router_version": "v13", "routed_to": "strong", "router_score": "high"}],
            ["Item 0, router_score: Must be a number."],
        ),
        (
            [{"router_version": "v" * 65, "routed_to": 1}],
            [
                "Item 0, router_version: Ensure this field has no more than 64 characters.",
                "Item 0, routed_to: Must be a string.",
            ],
        ),
        (
            [{"router_version": "v\x00", "routed_to": "strong"}, "x"],
            ["Item 0, router_version: May not contain NUL characters.", "Item 1 must be an object."],
        ),
    ],
)
def test_it_rejects_bad_shadow_decisions(owner, value, messages):
    assert_rejected(owner, decision(shadow_decisions=value), {"shadow_decisions": messages})


def test_it_names_and_rejects_unknown_fields(owner):
    assert_rejected(
        owner, decision(colour="blue", routedTo="cheap"), {"colour": ["Unknown field."], "routedTo": ["Unknown field."]}
    )


def test_it_collects_every_error_of_an_item(owner):
    body = decision(
        decision_id="x" * 129, occurred_at="2026-11-24", routed_to="medium", prompt_tokens=-1, cost_usd=True, extra=1
    )
    assert_rejected(
        owner,
        body,
        {
            "decision_id": [too_long(128)],
            "occurred_at": ["Must be an RFC 3339 timestamp with date and time, e.g. 2026-11-24T10:15:00Z."],
            "routed_to": [TIERS_ERROR.format("medium")],
            "prompt_tokens": [GE0],
            "cost_usd": [NUMBER],
            "extra": ["Unknown field."],
        },
    )


def test_it_accepts_null_optional_fields(owner):
    optional = ["model", "router_score", "prompt", "messages", "response", "prompt_tokens", "completion_tokens"]
    optional += ["latency_ms", "cost_usd", "attributes", "shadow_decisions"]
    response = post(owner, decision(**dict.fromkeys(optional)))
    assert response.status_code == 200, response.content
    row = Decision.objects.get()
    assert (row.model, row.attributes, row.shadow_decisions, row.cost_usd, row.messages) == ("", {}, [], None, None)


def test_it_accepts_zero_counts_and_bounds(owner):
    body = decision(prompt_tokens=0, completion_tokens=2_147_483_647, latency_ms=0, cost_usd=0, router_score=-3)
    response = post(owner, body)
    assert response.status_code == 200, response.content
    row = Decision.objects.get()
    assert (row.prompt_tokens, row.completion_tokens, row.latency_ms, row.cost_usd, row.router_score) == (
        0,
        2_147_483_647,
        0.0,
        0,
        -3.0,
    )


def test_non_finite_numbers_cannot_be_sent_as_json(owner):
    # JSON has no NaN or Infinity and orjson refuses overflowing literals: the body never parses.
    for raw in ('{"router_score": NaN}', '{"router_score": Infinity}', '{"router_score": 1e400}'):
        response = owner.client().post("/api/v1/decisions", raw, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "parse_error"
    assert Decision.objects.count() == 0


@pytest.mark.parametrize("field", ["router_score", "latency_ms", "cost_usd"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_the_validator_refuses_non_finite_numbers(field, value):
    # Not reachable through JSON, but the validator is also called on items built in Python.
    errors = decision_validate(decision(**{field: value}), frozenset({"cheap", "strong"}))
    assert errors == {field: ["Must be a finite number."]}


def test_the_validator_returns_a_clean_decision_in_utc():
    clean = decision_validate(
        decision(occurred_at="2026-11-24T12:15:00+02:00", attributes={"tenant": "acme"}, router_score=1),
        frozenset({"cheap", "strong"}),
    )
    assert isinstance(clean, CleanDecision)
    assert clean.occurred_at == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert clean.occurred_at.utcoffset() == timedelta(0)
    assert (clean.router_score, clean.attributes_json, clean.shadow_decisions_json) == (1.0, '{"tenant":"acme"}', "[]")


def test_the_validator_refuses_a_non_object_item():
    assert decision_validate(["d-1"], frozenset({"cheap"})) == {
        "non_field_errors": ["Each decision must be a JSON object."]
    }
