"""The two compilations of a rule agree: SQL (`rule_q`) and Python (`compile_predicate`).

Random rules over random decisions, the decisions stored through the real
ingestion service in PostgreSQL; the Python predicate is checked both on the
`CleanDecision` ingestion sees and on the `Decision` read back from the database.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_ops.ingest.models import Decision
from router_ops.ingest.services import application_tiers, decision_ingest_batch
from router_ops.ingest.validation import decision_validate
from segments import dsl
from segments.predicate import compile_predicate
from segments.rule_q import rule_q

STRINGS = [
    "",
    "acme",
    "ACME",
    "acme-corp",
    "api",
    "api\n",
    "é",
    "Zürich",
    "10",
    "3",
    "python-requests/2.32",
    "BULK-1 x",
    "a.b",
    "z",
    "Ωmega",
]
INTS = [-3, 0, 1, 2, 3, 10, 2000, 2001, 10**15 + 1]
FLOATS = [0.1, 0.5, 2.5, 3.0, -0.0, 1e-7, 1e20, 0.30000000000000004, 2000.5, -1.5]
NUMBER_LITERALS = [
    "0",
    "1",
    "3",
    "3.0",
    "-3",
    "2.5",
    "0.1",
    "0.10000000000000001",
    "1e-7",
    "2000",
    "1e20",
    "1000000000000001",
    "0.30000000000000004",
    "-0",
]
REGEXES = ["^BULK-", "acme$", "a.c", "[a-c]+", "^(api|web)$", "é", "\\.", "^$", "c$", "^[^a]", "(ab|c){2}", "r.*ch"]
ATTRIBUTE_PATHS = [("tenant",), ("channel",), ("n",), ("flag",), ("client",), ("meta", "a"), ("meta", "b", "c")]
TEXT_FIELDS = ["routed_to", "router_version", "model", "unit_id", "prompt", "response"]
NUMBER_FIELDS = ["prompt_tokens", "completion_tokens", "latency_ms", "router_score", "cost_usd"]

safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4)

json_scalars = st.one_of(
    st.sampled_from(STRINGS),
    st.sampled_from(INTS),
    st.sampled_from(FLOATS),
    st.booleans(),
    st.none(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    safe_text,
)
json_values = st.one_of(
    json_scalars,
    json_scalars,
    json_scalars,
    st.lists(json_scalars, max_size=2),
    st.fixed_dictionaries(
        {}, optional={"a": json_scalars, "b": st.fixed_dictionaries({}, optional={"c": json_scalars})}
    ),
)
attributes = st.fixed_dictionaries(
    {},
    optional={
        "tenant": json_values,
        "channel": json_values,
        "n": json_values,
        "flag": json_values,
        "client": json_values,
        "meta": json_values,
    },
)

decisions = st.fixed_dictionaries(
    {
        "routed_to": st.sampled_from(["cheap", "strong"]),
        "router_version": st.sampled_from(["v1", "v2", "v10"]),
        "unit_id": st.sampled_from(["u1", "u2", "acme"]),
        "attributes": attributes,
    },
    optional={
        "model": st.sampled_from(["small-1", "big-2", "acme"]),
        "prompt": st.one_of(st.sampled_from(["BULK-7 hello", "hello\nworld", "acme", "é", ""]), safe_text),
        "response": st.sampled_from(["ok", "", "z"]),
        "prompt_tokens": st.sampled_from([0, 1, 3, 2000, 2001, 10**15 // 10**6]),
        "completion_tokens": st.integers(0, 5000),
        "latency_ms": st.sampled_from([0.0, 0.1, 12.5, 840.0, 2000.0, 0.30000000000000004]),
        "router_score": st.one_of(st.sampled_from([0.1, 0.5, -1.5, 3.0]), st.floats(-10, 10, allow_nan=False)),
        "cost_usd": st.one_of(
            st.sampled_from([0.0, 0.00021, 0.1, 0.30000000000000004, 1e-9, 0.123456785, 0.000000015, 3.0]),
            st.floats(0, 1000, allow_nan=False),
        ),
    },
)


def _literal_strategy(kind: str):
    if kind == "string":
        return st.one_of(st.sampled_from(STRINGS), safe_text)
    if kind == "number":
        return st.sampled_from(NUMBER_LITERALS).map(Decimal)
    return st.booleans()


@st.composite
def leaves(draw):
    if draw(st.booleans()):
        path = dsl.Path(None, draw(st.sampled_from(ATTRIBUTE_PATHS)))
        kinds = ["string", "number", "boolean"]
    elif draw(st.booleans()):
        path = dsl.Path(draw(st.sampled_from(TEXT_FIELDS)))
        kinds = ["string"]
    else:
        path = dsl.Path(draw(st.sampled_from(NUMBER_FIELDS)))
        kinds = ["number"]
    shape = draw(st.sampled_from(["compare", "compare", "compare", "in", "exists", "string_op"]))
    if shape == "exists":
        return dsl.Exists(path)
    if shape == "in":
        values = draw(st.lists(st.sampled_from(kinds).flatmap(_literal_strategy), max_size=4))
        unique = []
        for value in values:
            if not any(type(value) is type(seen) and value == seen for seen in unique):
                unique.append(value)
        return dsl.In(path, tuple(unique), draw(st.booleans()))
    if shape == "string_op" and "string" in kinds:
        op = draw(st.sampled_from(["startswith", "endswith", "contains", "matches"]))
        value = draw(st.sampled_from(REGEXES)) if op == "matches" else draw(_literal_strategy("string"))
        return dsl.Compare(path, op, value)
    kind = draw(st.sampled_from(kinds))
    ops = ["==", "!="] if kind == "boolean" else ["==", "!=", "<", "<=", ">", ">="]
    return dsl.Compare(path, draw(st.sampled_from(ops)), draw(_literal_strategy(kind)))


rules = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda items: dsl.And(tuple(items))),
        st.lists(children, min_size=2, max_size=3).map(lambda items: dsl.Or(tuple(items))),
        children.map(dsl.Not),
    ),
    max_leaves=5,
)

_ids = itertools.count()
TALLY = {True: 0, False: 0}


@pytest.fixture(scope="module", autouse=True)
def _report_tally():
    yield
    print("agreement pairs (matched, not matched):", TALLY[True], TALLY[False])


@pytest.mark.django_db
@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(rule=rules, items=st.lists(decisions, min_size=1, max_size=3))
def test_sql_and_python_agree(owner, rule, items):
    text = dsl.render(rule)
    node = dsl.parse(text)  # the rendered rule parses back to the same meaning
    batch = []
    for item in items:
        batch.append(dict(item, decision_id=f"prop-{next(_ids)}", occurred_at="2026-11-24T10:15:00Z"))
    result = decision_ingest_batch(application=owner.application, items=batch)
    assert result.rejected == 0, result.errors
    predicate = compile_predicate(node)
    tiers = application_tiers(owner.application)
    stored = {
        d.decision_id: d for d in Decision.objects.filter(id__in=result.inserted_ids).select_related("router_version")
    }
    in_sql = set(
        Decision.objects.filter(id__in=result.inserted_ids).filter(rule_q(node)).values_list("decision_id", flat=True)
    )
    for item in batch:
        clean = decision_validate(item, tiers)
        expected = item["decision_id"] in in_sql
        TALLY[expected] += 1
        assert predicate(clean) is expected, (text, item)
        assert predicate(stored[item["decision_id"]]) is expected, (text, item)
