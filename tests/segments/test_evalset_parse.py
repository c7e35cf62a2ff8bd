"""Reading uploaded eval sets: line-numbered errors, good rows kept (segments/evalset_parse.py)."""

from __future__ import annotations

import pytest

from segments import evalset_parse
from segments.evalset_parse import EvalFileError, parse_csv, parse_eval_file, parse_jsonl

TIERS = frozenset({"cheap", "strong"})


def _jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def test_jsonl_keeps_good_rows_and_names_each_bad_line():
    data = _jsonl(
        '{"prompt": "hi", "attributes": {"channel": "api"}, "routed_to": "cheap", "correct": true}',
        '{"attributes": {"channel": "ui"}, "choice": "strong", "correct": 0}',
        "",
        '{"attributes": {"channel": "ui"}, "routed_to": "cheap", "correct": "maybe"}',
        '{"attributes": {"channel": "ui"}, "routed_to": "cheap", "correct": true',
        '["not", "an", "object"]',
        '{"attributes": "api", "routed_to": "cheap", "correct": true}',
        '{"attributes": {}, "routed_to": "medium", "correct": true}',
        '{"attributes": {}, "correct": true}',
        '{"attributes": {}, "routed_to": "cheap", "correct": true, "label": 1}',
        '{"prompt": 5, "routed_to": "cheap", "correct": "1"}',
    )
    report = parse_jsonl(data, tiers=TIERS)
    assert [(r.line, r.routed_to, r.correct, r.attributes, r.prompt) for r in report.rows] == [
        (1, "cheap", True, {"channel": "api"}, "hi"),
        (2, "strong", False, {"channel": "ui"}, None),
    ]
    assert report.rejected == 8
    assert [str(e) for e in report.errors] == [
        "line 4: correct: expected true/false, got 'maybe'",
        "line 5: not valid JSON: Expecting ',' delimiter at column 72",
        "line 6: expected a JSON object, got list",
        "line 7: attributes: expected an object, got 'api'",
        "line 8: routed_to: expected one of cheap, strong, got 'medium'",
        "line 9: routed_to: required: the router's offline choice, e.g. cheap or strong",
        "line 10: label: unknown field (known: prompt, attributes, routed_to, choice, correct, id)",
        "line 11: prompt: expected text, got 5",
    ]


def test_csv_with_attr_columns_keeps_good_rows_and_numbers_lines_of_multiline_cells():
    data = (
        b"prompt,routed_to,correct,attr.channel,attr.client.name\n"
        b"hello,cheap,true,api,python\n"
        b'"two\nlines",strong,1,ui,\n'
        b"x,cheap,maybe,api,curl\n"
        b"y,cheap,false,api\n"
        b"z,strong,FALSE,ui,web\n"
    )
    report = parse_csv(data, tiers=TIERS)
    assert [(r.line, r.prompt, r.routed_to, r.correct, r.attributes) for r in report.rows] == [
        (2, "hello", "cheap", True, {"channel": "api", "client": {"name": "python"}}),
        (3, "two\nlines", "strong", True, {"channel": "ui"}),
        (7, "z", "strong", False, {"channel": "ui", "client": {"name": "web"}}),
    ]
    assert [str(e) for e in report.errors] == [
        "line 5: correct: expected true/false, got 'maybe'",
        "line 6: expected 5 columns, got 4",
    ]


def test_csv_without_attr_columns_takes_every_other_column_as_an_attribute():
    report = parse_csv(b"channel,tenant,choice,correct\napi,acme,cheap,0\n", tiers=TIERS)
    assert [(r.attributes, r.routed_to, r.correct, r.prompt) for r in report.rows] == [
        ({"channel": "api", "tenant": "acme"}, "cheap", False, None)
    ]


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (b"", "empty", "The file is empty."),
        (b"  \n\n", "empty", "The file is empty."),
        (
            b"prompt,correct\nhi,true\n",
            "missing_column",
            "line 1: missing column 'routed_to' (the header has: prompt, correct).",
        ),
        (b"routed_to,correct,attr.channel,notes\n", "header", "line 1: column 'notes' is neither reserved"),
        (b"routed_to,correct,choice\n", "header", "line 1: column 'routed_to' appears more than once."),
        (
            b"routed_to,correct,attr.a,attr.a.b\n",
            "header",
            "line 1: attribute 'a' cannot be both a value and an object",
        ),
        (b"\xff\xfe routed_to", "encoding", "The file is not UTF-8 (byte 0)."),
    ],
)
def test_csv_file_level_problems_are_named(data, code, message):
    with pytest.raises(EvalFileError) as caught:
        parse_csv(data, tiers=TIERS)
    assert caught.value.code == code
    assert str(caught.value).startswith(message)


def test_limits_on_bytes_and_rows(monkeypatch):
    monkeypatch.setattr(evalset_parse, "MAX_BYTES", 100)
    with pytest.raises(EvalFileError, match="limit is 100") as caught:
        parse_jsonl(b"{}" + b" " * 200)
    assert caught.value.code == "too_large"
    monkeypatch.setattr(evalset_parse, "MAX_BYTES", 10_000)
    monkeypatch.setattr(evalset_parse, "MAX_ROWS", 3)
    with pytest.raises(EvalFileError, match="More than 3 rows"):
        parse_jsonl(_jsonl(*['{"routed_to": "cheap", "correct": true}'] * 4))


def test_only_the_first_errors_are_kept_but_all_are_counted(monkeypatch):
    monkeypatch.setattr(evalset_parse, "MAX_ERRORS_KEPT", 2)
    report = parse_jsonl(_jsonl(*["nope"] * 5))
    assert report.rejected == 5 and len(report.errors) == 2


def test_unknown_format():
    with pytest.raises(EvalFileError, match="Unknown format 'xml'"):
        parse_eval_file(b"x", "xml")
