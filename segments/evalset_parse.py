"""Reading an uploaded offline eval set (JSON Lines or CSV). Pure: no Django.

Each item is one offline example the router was evaluated on:

- `routed_to` (required; `choice` is accepted as another name): the router's
  offline choice, a tier of the application (`cheap`, `strong`, …);
- `correct` (required): whether that choice was right — true/false, 1/0
  (JSON booleans or numbers, or those words as text; case-insensitive);
- `prompt` (optional): the prompt text;
- attributes: the same attributes traffic carries (`channel`, `tenant`, …).

JSON Lines: one object per line, `{"prompt": "…", "attributes": {"channel": "api"},
"routed_to": "cheap", "correct": true}`; any other key is an error (named).
Blank lines are skipped.

CSV: a header row, then one item per row. Columns `prompt`, `routed_to`
(or `choice`) and `correct` are reserved. If any column is named `attr.<name>`
(or `attributes.<name>`), exactly those columns are attributes and any other
column is an error; otherwise every non-reserved column is an attribute. Cells
are text; an empty cell means the attribute is absent. `attr.a.b` becomes the
nested attribute {"a": {"b": …}}.

Bad rows get line-numbered errors ("line 17: correct: expected true/false, got
'maybe'") and are left out; good rows are kept. Problems with the whole file
(empty, not UTF-8, no header, a missing column, too large) raise EvalFileError.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

FORMATS = ("jsonl", "csv")
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
MAX_ERRORS_KEPT = 200
MAX_PROMPT_CHARS = 100_000
MAX_TIER_CHARS = 32
RESERVED = ("prompt", "routed_to", "correct")
ALIASES = {"choice": "routed_to"}
JSONL_KEYS = ("prompt", "attributes", "routed_to", "choice", "correct", "id")
ATTRIBUTE_PREFIXES = ("attr.", "attributes.")
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class EvalFileError(ValueError):
    """The file as a whole cannot be read. `code`: empty, encoding, header, missing_column, too_large, format."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EvalRow:
    line: int
    prompt: str | None
    attributes: dict
    routed_to: str
    correct: bool


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}" if self.field else f"line {self.line}: {self.message}"


@dataclass
class ParseReport:
    rows: list[EvalRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_ERRORS_KEPT
    rejected: int = 0

    def reject(self, error: RowError) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error)


def _show(value) -> str:
    """A value as the user wrote it: text quoted, JSON values as JSON, cut at 40 characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text[:40] + "…" if len(text) > 40 else text
    return repr(text) if isinstance(value, str) else text


def _correct(value) -> bool | str:
    """The boolean, or an error message."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if value is None or value == "":
        return "required: expected true/false"
    return f"expected true/false, got {_show(value)}"


