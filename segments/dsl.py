"""The segment rule language: grammar, syntax tree, errors and rendering. Pure: no Django.

    channel == "api" and user_tier == "enterprise"
    prompt_tokens >= 2000
    client startswith "python-requests"
    attributes.x.y == 3
    tenant in ["acme", "hooli"]
    not (locale exists)
    prompt matches "^BULK-"

Names. A bare name that is a decision field (FIELDS) means that field; any other
name means the attribute of that name; `attributes.a.b` (or `a.b`) reaches nested
keys, and a key that is not a plain identifier is quoted: `attributes."user-agent"`.

Semantics (identical in both compilations, segments/predicate.py and segments/rule_q.py):

1. A value is a decision field, or the JSON value at an attribute path. A missing
   key, a JSON null, a path through a non-object and a NULL field are all *absent*.
2. `==`, `<`, `<=`, `>`, `>=`, `in`, `startswith`, `endswith`, `contains`, `matches`
   are true only when the value is present and has the literal's type: strings
   with strings, numbers with numbers, booleans with booleans (`==`/`in` only).
   Anything else — absent, another type, a list or an object — is false, never
   an error. So `tenant > 3` is false for `{"tenant": "acme"}`.
3. `!=` is exactly `not (==)` and `not in` exactly `not (in)`: both are true for
   an absent value or another type. `not`, `and`, `or` are two-valued logic.
4. `exists` is true when the value is present (not absent as defined in 1).
5. Numbers compare by exact decimal value (the JSON text PostgreSQL stores, so
   3 == 3.0 and 0.1 is the decimal 0.1); floats in Python are read through their
   shortest repr, which is what ingestion writes into jsonb.
6. Strings compare by Unicode code point (SQL uses COLLATE "C"), case-sensitively.
7. `matches` takes a regular expression from a safe subset that PostgreSQL and
   RE2 read identically (see `regex_problem`); it is searched anywhere in the
   value (anchor with ^ and $); `.` matches any character including newline;
   Python evaluates it with RE2, a linear-time engine, so no pattern can
   backtrack catastrophically.
8. On decision fields the types are known, so a mismatch is a RuleError at
   parse time (`prompt_tokens startswith "1"`), not a silent false.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

MAX_RULE_LENGTH = 4000
MAX_REGEX_LENGTH = 200
MAX_LIST_ITEMS = 1000
MAX_DEPTH = 40
MAX_NUMBER = Decimal("1e300")

TEXT, INT, FLOAT, DECIMAL = "text", "int", "float", "decimal"
# Decision fields a rule may name, with their type (router_version is the version's name).
FIELDS: dict[str, str] = {
    "routed_to": TEXT,
    "router_version": TEXT,
    "model": TEXT,
    "unit_id": TEXT,
    "decision_id": TEXT,
    "prompt": TEXT,
    "response": TEXT,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "latency_ms": FLOAT,
    "router_score": FLOAT,
    "cost_usd": DECIMAL,
}
NUMERIC_TYPES = (INT, FLOAT, DECIMAL)
KEYWORDS = frozenset(
    {"and", "or", "not", "in", "exists", "startswith", "endswith", "contains", "matches", "true", "false"}
)
ORDERING = ("<", "<=", ">", ">=")
STRING_OPS = ("startswith", "endswith", "contains", "matches")
OPERATORS = ("==", "!=", *ORDERING, "in", "not in", *STRING_OPS, "exists")

Literal = str | bool | Decimal


# --- syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Path:
    """A decision field (`field` set, no keys) or an attribute path (`field` None)."""

    field: str | None
    keys: tuple[str, ...] = ()

    @property
    def type(self) -> str | None:
        return FIELDS[self.field] if self.field else None


@dataclass(frozen=True, slots=True)
class Compare:
    path: Path
    op: str  # == != < <= > >= startswith endswith contains matches
    value: Literal


@dataclass(frozen=True, slots=True)
class In:
    path: Path
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Exists:
    path: Path


@dataclass(frozen=True, slots=True)
class Not:
    expr: Node


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = Compare | In | Exists | Not | And | Or


class RuleError(ValueError):
    """A rule that does not parse or type-check, with a 1-based position."""

    def __init__(self, message: str, line: int, column: int, expected: str | None = None):
        self.message = message
        self.line = line
        self.column = column
        self.expected = expected
        super().__init__(f"line {line}, column {column}: {message}")

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "message": self.message, "expected": self.expected}


# --- grammar -------------------------------------------------------------------------------

GRAMMAR = r"""
start: expr
?expr: or_expr
?or_expr: and_expr ("or" and_expr)*
?and_expr: not_expr ("and" not_expr)*
?not_expr: "not" not_expr   -> negation
         | "(" expr ")"
         | comparison
