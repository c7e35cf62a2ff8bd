"""Prototypes of faster INSERTs for router_ops.ingest.services.decision_ingest_batch.

Not used by the application: bench/profile_ingest.py and bench/settings_proto.py swap
them in to measure a change before it is made in router_ops/.

The one change that matters: Django's psycopg 3 backend installs a *client-side
binding* cursor factory (`ClientCursor`) on the raw connection, so
`connection.connection.cursor()` does NOT bind server-side as services.py assumes:
psycopg quotes the 17 arrays × 1000 elements into SQL text, a regex per string.
`psycopg.Cursor(connection.connection)` binds them as parameters, and `%(name)b`
placeholders send them in binary (length-prefixed, no escaping). Same SQL, same
transaction, same result.

`install(variant)` patches the services module at the cursor level, so the prototype
follows whatever decision_ingest_batch does in the tree (validation, segments, rollups).
"""

from __future__ import annotations

import re

import orjson
import psycopg
from django.db import connection

from router_ops.ingest import services

VARIANTS = ("client", "server", "binary", "json", "copy")

# `%s` lets psycopg choose the format, and for str (hence text[]) it chooses text: every
# element then goes through a regex escape. `%b` asks for binary: length-prefixed, no escaping.


def to_binary(query: str) -> str:
    return re.sub(r"%\((\w+)\)s", r"%(\1)b", query)


def insert_query(variant: str) -> str:
    return to_binary(services._INSERT_DECISIONS) if variant == "binary" else services._INSERT_DECISIONS


# The whole batch as ONE json parameter (one orjson.dumps in C), unpacked by PostgreSQL.
INSERT_DECISIONS_JSON = """
INSERT INTO ingest_decision (
    application_id, decision_id, occurred_at, received_at, router_version_id, unit_id, routed_to, model,
    router_score, prompt, messages, response, prompt_tokens, completion_tokens, latency_ms, cost_usd,
    attributes, segment_ids, shadow_decisions
)
SELECT %(app)s, d.decision_id, d.occurred_at, now(), d.router_version_id, d.unit_id, d.routed_to, d.model,
       d.router_score, d.prompt, d.messages, d.response, d.prompt_tokens, d.completion_tokens,
       d.latency_ms, d.cost_usd, d.attributes, d.segment_ids::int[], d.shadow_decisions
FROM json_to_recordset(%(rows)s::json) AS d(
    decision_id text, occurred_at timestamptz, router_version_id bigint, unit_id text, routed_to text, model text,
    router_score float8, prompt text, messages jsonb, response text, prompt_tokens int, completion_tokens int,
    latency_ms float8, cost_usd numeric, attributes jsonb, segment_ids text, shadow_decisions jsonb
)
ON CONFLICT (application_id, decision_id) DO NOTHING
RETURNING id, decision_id
"""

_STAGE_COLUMNS = (
    "decision_id text, occurred_at timestamptz, router_version_id bigint, unit_id text, routed_to text, model text, "
    "router_score float8, prompt text, messages text, response text, prompt_tokens int, completion_tokens int, "
    "latency_ms float8, cost_usd numeric, attributes text, segment_ids text, shadow_decisions text"
)
_STAGE_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS _decision_stage ({_STAGE_COLUMNS}) ON COMMIT DELETE ROWS"
_STAGE_COPY = "COPY _decision_stage FROM STDIN"
_STAGE_INSERT = """
INSERT INTO ingest_decision (
    application_id, decision_id, occurred_at, received_at, router_version_id, unit_id, routed_to, model,
    router_score, prompt, messages, response, prompt_tokens, completion_tokens, latency_ms, cost_usd,
    attributes, segment_ids, shadow_decisions
)
SELECT %(app)s, d.decision_id, d.occurred_at, now(), d.router_version_id, d.unit_id, d.routed_to, d.model,
       d.router_score, d.prompt, d.messages::jsonb, d.response, d.prompt_tokens, d.completion_tokens,
       d.latency_ms, d.cost_usd, d.attributes::jsonb, d.segment_ids::int[], d.shadow_decisions::jsonb
FROM _decision_stage d
ON CONFLICT (application_id, decision_id) DO NOTHING
RETURNING id, decision_id
"""

_FIELDS = (
    "decision_id", "occurred_at", "router_version_id", "unit_id", "routed_to", "model", "router_score", "prompt",
    "messages", "response", "prompt_tokens", "completion_tokens", "latency_ms", "cost_usd", "attributes",
    "segment_ids", "shadow_decisions",
)  # fmt: skip


def insert_execute(cursor, variant: str, params: dict) -> list:
    """Run the INSERT of one batch with the given technique; return the RETURNING rows.

    `params` is the dict of arrays services.py builds (columns); json and copy turn it
    into rows (json: one parameter unpacked by json_to_recordset; copy: COPY into a temp
    table, then INSERT … SELECT).
    """
    if variant in ("client", "server", "binary"):
        cursor.execute(insert_query(variant), params)
        return cursor.fetchall()
    columns = [params[f] for f in _FIELDS]
    if variant == "json":
        rows = [dict(zip(_FIELDS, values, strict=True)) for values in zip(*columns, strict=True)]
        for row in rows:  # nested JSON instead of JSON text
            row["attributes"] = orjson.Fragment(row["attributes"])
            row["shadow_decisions"] = orjson.Fragment(row["shadow_decisions"])
            if row["messages"] is not None:
                row["messages"] = orjson.Fragment(row["messages"])
        cursor.execute(INSERT_DECISIONS_JSON, {"app": params["app"], "rows": orjson.dumps(rows).decode()})
        return cursor.fetchall()
    if variant == "copy":
        cursor.execute(_STAGE_CREATE)
        with cursor.copy(_STAGE_COPY) as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        cursor.execute(_STAGE_INSERT, {"app": params["app"]})
        return cursor.fetchall()
    raise ValueError(variant)


class _RawProxy:
    """The raw psycopg connection, whose cursor() binds server-side (psycopg.Cursor)."""

    def __init__(self, raw):
        self._raw = raw

    def cursor(self, *args, **kwargs):
        return psycopg.Cursor(self._raw)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class _ConnectionProxy:
    """django.db.connection, except that `.connection` is wrapped by _RawProxy."""

    def __getattr__(self, name):
        value = getattr(connection, name)
        return _RawProxy(value) if name == "connection" and value is not None else value


_ORIGINAL = {"connection": services.connection, "_INSERT_DECISIONS": services._INSERT_DECISIONS,
             "_ATTACH_FEEDBACK": services._ATTACH_FEEDBACK}  # fmt: skip


def install(variant: str) -> None:
    """Patch router_ops.ingest.services in this process so that decision_ingest_batch, as it
    is in the tree now, runs its INSERT with the given technique:

    client  as today (Django's ClientCursor: client-side binding, arrays quoted as SQL text)
    server  psycopg.Cursor: server-side binding, text format (regex escaping per element)
    binary  psycopg.Cursor and `%(name)b` placeholders: server-side binding, binary format
    """
    uninstall()
    if variant == "client":
        return
    if variant not in ("server", "binary"):
        raise ValueError(f"variant {variant!r} is for the INSERT measurement only")
    services.connection = _ConnectionProxy()
    if variant == "binary":
        services._INSERT_DECISIONS = to_binary(_ORIGINAL["_INSERT_DECISIONS"])
        services._ATTACH_FEEDBACK = to_binary(_ORIGINAL["_ATTACH_FEEDBACK"])


def uninstall() -> None:
    for name, value in _ORIGINAL.items():
        setattr(services, name, value)
