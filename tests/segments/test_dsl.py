"""The rule language: parsing, positions and words of errors, rendering, the regex subset."""

from __future__ import annotations

from decimal import Decimal

import pytest

from segments import dsl
from segments.dsl import And, Compare, Exists, In, Not, Or, Path, RuleError, parse, regex_problem, render
from segments.predicate import compile_predicate


def attr(*keys):
    return Path(None, keys)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        (
            'channel == "api" and user_tier == "enterprise"',
            And((Compare(attr("channel"), "==", "api"), Compare(attr("user_tier"), "==", "enterprise"))),
        ),
        ("prompt_tokens >= 2000", Compare(Path("prompt_tokens"), ">=", Decimal(2000))),
        ('client startswith "python-requests"', Compare(attr("client"), "startswith", "python-requests")),
        ("attributes.x.y == 3", Compare(attr("x", "y"), "==", Decimal(3))),
        ('tenant in ["acme", "hooli"]', In(attr("tenant"), ("acme", "hooli"))),
        ("not (locale exists)", Not(Exists(attr("locale")))),
        ('prompt matches "^BULK-"', Compare(Path("prompt"), "matches", "^BULK-")),
        ('router_version != "v12"', Compare(Path("router_version"), "!=", "v12")),
        (
            "flag == true or n not in [1, 2.5]",
            Or((Compare(attr("flag"), "==", True), In(attr("n"), (Decimal(1), Decimal("2.5")), True))),
        ),
        ('attributes."user-agent" contains "bot"', Compare(attr("user-agent"), "contains", "bot")),
        ("attributes.prompt_tokens > 1", Compare(attr("prompt_tokens"), ">", Decimal(1))),
        ("a.b.c exists", Exists(attr("a", "b", "c"))),
        ('not not x == "\\u00e9\\n"', Not(Not(Compare(attr("x"), "==", "é\n")))),
        ("x in []", In(attr("x"), ())),
    ],
)
def test_it_parses(text, tree):
    assert parse(text) == tree
    assert parse(render(tree)) == tree


def test_and_binds_tighter_than_or():
    assert parse("a == 1 or b == 2 and c == 3") == Or(
        (
            Compare(attr("a"), "==", Decimal(1)),
            And((Compare(attr("b"), "==", Decimal(2)), Compare(attr("c"), "==", Decimal(3)))),
        )
    )


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (
            "channel ==",
            1,
            11,
            "expected a value (a string, a number, true or false) after '==', found the end of the rule",
        ),
        ("channel == and", 1, 12, "expected a value (a string, a number, true or false) after '==', found 'and'"),
        (
            'channel "api"',
            1,
            9,
            "expected an operator (==, !=, <, <=, >, >=, in, not in, startswith, endswith, contains, matches, exists) or '.' after 'channel', found '\"api\"'",
        ),
        ("(a == 1", 1, 8, "expected ')', 'and' or 'or' after '1', found the end of the rule"),
        ("a == 1 AND b == 2", 1, 8, "expected 'and', 'or' or the end of the rule after '1', found 'AND'"),
        ('a == 1\n  and == "x"', 2, 7, "expected '(', 'not' or a field or attribute name after 'and', found '=='"),
        ("x in [1 2]", 1, 9, "expected ',' or ']' after '1', found '2'"),
        ("== 3", 1, 1, "expected '(', 'not' or a field or attribute name at the start of the rule, found '=='"),
        ("a == @", 1, 6, "unexpected character '@' after '=='; expected a value (a string, a number, true or false)"),
        ('a == "abc', 1, 6, 'unterminated string or bad escape (strings are "…" with JSON escapes)'),
        ('a == "\\q"', 1, 6, 'unterminated string or bad escape (strings are "…" with JSON escapes)'),
        ("", 1, 1, 'the rule is empty; expected a comparison such as channel == "api"'),
        (
            'prompt_tokens startswith "1"',
            1,
            15,
            "'startswith' needs a text field or attribute; 'prompt_tokens' is a number",
        ),
        ("routed_to == 3", 1, 14, "'routed_to' is text; compare it with a string in double quotes"),
        ('latency_ms in [1, "x"]', 1, 19, "'latency_ms' is a number; compare it with a number"),
        ("attributes == 1", 1, 1, "expected '.' and a key after 'attributes', e.g. attributes.tenant"),
        (
            "prompt_tokens.x == 1",
            1,
            1,
            "'prompt_tokens' is a decision field and has no keys; use attributes.prompt_tokens… for an attribute",
        ),
        ("a < true", 1, 5, "'<' compares numbers or strings, not true/false"),
        ("x == 1e400", 1, 6, "number out of range (magnitude between 1e-300 and 1e300)"),
        ('x == "\\u0000"', 1, 6, "strings may not contain NUL (\\u0000)"),
        ('x matches "(a"', 1, 11, "unsupported regular expression: unclosed '('"),
        (
            'x matches "\\\\d+"',
            1,
            11,
            "unsupported regular expression: '\\d' at offset 0 (escape only punctuation, or use \\n, \\t)",
        ),
    ],
)
def test_it_reports_position_and_expectation(text, line, column, message):
    with pytest.raises(RuleError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.column, caught.value.message) == (line, column, message)
    assert str(caught.value) == f"line {line}, column {column}: {message}"