comparison: path op value      -> compare
          | path str_op STRING -> compare
          | path "in" list     -> in_list
          | path "not" "in" list -> not_in_list
          | path "exists"      -> exists
path: NAME ("." key)*
?key: NAME | STRING
?value: STRING | NUMBER | TRUE | FALSE
list: "[" [value ("," value)*] "]"
!op: "==" | "!=" | "<=" | ">=" | "<" | ">"
!str_op: "startswith" | "endswith" | "contains" | "matches"
TRUE: "true"
FALSE: "false"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\\x00-\x1f]|\\["\\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/
NUMBER: /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/
%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

# Human words for the parser's terminals, so errors say "a value" and not "NUMBER".
_TERMINAL_WORDS = {
    "NAME": "a field or attribute name",
    "STRING": 'a string in double quotes ("…")',
    "NUMBER": "a number",
    "$END": "the end of the rule",
}
for _terminal in _PARSER.terminals:
    if _terminal.name not in _TERMINAL_WORDS and _terminal.pattern.type == "str":
        _TERMINAL_WORDS[_terminal.name] = f"'{_terminal.pattern.value}'"
_WORD_TERMINAL = {word.strip("'"): name for name, word in _TERMINAL_WORDS.items()}
_OPERATOR_TERMINALS = {
    _WORD_TERMINAL[op] for op in ("==", "!=", "<", "<=", ">", ">=", "in", "not", "exists", *STRING_OPS)
}
_VALUE_TERMINALS = {"STRING", "NUMBER", "TRUE", "FALSE"}


def _describe_expected(expected: set[str]) -> str:
    parts = []
    rest = set(expected)
    if _VALUE_TERMINALS <= rest:
        parts.append("a value (a string, a number, true or false)")
        rest -= _VALUE_TERMINALS
    if len(rest & _OPERATOR_TERMINALS) >= 5:
        parts.append("an operator (==, !=, <, <=, >, >=, in, not in, startswith, endswith, contains, matches, exists)")
        rest -= _OPERATOR_TERMINALS
    parts.extend(sorted(_TERMINAL_WORDS.get(name, name) for name in rest))
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _found(token: Token) -> str:
    if token.type == "$END":
        return "the end of the rule"
    return f"'{token.value}'"


def _syntax_error(text: str, exc: UnexpectedInput, previous: Token | None, parser=None) -> RuleError:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char == '"':
            message = 'unterminated string or bad escape (strings are "…" with JSON escapes)'
            expected = "a closing '\"'"
        else:
            expected = _describe_expected(set(parser.accepts()) if parser is not None else set(exc.allowed or ()))
            message = f"unexpected character {char!r}; expected {expected}"
            if previous is not None:
                message = f"unexpected character {char!r} after '{previous.value}'; expected {expected}"
        return RuleError(message, exc.line, exc.column, expected)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    accepted = set(exc.expected)
    if parser is not None:
        # LALR's default reductions widen `expected`; accepts() tries each terminal
        # against the state after the last good token.
        accepted = set(parser.accepts()) or accepted
    expected = _describe_expected(accepted)
    where = f" after '{previous.value}'" if previous is not None else " at the start of the rule"
    message = f"expected {expected}{where}, found {_found(token)}"
    if token.type == "$END":
        # Lark puts the end at the last token; the error is just past it.
        if previous is not None:
            return RuleError(message, previous.end_line, previous.end_column, expected)
        return RuleError(message, 1, 1, expected)
    return RuleError(message, token.line, token.column, expected)


# --- tree → syntax tree, with the checks a grammar cannot express -------------------------


def _err(message: str, meta_or_token, expected: str | None = None) -> RuleError:
    return RuleError(message, meta_or_token.line, meta_or_token.column, expected)


def _string_literal(token: Token) -> str:
    value = json.loads(token.value)
    if "\x00" in value:
        raise _err("strings may not contain NUL (\\u0000)", token)
    if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        raise _err("strings may not contain unpaired surrogates", token)
    return value


def _number_literal(token: Token) -> Decimal:
    try:
        value = Decimal(token.value)
    except InvalidOperation:  # pragma: no cover - the grammar admits only valid numbers
        raise _err("not a number", token) from None
    if abs(value) > MAX_NUMBER or (value != 0 and abs(value) < Decimal("1e-300")):
        raise _err("number out of range (magnitude between 1e-300 and 1e300)", token)
    return Decimal(0) if value.is_zero() else value  # -0 and 0.0 are 0


def _literal(token: Token) -> Literal:
    if token.type == "STRING":
        return _string_literal(token)
    if token.type == "NUMBER":
        return _number_literal(token)
    return token.type == "TRUE"


def _literal_type(value: Literal) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal):
        return "number"
    return "string"


