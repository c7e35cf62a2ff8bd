"""Rules compiled to Python predicates, for membership at ingestion. Pure: no Django.

The semantics are documented in segments/dsl.py; segments/rule_q.py is the SQL twin
and tests/segments/test_agreement.py proves the two agree.

A predicate reads a decision that is a dict, a `CleanDecision` (ingestion) or a
`Decision` model instance (use select_related("router_version") for many).

Rules are turned into Python source and compiled once: a whole application's
segments become one function that loads each field or attribute path once and
tests every rule inline, so 100 simple segments cost a few microseconds per
decision. The generated code only names generated identifiers; every literal
from a rule is a constant in the function's namespace, never source text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal

import re2

from segments.dsl import DECIMAL, FLOAT, INT, TEXT, And, Compare, Exists, In, Node, Not, Or, Path, parse

_EMPTY: dict = {}
_CENT_MILLIONTH = Decimal("0.00000001")  # cost_usd is numeric(14, 8)


def _get(d: object, name: str):
    if type(d) is dict or isinstance(d, Mapping):
        return d.get(name)
    return getattr(d, name, None)


def _attributes(d: object) -> dict:
    value = _get(d, "attributes")
    return value if type(value) is dict else _EMPTY


def _dig(attributes: dict, keys: tuple[str, ...]):
    # Like jsonb `#>`: a path through anything but an object is absent. Keys are never
    # integers (the grammar's names and strings), so arrays are never indexed.
    value = attributes
    for key in keys:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


def _text(d: object, name: str):
    value = _get(d, name)
    if name == "router_version" and value is not None and not isinstance(value, str):
        value = getattr(value, "name", None)  # a Decision's RouterVersion
    return value


def _int(d: object, name: str):
    value = _get(d, name)
    return None if value is None or isinstance(value, bool) else value


def _float(d: object, name: str):
    value = _get(d, name)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _cost(d: object, name: str):
    """cost_usd as PostgreSQL stores it: numeric(14, 8). A float goes through
    float8 → numeric (15 significant digits, PostgreSQL's DBL_DIG), then rounds
    half away from zero to 8 places."""
    value = _get(d, name)
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = Decimal(format(value, ".15g"))
    return Decimal(value).quantize(_CENT_MILLIONTH, rounding=ROUND_HALF_UP)


_LOADERS = {TEXT: "_text", INT: "_int", FLOAT: "_float", DECIMAL: "_cost"}


def _dec(value: float):
    """A float attribute as the decimal jsonb stores (its shortest repr), or None."""
    return Decimal(repr(value)) if math.isfinite(value) else None


def _canonical(number: Decimal) -> bool:
    """True when comparing floats with float(number) is the same as comparing their
    shortest reprs with `number`: reprs are monotonic in the floats they denote."""
    as_float = float(number)
    return math.isfinite(as_float) and Decimal(repr(as_float)) == number


_PY_OPS = {"==": "==", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Codegen:
    def __init__(self) -> None:
        self.namespace: dict = {
            "_attributes": _attributes,
            "_dig": _dig,
            "_text": _text,
            "_int": _int,
            "_float": _float,
            "_cost": _cost,
            "_dec": _dec,
        }
        self.loads: dict[Path, str] = {}
        self.uses_attributes = False
        self._constants: dict[tuple, str] = {}

    def const(self, value) -> str:
        key = (type(value).__name__, value if not isinstance(value, (list, set)) else tuple(value))
        try:
            name = self._constants.get(key)
        except TypeError:  # unhashable: never shared
            name = None
        if name is None:
            name = f"c{len(self.namespace)}"
            self.namespace[name] = value
            try:
                self._constants[key] = name
            except TypeError:
                pass
        return name

    def var(self, path: Path) -> str:
        name = self.loads.get(path)
        if name is None:
            name = f"v{len(self.loads)}"
            self.loads[path] = name
            if not path.field:
                self.uses_attributes = True
        return name

    def prologue(self) -> list[str]:
        lines = ["A = _attributes(d)"] if self.uses_attributes else []
        for path, name in self.loads.items():
            if path.field:
                lines.append(f"{name} = {_LOADERS[path.type]}(d, {self.const(path.field)})")
            elif len(path.keys) == 1:
                lines.append(f"{name} = A.get({self.const(path.keys[0])})")
            else:
                lines.append(f"{name} = _dig(A, {self.const(path.keys)})")
        return lines

    # -- expressions ------------------------------------------------------------------

    def expr(self, node: Node) -> str:
        if isinstance(node, And):
            return "(" + " and ".join(self.expr(item) for item in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.expr(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"(not {self.expr(node.expr)})"
        v = self.var(node.path)
        if isinstance(node, Exists):
            return f"({v} is not None)"
        if isinstance(node, In):
            code = self._in(node.path, v, node.values)
            return f"(not {code})" if node.negated else code
        assert isinstance(node, Compare)
        if node.op == "!=":
            return f"(not {self._compare(node.path, v, '==', node.value)})"
        return self._compare(node.path, v, node.op, node.value)

    def _compare(self, path: Path, v: str, op: str, value) -> str:
        field_type = path.type
        if op in ("startswith", "endswith", "contains", "matches"):
            c = self.const(value)
            guard = f"{v} is not None" if field_type == TEXT else f"{v}.__class__ is str"
            if op == "startswith":
                return f"({guard} and {v}.startswith({c}))"
            if op == "endswith":
                return f"({guard} and {v}.endswith({c}))"
            if op == "contains":
                return f"({guard} and {c} in {v})"
            regex = self.const(re2.compile("(?s)" + value))
            return f"({guard} and {regex}.search({v}) is not None)"
        py = _PY_OPS[op]
        if isinstance(value, bool):  # == only (the parser refuses ordering on booleans)
            return f"({v} is {value!r})"
        if isinstance(value, str):
            c = self.const(value)
            if op == "==":
                return f"({v} == {c})"
            guard = f"{v} is not None" if field_type == TEXT else f"{v}.__class__ is str"
            return f"({guard} and {v} {py} {c})"
        # A number.
        if field_type == FLOAT:
            return f"({v} is not None and {v} {py} {self.const(float(value))})"
        if field_type in (INT, DECIMAL):
            return f"({v} is not None and {v} {py} {self.const(value)})"
        c = self.const(value)
        if _canonical(value):
            as_float = self.const(float(value))
            return f"(({v}.__class__ is int and {v} {py} {c}) or ({v}.__class__ is float and {v} {py} {as_float}))"
        return (
            f"(({v}.__class__ is int and {v} {py} {c}) or "
            f"({v}.__class__ is float and _dec({v}) is not None and _dec({v}) {py} {c}))"
        )

    def _in(self, path: Path, v: str, values: tuple) -> str:
        strings = frozenset(x for x in values if isinstance(x, str))
        numbers = frozenset(x for x in values if isinstance(x, Decimal))
        booleans = frozenset(x for x in values if isinstance(x, bool))
        field_type = path.type
        if field_type == TEXT:
            return f"({v} in {self.const(strings)})"
        if field_type == FLOAT:
            return f"({v} in {self.const(frozenset(float(x) for x in numbers))})"
        if field_type in (INT, DECIMAL):
            # int and Decimal hash and compare alike: 3 in {Decimal("3.0")}.
            return f"({v} in {self.const(numbers)})"
        parts = []
        if strings:
            parts.append(f"({v}.__class__ is str and {v} in {self.const(strings)})")
        if numbers:
            c = self.const(numbers)
            parts.append(f"({v}.__class__ is int and {v} in {c})")
            parts.append(f"({v}.__class__ is float and _dec({v}) in {c})")
        for boolean in sorted(booleans):
            parts.append(f"({v} is {boolean!r})")
        return "(" + " or ".join(parts) + ")" if parts else "False"


def _build(codegen: _Codegen, body: list[str], name: str) -> Callable:
    lines = [f"def {name}(d):"] + [f"    {line}" for line in codegen.prologue() + body]
    source = "\n".join(lines)
    exec(compile(source, f"<segment rules: {name}>", "exec"), codegen.namespace)  # noqa: S102 - generated, no rule text
    function = codegen.namespace[name]
    function.source = source
    return function


def compile_predicate(rule: Node | str) -> Callable[[object], bool]:
    """A function decision → bool for one rule."""
    node = parse(rule) if isinstance(rule, str) else rule
    codegen = _Codegen()
    body = codegen.expr(node)
    return _build(codegen, [f"return bool({body})"], "rule_predicate")


def compile_matcher(rules: list[tuple[int, Node]]) -> Callable[[object], list[int]]:
    """A function decision → ids (in the given order) of the rules it matches."""
    codegen = _Codegen()
    body = ["out = []"]
    for segment_id, node in rules:
        body.append(f"if {codegen.expr(node)}: out.append({int(segment_id)})")
    body.append("return out")
    matcher = _build(codegen, body, "segment_matcher")
    matcher.fields = frozenset(path.field for path in codegen.loads if path.field)
    return matcher
