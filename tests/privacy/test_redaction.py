"""The pure redaction rules: what they catch, what they leave alone, and their cost."""

from __future__ import annotations

import time

import pytest

from router_ops.privacy.redaction import (
    DEFAULT_RULES,
    RedactionRules,
    custom_pattern_compile,
    custom_patterns_validate,
    luhn_valid,
    redact,
    redact_json,
    rules_build,
)


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        ("mail john.doe+x@example.co.uk now", "mail [REDACTED:email] now", {"email": 1}),
        ("call +1 415-555-2671 today", "call [REDACTED:phone] today", {"phone": 1}),
        ("call (415) 555-2671 or 415.555.2671", "call [REDACTED:phone] or [REDACTED:phone]", {"phone": 2}),
        ("ring 020 7946 0958", "ring [REDACTED:phone]", {"phone": 1}),
        ("e164 +14155552671.", "e164 [REDACTED:phone].", {"phone": 1}),
        ("pay 4111 1111 1111 1111 ok", "pay [REDACTED:card] ok", {"card": 1}),
        ("pay 4111-1111-1111-1111", "pay [REDACTED:card]", {"card": 1}),
        ("amex 378282246310005", "amex [REDACTED:card]", {"card": 1}),
        ("key sk-proj-abcdefghijklmnop1234", "key [REDACTED:api_key]", {"api_key": 1}),
        ("ro_0a1b2c3d_abcdefghijklmnopqrstuvwxyz0123456789ABCD", "[REDACTED:api_key]", {"api_key": 1}),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [REDACTED:api_key]", {"api_key": 1}),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED:api_key]", {"api_key": 1}),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", "Authorization: [REDACTED:api_key]", {"api_key": 1}),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt [REDACTED:api_key]",
            {"api_key": 1},
        ),
        (
            "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 ok",
            "sha [REDACTED:secret] ok",
            {"secret": 1},
        ),
        ("b64 QWxhZGRpbjpvcGVuIHNlc2FtZQ0123456789ABCDEFabcdef== end", "b64 [REDACTED:secret] end", {"secret": 1}),
    ],
)
def test_it_redacts(text, expected, counts):
    assert redact(text) == (expected, counts)


@pytest.mark.parametrize(
    "text",
    [
        "date 2026-11-24T10:15:00Z and 2026-11-24",
        "ip 192.168.1.100, price 1234.56, year 2025, 1,000,000 users",
        "uuid 3f0c6d0a-1b2c-4d5e-8f90-123456789abc",
        "order 4111 1111 1111 1112",  # fails the Luhn check
        "order number 1234567890123",
        "a_long_snake_case_identifier_without_any_digits_or_capitals_at_all",
        "ask: who wrote 'The Old Man and the Sea'? sk- is a prefix",
        "",
    ],
)
def test_it_leaves_ordinary_text_alone(text):
    assert redact(text) == (text, {})


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_it_applies_only_the_enabled_builtin_rules():
    rules = RedactionRules(builtin=frozenset({"email"}))
    assert redact("a@b.io +1 415-555-2671", rules) == ("[REDACTED:email] +1 415-555-2671", {"email": 1})


def test_it_applies_custom_patterns():
    rules = rules_build(builtin=[], custom=[{"name": "ticket", "pattern": r"TCK-[0-9]{6}"}])
    assert redact("see TCK-123456 and TCK-654321", rules) == (
        "see [REDACTED:ticket] and [REDACTED:ticket]",
        {"ticket": 2},
    )


def test_it_redacts_strings_inside_json_and_keeps_keys():
    counts: dict[str, int] = {}
    value = {"user_email": "a@b.io", "n": 3, "tags": ["x", "call +1 415-555-2671"], "nested": {"k": None}}
    assert redact_json(value, DEFAULT_RULES, counts) == {
        "user_email": "[REDACTED:email]",
        "n": 3,
        "tags": ["x", "call [REDACTED:phone]"],
        "nested": {"k": None},
    }
    assert counts == {"email": 1, "phone": 1}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(a)\1", "Not a valid pattern"),
        (r"(?<=a)b", "Not a valid pattern"),
        ("x" * 501, "at most 500 characters"),
        ("a*", "must not match the empty string"),
        ("", "non-empty"),
    ],
)
def test_it_refuses_bad_custom_patterns(pattern, message):
    with pytest.raises(ValueError, match=message):
        custom_pattern_compile(pattern)


def test_custom_patterns_validate_names_each_problem():
    errors = custom_patterns_validate(
        [
            {"name": "ticket", "pattern": "TCK-[0-9]+"},
            {"name": "ticket", "pattern": "X[0-9]+"},
            {"name": "Bad Name", "pattern": "x"},
            {"name": "email", "pattern": "y+"},
            {"name": "ok", "pattern": "(?<=a)"},
            {"pattern": "x"},
        ]
    )
    assert sorted(errors) == ["1", "2", "3", "4", "5"]
    assert "already used" in errors["1"] and "already used" in errors["3"]
    assert custom_patterns_validate("nope") == {"patterns": "Must be a list of {name, pattern} objects."}
    assert custom_patterns_validate([{"name": "x", "pattern": "x"}] * 21) == {"patterns": "At most 20 custom patterns."}


def test_a_pathological_custom_pattern_runs_in_linear_time():
    # (a+)+$ backtracks exponentially in Python's re; RE2 does not.
    rules = rules_build(builtin=[], custom=[{"name": "evil", "pattern": "(a+)+$"}])
    start = time.perf_counter()
    redact("a" * 50_000 + "!", rules)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("text", ["a" * 200_000, "1" * 200_000, "+1 " * 70_000, "x@" * 100_000, "A1b-" * 50_000])
def test_builtin_rules_stay_fast_on_hostile_input(text):
    start = time.perf_counter()
    redact(text)
    assert time.perf_counter() - start < 0.5


def test_plain_text_costs_microseconds():
    text = "Summarise the following support ticket for the customer in two sentences, please."
    start = time.perf_counter()
    for _ in range(2000):
        redact(text)
    assert (time.perf_counter() - start) / 2000 < 50e-6


def test_decimal_digits_are_not_taken_for_a_card_number():
    # Found replaying GSM8K: the fraction digits of 20/3 happen to pass the Luhn check.
    text = "10 * (2/3) = <<10*(2/3)=6.666666666666667>>6.67 liters; card 4111 1111 1111 1111."
    redacted, counts = redact(text, DEFAULT_RULES)
    assert "6.666666666666667" in redacted
    assert "4111" not in redacted and counts == {"card": 1}
