#!/usr/bin/env python3
"""Where the fast ingestion path spends its time, per batch of 1000 decisions (in-process).

    .venv/bin/python bench/profile_ingest.py [--batches 20] [--cprofile]

Uses its own throwaway database (`routerops_bench_profile`, recreated and dropped).
Times each stage separately (JSON parse, validation, parameter building, the INSERT
statement, commit, the whole request through Django's WSGI handler without an HTTP
server) and, with --cprofile, prints the top functions of the whole request.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import subprocess
import sys
import time
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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--profile-variant", default="current", choices=["current", "server", "binary"])
    parser.add_argument("--db-name", default="routerops_bench_profile")
    args = parser.parse_args()

    services_url = services_database_url()
    db_url = with_database(services_url, args.db_name)
    database_recreate(services_url, args.db_name)
    env = {**os.environ, "DATABASE_URL": db_url}
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="router_ops.settings", THROTTLE_INGEST="1000000/min")
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(services_url, args.db_name)


def run(args) -> int:
    import django

    django.setup()
    import orjson
    import psycopg
    from django.db import connection, transaction
    from django.test import Client

    from bench import proto_services
    from bench.proto_services import VARIANTS
    from router_ops.applications.models import ApiKey
    from router_ops.applications.services import api_key_create, application_create
    from router_ops.ingest import services
    from router_ops.ingest.validation import decision_validate
    from router_ops.rollouts.models import RouterVersion

    app, _ = application_create(slug="profile", name="profile")
    for name in ROUTER_VERSIONS:
        RouterVersion.objects.get_or_create(application=app, name=name)
    _, key = api_key_create(application=app, scopes=[ApiKey.SCOPE_INGEST])

    n = args.batches
    variants = ["current", "server", "binary"]  # whole-request variants (proto_services.install)
    needed = n * (2 + len(VARIANTS) + len(variants)) + 1
    decisions = decisions_generate(1000 * needed, seed=11, tag="prof")
    bodies = iter([orjson.dumps({"decisions": decisions[i : i + 1000]}) for i in range(0, len(decisions), 1000)])
    tiers = services.application_tiers(app)

    def med(values):
        values = sorted(values)
        return values[len(values) // 2]

    def params_build(clean):
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

    # 1. Python stages before the database.
    stages: dict[str, list[float]] = {"parse": [], "validate": [], "params": []}
    for _ in range(n):
        body = next(bodies)
        t = time.perf_counter()
        items = orjson.loads(body)["decisions"]
        stages["parse"].append(time.perf_counter() - t)
        t = time.perf_counter()
        clean = [decision_validate(item, tiers) for item in items]
        stages["validate"].append(time.perf_counter() - t)
        t = time.perf_counter()
        params_build(clean)
        stages["params"].append(time.perf_counter() - t)

    # 2. The INSERT statement alone, per cursor kind (each in its own committed transaction).
    insert: dict[str, list[float]] = {v: [] for v in VARIANTS}
    commit: list[float] = []
    for variant in VARIANTS:
        for _ in range(n):
            clean = [decision_validate(item, tiers) for item in orjson.loads(next(bodies))["decisions"]]
            params = params_build(clean)
            connection.ensure_connection()
            raw = connection.connection
            atomic = transaction.atomic()
            atomic.__enter__()
            cursor = raw.cursor() if variant == "client" else psycopg.Cursor(raw)
            t = time.perf_counter()
            rows = proto_services.insert_execute(cursor, variant, params)
            insert[variant].append(time.perf_counter() - t)
            cursor.close()
            t = time.perf_counter()
            atomic.__exit__(None, None, None)
            commit.append(time.perf_counter() - t)
            assert len(rows) == 1000

    # Server-side time of the same INSERT (EXPLAIN ANALYZE, rolled back).
    clean = [decision_validate(item, tiers) for item in orjson.loads(next(bodies))["decisions"]]
    params = params_build(clean)
    with transaction.atomic():
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + proto_services.insert_query("binary"), params)
            plan = cursor.fetchone()[0][0]
        transaction.set_rollback(True)

    # 3. The whole request through Django's WSGI handler (no HTTP server, no socket);
    #    timed unprofiled, then (--cprofile) n more requests of one variant under cProfile.
    client = Client()
    request: dict[str, list[float]] = {v: [] for v in variants}
    profiler = cProfile.Profile() if args.cprofile else None

    def use(variant):
        if variant == "current":
            proto_services.uninstall()
        else:
            proto_services.install(variant)

    def post(body):
        response = client.post(
            "/api/v1/decisions", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        assert response.status_code == 200, response.content[:300]

    gc_time = {v: 0.0 for v in variants}
    gc_started = [0.0]
    current_variant = [variants[0]]

    def gc_callback(phase, info):
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_time[current_variant[0]] += time.perf_counter() - gc_started[0]

    gc.callbacks.append(gc_callback)
    for variant in variants:
        use(variant)
        current_variant[0] = variant
        for _ in range(n):
            body = next(bodies)
            t = time.perf_counter()
            post(body)
            request[variant].append(time.perf_counter() - t)
    gc.callbacks.remove(gc_callback)
    if profiler:
        use(args.profile_variant)
        for _ in range(n):
            body = next(bodies)
            profiler.enable()
            post(body)
            profiler.disable()
    proto_services.uninstall()

    print(f"Per batch of 1000 decisions, median of {n} batches ({len(body) / 1000:.0f} kB of JSON per batch):")
    print(f"  orjson.loads of the body                   {ms(med(stages['parse']))}")
    print(f"  decision_validate × 1000                   {ms(med(stages['validate']))}")
    print(f"  building the 17 parameter arrays           {ms(med(stages['params']))}")
    for variant in VARIANTS:
        label = {
            "client": "Django's ClientCursor (today)",
            "server": "psycopg.Cursor, text",
            "binary": "psycopg.Cursor, binary %b",
            "json": "one json param, json_to_recordset",
            "copy": "COPY to temp table + INSERT…SELECT",
        }
        print(f"  INSERT execute: {label[variant]:<36} {ms(med(insert[variant]))}")
    print(
        f"    PostgreSQL execution of it (EXPLAIN ANALYZE) {plan['Execution Time']:8.2f} ms "
        f"(planning {plan['Planning Time']:.2f} ms)"
    )
    print(f"  COMMIT (WAL flush, fsync on)               {ms(med(commit))}")
    for variant in variants:
        rate = 1000 / med(request[variant])
        print(
            f"  whole request, {variant:<8} (Django test client) {ms(med(request[variant]))}"
            f"  → {rate:,.0f} decisions/s per process; cyclic GC {gc_time[variant] / n * 1000:.1f} ms/request"
        )
    if profiler:
        print(f"\ncProfile of the whole request, variant {args.profile_variant}:")
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)

    return 0


if __name__ == "__main__":
    sys.exit(main())