@v_args(meta=True)
class _ToAst(Transformer):
    def start(self, meta, children):
        return children[0]

    def or_expr(self, meta, children):
        return Or(tuple(children))

    def and_expr(self, meta, children):
        return And(tuple(children))

    def negation(self, meta, children):
        return Not(children[0])

    def path(self, meta, children):
        head = children[0]
        keys = []
        for key in children[1:]:
            keys.append(_string_literal(key) if key.type == "STRING" else str(key))
            if not keys[-1]:
                raise _err("attribute keys may not be empty", key)
        if head == "attributes":
            if not keys:
                raise _err("expected '.' and a key after 'attributes', e.g. attributes.tenant", meta, "'.'")
            return Path(None, tuple(keys)), meta
        if head in FIELDS:
            if keys:
                raise _err(
                    f"'{head}' is a decision field and has no keys; use attributes.{head}… for an attribute", meta
                )
            return Path(str(head)), meta
        return Path(None, (str(head), *keys)), meta

    def op(self, meta, children):
        return children[0]

    str_op = op

    def compare(self, meta, children):
        (path, path_meta), op_token, value_token = children
        value = _literal(value_token)
        op = str(op_token)
        kind = _literal_type(value)
        if op in ORDERING and kind == "boolean":
            raise _err(f"'{op}' compares numbers or strings, not true/false", value_token, "a number or a string")
        if op == "matches":
            problem = regex_problem(value)
            if problem:
                raise _err(f"unsupported regular expression: {problem}", value_token)
        if path.field:
            _check_field_type(path, op, kind, op_token, value_token)
        return Compare(path, op, value)

    def list(self, meta, children):
        if len(children) > MAX_LIST_ITEMS:
            raise _err(f"lists hold at most {MAX_LIST_ITEMS} values", meta)
        return [(_literal(token), token) for token in children]

    def in_list(self, meta, children, negated=False):
        (path, _), items = children
        if path.field:
            for value, token in items:
                _check_field_type(path, "in", _literal_type(value), token, token)
        # Duplicates change nothing; keep the first occurrence (by type and value).
        seen, values = set(), []
        for value, _ in items:
            key = (_literal_type(value), value)
            if key not in seen:
                seen.add(key)
                values.append(value)
        return In(path, tuple(values), negated)

    def not_in_list(self, meta, children):
        return self.in_list(meta, children, negated=True)

    def exists(self, meta, children):
        (path, _) = children[0]
        return Exists(path)


def _check_field_type(path: Path, op: str, kind: str, op_token, value_token) -> None:
    field_type = FIELDS[path.field]
    if field_type == TEXT:
        if kind != "string":
            raise _err(f"'{path.field}' is text; compare it with a string in double quotes", value_token, "a string")
    elif op in STRING_OPS:
        raise _err(f"'{op}' needs a text field or attribute; '{path.field}' is a number", op_token)
    elif kind != "number":
        raise _err(f"'{path.field}' is a number; compare it with a number", value_token, "a number")


def _depth(node: Node) -> int:
    if isinstance(node, Not):
        return 1 + _depth(node.expr)
    if isinstance(node, (And, Or)):
        return 1 + max(_depth(item) for item in node.items)
    return 1


