#!/usr/bin/env python3
"""PostgreSQL-side cost of inserting a batch of 1000 decisions, and what each index adds.

    .venv/bin/python bench/pg_insert_costs.py [--batches 15]

In its own throwaway database (`routerops_bench_pg`): EXPLAIN ANALYZE of the
binary-bound INSERT … unnest (bench/proto_services.py) with all of ingest_decision's
indexes, then after dropping them one at a time (the database is dropped at the end).
The table is pre-filled with --prefill decisions so indexes are not trivially small.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    PYTHON,
    ROUTER_VERSIONS,
    database_drop,
    database_recreate,
    decisions_generate,
    services_database_url,
    with_database,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--prefill", type=int, default=100_000)
    parser.add_argument("--db-name", default="routerops_bench_pg")
    args = parser.parse_args()
    services_url = services_database_url()
    db_url = with_database(services_url, args.db_name)
    database_recreate(services_url, args.db_name)
    env = {**os.environ, "DATABASE_URL": db_url}
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="router_ops.settings")
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(services_url, args.db_name)


def run(args) -> int:
    import django

    django.setup()
    import psycopg
    from django.db import connection, transaction

    from bench import proto_services
    from router_ops.applications.services import application_create
    from router_ops.ingest import services
    from router_ops.ingest.validation import decision_validate
    from router_ops.rollouts.models import RouterVersion

    app, _ = application_create(slug="pg", name="pg")
    for name in ROUTER_VERSIONS:
        RouterVersion.objects.get_or_create(application=app, name=name)
    tiers = services.application_tiers(app)
    batches_needed = args.prefill // 1000 + 8 * args.batches
    decisions = decisions_generate(1000 * batches_needed, seed=3, tag="pg")
    batches = iter(decisions[i : i + 1000] for i in range(0, len(decisions), 1000))

    def params_of(items):
        clean = [decision_validate(item, tiers) for item in items]
        versions = services.router_version_ids(application=app, names={d.router_version for d in clean})
        return {
            "app": app.id,
            "decision_id": [d.decision_id for d in clean],
            "occurred_at": [d.occurred_at for d in clean],
            "router_version_id": [versions[d.router_version] for d in clean],
            "unit_id": [d.unit_id for d in clean],
            "routed_to": [d.routed_to for d in clean],
            "model": [d.model for d in clean],
            "router_score": [d.router_score for d in clean],
            "prompt": [d.prompt for d in clean],
            "messages": [d.messages for d in clean],
            "response": [d.response for d in clean],
            "prompt_tokens": [d.prompt_tokens for d in clean],
            "completion_tokens": [d.completion_tokens for d in clean],
            "latency_ms": [d.latency_ms for d in clean],
            "cost_usd": [d.cost_usd for d in clean],
            "attributes": [d.attributes_json for d in clean],
            "segment_ids": ["{}" for _ in clean],  # the bench applications have no segments
            "shadow_decisions": [d.shadow_decisions_json for d in clean],
        }

    query = proto_services.insert_query("binary")
    for _ in range(args.prefill // 1000):
        with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(query, params_of(next(batches)))

    def measure() -> float:
        times = []
        for _ in range(args.batches):
            params = params_of(next(batches))
            with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params)
                times.append(cursor.fetchone()[0][0]["Execution Time"])
        times.sort()
        return times[len(times) // 2]

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'ingest_decision' AND indexname NOT LIKE '%%pkey'"
        )
        indexes = [row[0] for row in cursor.fetchall()]
    print(f"ingest_decision with {args.prefill:,} rows; server execution time per 1000-row INSERT (median):")
    previous = measure()
    print(f"  all indexes ({', '.join(indexes)}): {previous:6.2f} ms")
    # Drop the optional ones first; the unique (application, decision_id) one is the idempotency key.
    order = sorted(indexes, key=lambda name: ("unique" in name or "decision_id" in name, name))
    for name in order:
        with connection.cursor() as cursor:
            constraint = "unique" in name
            if constraint:
                cursor.execute(f'ALTER TABLE ingest_decision DROP CONSTRAINT "{name}"')
            else:
                cursor.execute(f'DROP INDEX "{name}"')
        if constraint:
            print(f"  (dropped {name}: ON CONFLICT needs it; stopping here)")
            break
        now = measure()
        print(f"  without {name:<32} {now:6.2f} ms  (it cost {previous - now:+.2f} ms per 1000 rows)")
        previous = now
    return 0


if __name__ == "__main__":
    sys.exit(main())