def test_it_caps_rule_length_and_depth():
    with pytest.raises(RuleError, match="at most 4000 characters"):
        parse("a == 1 and " * 400 + "a == 1")
    with pytest.raises(RuleError, match="nests deeper than 40"):
        parse("not " * 41 + "a exists")


@pytest.mark.parametrize(
    "pattern",
    ["^BULK-", "acme$", "a.c", "[a-c]+", "^(api|web)$", "\\.", "x{2,5}", "[^\\]]", "(ab|c)*d", "é", "a\\-b", "\\n"],
)
def test_it_accepts_the_safe_regex_subset(pattern):
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("a" * 201, "longer than 200 characters"),
        ("\\d", "'\\d' at offset 0 (escape only punctuation, or use \\n, \\t)"),
        ("\\b", "'\\b' at offset 0 (escape only punctuation, or use \\n, \\t)"),
        ("(?i)a", "'(?' at offset 0 (flags and special groups are not supported)"),
        ("a**", "nothing to repeat before '*' at offset 2 (one quantifier per atom)"),
        ("a*?", "nothing to repeat before '?' at offset 2 (one quantifier per atom)"),
        ("*a", "nothing to repeat before '*' at offset 0 (one quantifier per atom)"),
        ("a{1000}", "repeat counts above 100 at offset 1"),
        ("a{3,2}", "bound {3,2} out of order at offset 1"),
        ("a{", "'{' at offset 1 must start a bound {m}, {m,} or {m,n} (escape a literal brace: \\{)"),
        ("[z-a]", "range z-a out of order at offset 0"),
        ("[[:alpha:]]", "'[' inside a class at offset 1 (escape it: \\[)"),
        ("[]", "empty class at offset 0"),
        ("a|", "empty alternative at the end"),
        ("()", "empty group or alternative before offset 1"),
        ("a)", "unbalanced ')' at offset 1"),
        ("(\\1)", "'\\1' at offset 1 (escape only punctuation, or use \\n, \\t)"),
    ],
)
def test_it_refuses_regexes_outside_the_subset(pattern, problem):
    assert regex_problem(pattern) == problem


def test_matches_is_linear_time_on_a_backtracking_pattern():
    predicate = compile_predicate('prompt matches "(a*)*b"')
    assert predicate({"prompt": "a" * 50_000, "attributes": {}}) is False


@pytest.mark.parametrize(
    ("rule", "decision", "expected"),
    [
        ('tenant == "acme"', {"tenant": "acme"}, True),
        ("tenant == 3", {"tenant": "3"}, False),
        ("n == 3", {"n": 3.0}, True),
        ("n > 3", {"n": "4"}, False),
        ('n < "4"', {"n": 3}, False),
        ("n != 3", {}, True),
        ("n > 3", {}, False),
        ("not (n > 3)", {}, True),
        ("n not in [1]", {"n": None}, True),
        ("n exists", {"n": None}, False),
        ("n exists", {"n": 0}, True),
        ("flag == true", {"flag": 1}, False),
        ("n in [1]", {"n": True}, False),
        ("n == 0.1", {"n": 0.1}, True),
        ("n > 0.1", {"n": 0.10000000000000002}, True),
        ("meta.a == 1", {"meta": {"a": 1}}, True),
        ("meta.a == 1", {"meta": [1]}, False),
        ('tenant startswith "ac"', {"tenant": ["acme"]}, False),
        ('tenant < "b"', {"tenant": "acme"}, True),
        ('tenant < "b"', {"tenant": "Zed"}, True),
        ('tenant < "b"', {"tenant": "é"}, False),
    ],
)
def test_semantics(rule, decision, expected):
    assert compile_predicate(rule)({"attributes": decision}) is expected


def test_fields_read_from_dicts_and_objects():
    class Version:
        name = "v12"

    class Row:
        router_version = Version()
        prompt_tokens = 2500
        cost_usd = 0.123456785
        attributes = {"channel": "api"}

    predicate = compile_predicate(
        'router_version == "v12" and prompt_tokens >= 2000 and cost_usd == 0.12345679 and channel == "api"'
    )
    assert predicate(Row()) is True
    assert (
        predicate(
            {"router_version": "v12", "prompt_tokens": 2500, "cost_usd": 0.123456785, "attributes": {"channel": "api"}}
        )
        is True
    )
    assert predicate({"router_version": "v12", "prompt_tokens": 1999, "attributes": {"channel": "api"}}) is False


def test_render_quotes_keys_that_are_not_names():
    assert dsl.render_path(attr("user-agent")) == 'attributes."user-agent"'
    assert dsl.render_path(attr("in")) == 'attributes."in"'
    assert dsl.render_path(attr("model")) == "attributes.model"
    assert dsl.render_path(attr("tenant")) == "tenant"