def parse(text: str) -> Node:
    """The syntax tree of a rule, or a RuleError naming the line, column and what was expected."""
    if not isinstance(text, str):
        raise RuleError("a rule must be text", 1, 1)
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"a rule may be at most {MAX_RULE_LENGTH} characters", 1, MAX_RULE_LENGTH + 1)
    if not text.strip():
        raise RuleError('the rule is empty; expected a comparison such as channel == "api"', 1, 1, "a comparison")
    interactive = _PARSER.parse_interactive(text)
    previous: Token | None = None
    current: Token | None = None
    snapshot = interactive.copy()
    try:
        for token in interactive.iter_parse():
            # iter_parse yields a token before feeding it: keep the state it will be fed to.
            previous, current = current, token
            snapshot = interactive.copy()
        previous = current
        snapshot = interactive.copy()
        current = None
        tree = interactive.feed_eof()
    except UnexpectedInput as exc:
        # The contextual lexer may refuse a token before iter_parse yields it: then the
        # last yielded token was fed fine and is the one the error comes after.
        position = getattr(getattr(exc, "token", None), "start_pos", getattr(exc, "pos_in_stream", None))
        if current is not None and current.start_pos != position:
            previous = current
            snapshot = interactive
        raise _syntax_error(text, exc, previous, snapshot) from None
    try:
        node = _ToAst().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, RuleError):
            raise exc.orig_exc from None
        raise
    if _depth(node) > MAX_DEPTH:
        raise RuleError(f"the rule nests deeper than {MAX_DEPTH} levels", 1, 1)
    return node


def validate(text: str) -> None:
    parse(text)


# --- regular expressions: the subset PostgreSQL and RE2 read the same way -----------------

