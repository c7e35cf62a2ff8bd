"""Rules compiled to a Django `Q` over `Decision`, for backfill and queries.

The semantics are documented in segments/dsl.py; segments/predicate.py is the
Python twin and tests/segments/test_agreement.py proves the two agree.

Every leaf is a boolean SQL expression wrapped in COALESCE(…, false), so it is
never NULL and `not`/`and`/`or` are the two-valued logic of the Python side
(SQL's three-valued NOT would make `not (x > 3)` unknown for a missing x).
Type checks come first inside AND, and no leaf casts a JSON value, so a value
of another type can make a leaf false but never raise.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.db.models import BooleanField, Expression, F, Q

from segments.dsl import DECIMAL, FLOAT, INT, TEXT, And, Compare, Exists, In, Node, Not, Or, Path, parse

_SQL_OPS = {"==": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FIELD_COLUMNS = {"router_version": "router_version__name"}


class RuleLeaf(Expression):
    """One comparison as SQL. `{col}` in the template is the column (a plain column
    reference, so it may repeat); `%s` are the params in order."""

    conditional = True

    def __init__(self, column: str, template: str, params: tuple = ()):
        super().__init__(output_field=BooleanField())
        self.column = column
        self.source = F(column)
        self.template = template
        self.params = tuple(params)

    def get_source_expressions(self):
        return [self.source]

    def set_source_expressions(self, exprs):
        (self.source,) = exprs

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        clone = self.copy()
        clone.source = self.source.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return clone

    def as_sql(self, compiler, connection):
        column_sql, column_params = compiler.compile(self.source)
        if column_params:  # pragma: no cover - a column reference never has params
            raise ValueError("RuleLeaf needs a plain column")
        return self.template.replace("{col}", column_sql), list(self.params)

    def __repr__(self) -> str:
        return f"RuleLeaf({self.column!r}, {self.template!r}, {self.params!r})"


def _json(value) -> str:
    if isinstance(value, Decimal):
        return str(value)  # exact; Decimal's 1E-7 is valid JSON
    return json.dumps(value)


def _attribute_leaf(path: Path, node: Node) -> Q:
    keys = list(path.keys)
    value_sql = "({col} #> %s::text[])"
    text_sql = "({col} #>> %s::text[])"
    if isinstance(node, Exists):
        return Q(RuleLeaf("attributes", f"COALESCE(jsonb_typeof({value_sql}) <> 'null', false)", (keys,)))
    if isinstance(node, In):
        if not node.values:
            return Q(RuleLeaf("attributes", "false"))
        return Q(
            RuleLeaf(
                "attributes",
                f"COALESCE({value_sql} = ANY(%s::jsonb[]), false)",
                (keys, [_json(v) for v in node.values]),
            )
        )
    assert isinstance(node, Compare)
    op, value = node.op, node.value
    if op == "==":
        return Q(RuleLeaf("attributes", f"COALESCE({value_sql} = %s::jsonb, false)", (keys, _json(value))))
    if op in _SQL_OPS and isinstance(value, Decimal):
        sql = f"COALESCE(jsonb_typeof({value_sql}) = 'number' AND {value_sql} {_SQL_OPS[op]} %s::jsonb, false)"
        return Q(RuleLeaf("attributes", sql, (keys, keys, _json(value))))
    is_string = f"jsonb_typeof({value_sql}) = 'string'"
    if op in _SQL_OPS:
        sql = f'COALESCE({is_string} AND {text_sql} COLLATE "C" {_SQL_OPS[op]} %s COLLATE "C", false)'
        return Q(RuleLeaf("attributes", sql, (keys, keys, value)))
    return Q(
        RuleLeaf(
            "attributes",
            f"COALESCE({is_string} AND {_string_op(text_sql, op)}, false)",
            (keys, keys, *_string_params(op, value)),
        )
    )


def _string_op(text_sql: str, op: str) -> str:
    return {
        "startswith": f"starts_with({text_sql}, %s)",
        "endswith": f"right({text_sql}, %s) = %s",
        "contains": f"strpos({text_sql}, %s) > 0",
        "matches": f"{text_sql} ~ %s",
    }[op]


def _string_params(op: str, value: str) -> tuple:
    return (len(value), value) if op == "endswith" else (value,)


def _field_leaf(path: Path, node: Node) -> Q:
    column = _FIELD_COLUMNS.get(path.field, path.field)
    field_type = path.type
    if isinstance(node, Exists):
        return Q(RuleLeaf(column, "({col} IS NOT NULL)"))
    cast = {TEXT: "text", INT: "numeric", DECIMAL: "numeric", FLOAT: "float8"}[field_type]

    def param(value):
        return float(value) if field_type == FLOAT else value

    if isinstance(node, In):
        values = [param(v) for v in node.values]
        if not values:
            return Q(RuleLeaf(column, "false"))
        return Q(RuleLeaf(column, f"COALESCE({{col}} = ANY(%s::{cast}[]), false)", (values,)))
    assert isinstance(node, Compare)
    op, value = node.op, node.value
    if op in _SQL_OPS:
        if field_type == TEXT and op != "==":
            sql = f'COALESCE({{col}} COLLATE "C" {_SQL_OPS[op]} %s COLLATE "C", false)'
        else:
            sql = f"COALESCE({{col}} {_SQL_OPS[op]} %s::{cast}, false)"
        return Q(RuleLeaf(column, sql, (param(value),)))
    return Q(RuleLeaf(column, f"COALESCE({_string_op('{col}', op)}, false)", _string_params(op, value)))


def _compile(node: Node) -> Q:
    if isinstance(node, And):
        result = _compile(node.items[0])
        for item in node.items[1:]:
            result &= _compile(item)
        return result
    if isinstance(node, Or):
        result = _compile(node.items[0])
        for item in node.items[1:]:
            result |= _compile(item)
        return result
    if isinstance(node, Not):
        return ~_compile(node.expr)
    negate = (isinstance(node, Compare) and node.op == "!=") or (isinstance(node, In) and node.negated)
    if negate:
        node = Compare(node.path, "==", node.value) if isinstance(node, Compare) else In(node.path, node.values)
    q = _field_leaf(node.path, node) if node.path.field else _attribute_leaf(node.path, node)
    return ~q if negate else q


def rule_q(rule: Node | str) -> Q:
    """A Q selecting the decisions a rule matches: `Decision.objects.filter(rule_q(rule))`."""
    return _compile(parse(rule) if isinstance(rule, str) else rule)
