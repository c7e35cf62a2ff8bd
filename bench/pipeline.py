#!/usr/bin/env python3
"""Shadow + judge pipeline throughput: pairs per second through real Celery workers.

    .venv/bin/python bench/pipeline.py [--pairs 2000] [--workers 2] [--concurrency 64] [--latency-ms 200]

1. Recreates a throwaway database (`routerops_bench_pipeline`) on this checkout's
   PostgreSQL and migrates it; uses Redis database 6 as the broker (nobody else's).
2. Starts the simulated provider (every completion takes --latency-ms) and
   `--workers` Celery worker processes (`-P threads -c --concurrency -Q celery,judge`).
3. Ingests --pairs cheap-routed decisions through `decision_ingest_batch` and samples
   them all (base rate 1) through `shadow_sample_batch`; the only judge is the
   pairwise LLM judge, so every pair costs three provider calls (shadow + two orders).
4. Runs the outbox relay (as beat would) and stops the clock when every pair is
   judged. Prints pairs/s, and exits non-zero if any pair failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "routerops_bench_pipeline"
BROKER_DB = 6


def services_env() -> dict[str, str]:
    values = {}
    path = ROOT / "var" / "services.env"
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "REDIS_URL")})
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    import psycopg

    env = services_env()
    admin_url = env["DATABASE_URL"]
    db_url = admin_url.rsplit("/", 1)[0] + f"/{DB_NAME}"
    broker = env["REDIS_URL"].rsplit("/", 1)[0] + f"/{BROKER_DB}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(
        DATABASE_URL=db_url, REDIS_URL=broker, DJANGO_SETTINGS_MODULE="router_ops.settings", LOG_LEVEL="WARNING"
    )
    sys.path.insert(0, str(ROOT))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    import redis
    from django.conf import settings

    settings.SHADOW_RELAY_NUDGE = False
    redis.Redis.from_url(broker).flushdb()

    from datetime import UTC, datetime

    from router_ops.applications.models import ModelEndpoint
    from router_ops.applications.services import application_create
    from router_ops.ingest.services import decision_ingest_batch
    from router_ops.ingest.validation import decision_validate
    from router_ops.judging.models import Judge
    from router_ops.judging.services import judge_prompt_default
    from router_ops.shadow.models import ShadowSample
    from router_ops.shadow.outbox import outbox_relay
    from router_ops.shadow.services import sampling_policy_update, shadow_sample_batch
    from router_ops.simulation.provider_server import start_in_thread

    server, base_url = start_in_thread(port=0, latency_ms=args.latency_ms)
    application, _ = application_create(slug="bench-pipeline", name="bench")
    for tier, model in (("cheap", "sim-cheap"), ("strong", "sim-strong"), ("judge", "sim-judge")):
        ModelEndpoint.objects.create(
            application=application,
            name=model,
            tier=tier,
            base_url=base_url,
            model=model,
            input_price_per_mtok=1,
            output_price_per_mtok=2,
            timeout_s=30,
            max_concurrency=1024,
        )
    Judge.objects.create(
        application=application,
        name="llm",
        kind="pairwise_llm",
        model="sim-judge",
        prompt_version=judge_prompt_default().version,
    )
    sampling_policy_update(application=application, base_rate=1.0, reverse_rate=1.0, daily_budget_usd=100000)

    workers = []
    worker_env = {**os.environ, "DB_CONN_MAX_AGE": "600"}
    for index in range(args.workers):
        workers.append(
            subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/celery"),
                    "-A",
                    "router_ops",
                    "worker",
                    "-P",
                    "threads",
                    "-c",
                    str(args.concurrency),
                    "-Q",
                    "celery,judge",
                    "-n",
                    f"bench{index}@%h",
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=worker_env,
            )
        )
    try:
        now = datetime.now(UTC).isoformat()
        items = [
            {
                "decision_id": f"bench-{i}",
                "occurred_at": now,
                "router_version": "v1",
                "unit_id": f"u{i % 97}",
                "routed_to": "cheap",
                "prompt": f"Summarise this note in two lines: meeting moved to {i} pm.",
                "response": f"Here is a complete answer to: {i}. [sim-grade:9]",
            }
            for i in range(args.pairs)
        ]
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            result = decision_ingest_batch(application=application, items=chunk)
            clean = [decision_validate(item, frozenset({"cheap", "strong", "judge"})) for item in chunk]
            shadow_sample_batch(
                application=application,
                decisions=clean,
                decision_ids=result.inserted_ids,
                segment_ids=[[] for _ in chunk],
            )
        time.sleep(2.0)  # let the workers connect before the clock starts
        started = time.perf_counter()
        open_rows = ShadowSample.objects.exclude(judge_status__in=["done", "failed"])
        while open_rows.exists():
            outbox_relay(batch_size=5000)
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        failed = (
            ShadowSample.objects.filter(judge_status="failed").count()
            + ShadowSample.objects.filter(status="failed").count()
        )
        calls = server.stats["completions"]
        print(
            f"pipeline: {args.pairs} pairs (shadow + 2 judge calls each, {calls} provider calls) in {elapsed:.1f}s "
            f"= {args.pairs / elapsed:.1f} pairs/s with {args.workers} workers × {args.concurrency} threads, "
            f"provider latency {args.latency_ms:.0f} ms; failed: {failed}"
        )
        return 1 if failed else 0
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        redis.Redis.from_url(broker).flushdb()


if __name__ == "__main__":
    sys.exit(main())