def _tier(value, tiers: frozenset[str] | None) -> str | tuple[str]:
    """The tier, or a 1-tuple holding an error message."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ("required: the router's offline choice, e.g. cheap or strong",)
    if not isinstance(value, str):
        return (f"expected a tier name, got {_show(value)}",)
    tier = value.strip()
    if len(tier) > MAX_TIER_CHARS:
        return (f"at most {MAX_TIER_CHARS} characters",)
    if tiers is not None and tier not in tiers:
        return (f"expected one of {', '.join(sorted(tiers))}, got {_show(tier)}",)
    return tier


def _item(line: int, prompt, attributes, routed_to, correct, tiers, report: ParseReport) -> None:
    problems: list[RowError] = []
    if prompt is not None and not isinstance(prompt, str):
        problems.append(RowError(line, "prompt", f"expected text, got {_show(prompt)}"))
    elif isinstance(prompt, str) and len(prompt) > MAX_PROMPT_CHARS:
        problems.append(RowError(line, "prompt", f"at most {MAX_PROMPT_CHARS} characters"))
    if not isinstance(attributes, dict):
        problems.append(RowError(line, "attributes", f"expected an object, got {_show(attributes)}"))
    tier = _tier(routed_to, tiers)
    if isinstance(tier, tuple):
        problems.append(RowError(line, "routed_to", tier[0]))
    flag = _correct(correct)
    if isinstance(flag, str):
        problems.append(RowError(line, "correct", flag))
    if problems:
        # One rejected row, however many problems: report them all, count the row once.
        report.reject(problems[0])
        for extra in problems[1:]:
            if len(report.errors) < MAX_ERRORS_KEPT:
                report.errors.append(extra)
        return
    report.rows.append(EvalRow(line, prompt or None, attributes, tier, flag))


def _decode(data: bytes) -> str:
    if not data or not data.strip():
        raise EvalFileError("empty", "The file is empty.")
    if len(data) > MAX_BYTES:
        raise EvalFileError("too_large", f"The file has {len(data)} bytes; the limit is {MAX_BYTES}.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvalFileError("encoding", f"The file is not UTF-8 (byte {exc.start}).") from None


def _too_many(report: ParseReport) -> None:
    if len(report.rows) + report.rejected >= MAX_ROWS:
        raise EvalFileError("too_large", f"More than {MAX_ROWS} rows; split the eval set.")


def parse_jsonl(data: bytes, *, tiers: frozenset[str] | None = None) -> ParseReport:
    text = _decode(data)
    report = ParseReport()
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        _too_many(report)
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            report.reject(RowError(line_no, "", f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            report.reject(RowError(line_no, "", f"expected a JSON object, got {type(obj).__name__}"))
            continue
        unknown = sorted(set(obj) - set(JSONL_KEYS))
        if unknown:
            report.reject(RowError(line_no, unknown[0], "unknown field (known: " + ", ".join(JSONL_KEYS) + ")"))
            continue
        if "routed_to" in obj and "choice" in obj:
            report.reject(RowError(line_no, "choice", "give routed_to or choice, not both"))
            continue
        routed_to = obj.get("routed_to", obj.get("choice"))
        _item(line_no, obj.get("prompt"), obj.get("attributes", {}), routed_to, obj.get("correct"), tiers, report)
    return report


def _attribute_columns(header: list[str]) -> dict[int, tuple[str, ...]]:
    prefixed = any(name.startswith(ATTRIBUTE_PREFIXES) for name in header)
    columns: dict[int, tuple[str, ...]] = {}
    for i, name in enumerate(header):
        if ALIASES.get(name, name) in RESERVED:
            continue
        if prefixed:
            prefix = next((p for p in ATTRIBUTE_PREFIXES if name.startswith(p)), None)
            if prefix is None:
                raise EvalFileError(
                    "header",
                    f"line 1: column {name!r} is neither reserved (prompt, routed_to, correct) nor an attribute "
                    "(attr.<name>); with attr. columns every attribute needs the prefix.",
                )
            keys = tuple(name[len(prefix) :].split("."))
        else:
            keys = (name,)
        if not all(keys):
            raise EvalFileError("header", f"line 1: column {name!r} does not name an attribute.")
        columns[i] = keys
    paths = sorted(columns.values())
    for shorter, longer in zip(paths, paths[1:], strict=False):
        if longer[: len(shorter)] == shorter:
            raise EvalFileError(
                "header",
                f"line 1: attribute {'.'.join(shorter)!r} cannot be both a value and an object ({'.'.join(longer)!r}).",
            )
    return columns


def parse_csv(data: bytes, *, tiers: frozenset[str] | None = None) -> ParseReport:
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise EvalFileError("empty", "The file is empty.") from None
    except csv.Error as exc:
        raise EvalFileError("header", f"line 1: {exc}") from None
    names = [ALIASES.get(name, name) for name in header]
    duplicates = sorted({n for n in names if n and names.count(n) > 1})
    if duplicates:
        raise EvalFileError("header", f"line 1: column {duplicates[0]!r} appears more than once.")
    for required in ("routed_to", "correct"):
        if required not in names:
            raise EvalFileError(
                "missing_column", f"line 1: missing column {required!r} (the header has: {', '.join(header)})."
            )
    attribute_columns = _attribute_columns(header)
    index = {name: i for i, name in enumerate(names)}
    report = ParseReport()
    end = 1
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.reject(RowError(reader.line_num, "", f"malformed CSV: {exc}"))
            end = reader.line_num
            continue
        end = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        _too_many(report)
        if len(cells) != len(header):
            report.reject(RowError(start, "", f"expected {len(header)} columns, got {len(cells)}"))
            continue
        attributes: dict = {}
        for i, keys in attribute_columns.items():
            if cells[i] == "":
                continue
            target = attributes
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = cells[i]
        prompt = cells[index["prompt"]] if "prompt" in index else None
        _item(start, prompt or None, attributes, cells[index["routed_to"]], cells[index["correct"]], tiers, report)
    return report


def parse_eval_file(data: bytes, fmt: str, *, tiers: frozenset[str] | None = None) -> ParseReport:
    """Items and line-numbered errors of an uploaded eval set (see module doc)."""
    if fmt == "jsonl":
        return parse_jsonl(data, tiers=tiers)
    if fmt == "csv":
        return parse_csv(data, tiers=tiers)
    raise EvalFileError("format", f"Unknown format {fmt!r}: use jsonl or csv.")


def guess_format(filename: str = "", content_type: str = "") -> str | None:
    name = (filename or "").lower()
    kind = (content_type or "").split(";")[0].strip().lower()
    if name.endswith((".jsonl", ".ndjson")) or kind in (
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    ):
        return "jsonl"
    if name.endswith(".csv") or kind in ("text/csv", "application/csv"):
        return "csv"
    return None