_REGEX_META = set("\\.^$|?*+()[]{}")
_ESCAPABLE = _REGEX_META | set("-/")
_CLASS_ESCAPABLE = set("\\]-^[")
_MAX_REPEAT = 100


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` is outside the safe subset, or None. The subset:

    literal characters; `\\` before punctuation (`\\.`, `\\(`, `\\-`, …), `\\n`, `\\t`;
    `.`; `^` and `$`; classes `[abc]`, `[^a-z]` (escape `]`, `[`, `-`, `^`, `\\` inside);
    groups `( … )`; alternation `|`; quantifiers `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`
    with m, n ≤ 100, one per atom. No letter escapes (`\\d`, `\\b`, `\\w` differ between
    the engines), no `(?…)` flags, no back-references, no lazy quantifiers.
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"longer than {MAX_REGEX_LENGTH} characters"
    n = len(pattern)
    i = 0
    depth = 0
    can_repeat = False
    branch_empty = True
    branch_stack: list[bool] = []
    saw_bar = False

    def atom() -> None:
        nonlocal can_repeat, branch_empty
        can_repeat = True
        branch_empty = False

    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= n:
                return "a trailing backslash"
            escaped = pattern[i + 1]
            if escaped not in _ESCAPABLE and escaped not in "nt":
                return f"'\\{escaped}' at offset {i} (escape only punctuation, or use \\n, \\t)"
            atom()
            i += 2
            continue
        if char == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            items = 0
            while j < n and pattern[j] != "]":
                low, j, problem = _class_char(pattern, j)
                if problem:
                    return problem
                if j < n and pattern[j] == "-" and j + 1 < n and pattern[j + 1] != "]":
                    high, j, problem = _class_char(pattern, j + 1)
                    if problem:
                        return problem
                    if ord(high) < ord(low):
                        return f"range {low}-{high} out of order at offset {i}"
                elif j < n and pattern[j] == "-":
                    return f"'-' at the end of a class at offset {j} (escape it: \\-)"
                items += 1
            if j >= n:
                return f"unclosed '[' at offset {i}"
            if items == 0:
                return f"empty class at offset {i}"
            atom()
            i = j + 1
            continue
        if char == "(":
            if i + 1 < n and pattern[i + 1] == "?":
                return f"'(?' at offset {i} (flags and special groups are not supported)"
            depth += 1
            branch_stack.append(branch_empty)
            can_repeat = False
            branch_empty = True
        elif char == ")":
            if depth == 0:
                return f"unbalanced ')' at offset {i}"
            if branch_empty:
                return f"empty group or alternative before offset {i}"
            depth -= 1
            branch_stack.pop()
            atom()
        elif char == "|":
            if branch_empty:
                return f"empty alternative before offset {i}"
            saw_bar = True
            branch_empty = True
            can_repeat = False
        elif char in "*+?":
            if not can_repeat:
                return f"nothing to repeat before '{char}' at offset {i} (one quantifier per atom)"
            can_repeat = False
        elif char == "{":
            end = pattern.find("}", i)
            bound = pattern[i + 1 : end] if end != -1 else ""
            low, _, high = bound.partition(",")
            if (
                end == -1
                or not low.isdigit()
                or (high and not high.isdigit())
                or not low.isascii()
                or not high.isascii()
            ):
                return f"'{{' at offset {i} must start a bound {{m}}, {{m,}} or {{m,n}} (escape a literal brace: \\{{)"
            if not can_repeat:
                return f"nothing to repeat before '{{' at offset {i} (one quantifier per atom)"
            if int(low) > _MAX_REPEAT or (high and int(high) > _MAX_REPEAT):
                return f"repeat counts above {_MAX_REPEAT} at offset {i}"
            if high and int(high) < int(low):
                return f"bound {{{bound}}} out of order at offset {i}"
            can_repeat = False
            i = end + 1
            continue
        elif char in "^$":
            can_repeat = False
            branch_empty = False
        elif char in "]}":
            return f"unescaped '{char}' at offset {i}"
        elif ord(char) < 0x20:
            return f"control character at offset {i} (write \\n or \\t)"
        else:
            atom()
        i += 1
    if depth:
        return "unclosed '('"
    if saw_bar and branch_empty:
        return "empty alternative at the end"
    return None


def _class_char(pattern: str, j: int) -> tuple[str, int, str | None]:
    char = pattern[j]
    if char == "\\":
        if j + 1 >= len(pattern):
            return "", j, "a trailing backslash"
        escaped = pattern[j + 1]
        if escaped in "nt":
            return {"n": "\n", "t": "\t"}[escaped], j + 2, None
        if escaped not in _CLASS_ESCAPABLE:
            return "", j, f"'\\{escaped}' inside a class at offset {j} (escape only \\ ] [ - ^)"
        return escaped, j + 2, None
    if char == "[":
        return "", j, f"'[' inside a class at offset {j} (escape it: \\[)"
    if ord(char) < 0x20:
        return "", j, f"control character at offset {j} (write \\n or \\t)"
    return char, j + 1, None


# --- rendering: a syntax tree back to rule text (slices, "make this a segment") -----------


def render_path(path: Path) -> str:
    if path.field:
        return path.field
    simple = all(_is_name(key) for key in path.keys)
    head = path.keys[0]
    if simple and head not in FIELDS and head != "attributes" and head not in KEYWORDS:
        return ".".join(path.keys)
    return "attributes." + ".".join(key if _is_name(key) else json.dumps(key, ensure_ascii=False) for key in path.keys)


def _is_name(key: str) -> bool:
    return (
        bool(key)
        and (key[0].isascii() and (key[0].isalpha() or key[0] == "_"))
        and all(c.isascii() and (c.isalnum() or c == "_") for c in key)
        and key not in KEYWORDS
    )


def render_literal(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_number(value)
    return json.dumps(value, ensure_ascii=False)


def format_number(value: Decimal | int | float) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        value = Decimal(repr(value))
    text = str(Decimal(value))
    # str(Decimal) may say 1E+1 or 1E-7: valid in the grammar; make the mantissa JSON-like.
    return text.replace("E", "e")


def render(node: Node) -> str:
    if isinstance(node, Compare):
        return f"{render_path(node.path)} {node.op} {render_literal(node.value)}"
    if isinstance(node, In):
        op = "not in" if node.negated else "in"
        return f"{render_path(node.path)} {op} [{', '.join(render_literal(v) for v in node.values)}]"
    if isinstance(node, Exists):
        return f"{render_path(node.path)} exists"
    if isinstance(node, Not):
        return f"not ({render(node.expr)})"
    joiner = " and " if isinstance(node, And) else " or "
    return joiner.join(f"({render(item)})" if isinstance(item, (And, Or)) else render(item) for item in node.items)


def parse_path(text: str) -> Path:
    """A field or attribute path on its own (dimensions), with the rule's naming rules."""
    node = parse(f"{text} exists")
    assert isinstance(node, Exists)
    return node.path
