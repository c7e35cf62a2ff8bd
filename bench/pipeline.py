#!/usr/bin/env python3
"""Shadow + judge pipeline throughput: pairs per second through real Celery workers.

Run (from the checkout, with var/services.env's PostgreSQL and Redis up):

    .venv/bin/python bench/pipeline.py                       # 3000 pairs, 2 workers × 8 threads, 200 ms
    .venv/bin/python bench/pipeline.py --rate 60 --pairs 1800  # steady 60 pairs/s: latency under load
    .venv/bin/python bench/pipeline.py --profile 300         # in-process cProfile of the two services

Options: --pairs N, --workers W, --concurrency C (threads per worker), --pool threads|prefork,
--latency-ms L (the provider's latency per completion), --rate R (0 = all pairs queued before
the clock starts: throughput; R > 0 = R pairs/s ingested while the clock runs: end-to-end
latency at that load), --keep-db. Run `uptime` next to it: the machine is shared, and the
number is only meaningful with the load average it was measured under.

1. Recreates a throwaway database (`routerops_bench_pipeline`) on this checkout's
   PostgreSQL and migrates it; uses Redis database 6 as the broker (nobody else's).
2. Starts the simulated provider as its own process (`manage.py run_simulated_provider
   --latency-ms L`) and W Celery worker processes
   (`celery -A router_ops worker -P <pool> -c C -Q celery,judge`, DB_CONN_MAX_AGE=600).
   Each message carries a batch of SHADOW_TASK_BATCH (20) sample ids whose provider
   calls run together on the thread's event loop, so a few threads keep hundreds of
   calls in flight.
3. Ingests N cheap-routed decisions through `decision_ingest_batch`, all sampled (base
   rate 1); the only judge is the pairwise LLM judge, so every pair costs three provider
   calls (the shadow, then the two judge orders side by side).
4. Runs the outbox relay every 100 ms (as the ingestion nudge and beat would) and stops
   the clock when every pair is judged.
5. Prints pairs, seconds, pairs/s, worker CPU per pair (user + system of the worker
   processes and their children, from /proc), p50/p99 end-to-end latency (the sample's
   created_at, i.e. its ingestion commit, to judged_at), the load average, and the
   configuration. Exits non-zero if any pair failed.

`--profile N` skips Celery: it runs `shadow_runs_execute` then `pair_judges_execute` for N
pairs in this process (the provider at 0 ms, in its own process), in batches of 20 on a
few threads as a `-P threads` worker would, and prints CPU per pair and the top of a
cProfile of the services.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "routerops_bench_pipeline"
BROKER_DB = 6
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (prefork pool processes)."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return total


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def provider_start(latency_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_simulated_provider", "--port", str(port), "--latency-ms", str(latency_ms)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{root}/healthz", timeout=1).raise_for_status()
            return proc, root
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the simulated provider did not start") from None
            time.sleep(0.1)


def provider_completions(root: str) -> int:
    return httpx.get(f"{root}/admin/stats", timeout=5).json()["completions"]


def items_make(start: int, count: int) -> list[dict]:
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    return [
        {
            "decision_id": f"bench-{i}",
            "occurred_at": now,
            "router_version": "v1",
            "unit_id": f"u{i % 97}",
            "routed_to": "cheap",
            "prompt": f"Summarise this note in two lines: meeting moved to {i} pm.",
            "response": f"Here is a complete answer to: {i}. [sim-grade:9]",
        }
        for i in range(start, start + count)
    ]


def ingest(application, start: int, count: int) -> None:
    from router_ops.ingest.services import decision_ingest_batch

    for offset in range(start, start + count, 1000):
        decision_ingest_batch(application=application, items=items_make(offset, min(1000, start + count - offset)))


def application_setup(base_url: str):
    from router_ops.applications.models import ModelEndpoint
    from router_ops.applications.services import application_create
    from router_ops.judging.models import Judge
    from router_ops.judging.services import judge_prompt_default
    from router_ops.shadow.services import sampling_policy_update

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
    return application


def profile_run(application, pairs: int, threads: int, batch: int = 20) -> None:
    import cProfile
    import pstats
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from router_ops.judging.services import pair_judges_execute
    from router_ops.shadow.models import ShadowSample
    from router_ops.shadow.services import shadow_runs_execute

    ingest(application, 0, pairs)
    ids = list(ShadowSample.objects.order_by("id").values_list("id", flat=True))
    # The judge task sent after each shadow batch goes to the bench's Redis DB; nobody consumes it.

    def in_thread(function):
        def run(batch_ids: list[int]) -> list:
            try:
                return list(function(sample_ids=batch_ids).values())
            finally:
                connection.close_if_unusable_or_obsolete()

        return run

    def batches(of: list[int]) -> list[list[int]]:
        return [of[i : i + batch] for i in range(0, len(of), batch)]

    def statuses(results: list[list]) -> list[str]:
        return sorted({o.status for outcomes in results for o in outcomes})

    warm = threads * batch
    profiler = cProfile.Profile()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(in_thread(shadow_runs_execute), batches(ids[:warm])))  # connections, caches, loops
        list(pool.map(in_thread(pair_judges_execute), batches(ids[:warm])))
        measured = ids[warm:]
        wall, cpu = time.perf_counter(), time.process_time()
        shadow_out = list(pool.map(in_thread(shadow_runs_execute), batches(measured)))
        shadow_wall, shadow_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        judge_out = list(pool.map(in_thread(pair_judges_execute), batches(measured)))
        judge_wall, judge_cpu = time.perf_counter() - wall, time.process_time() - cpu
    # The profile: one thread, so cProfile sees the whole path (it is per thread).
    from router_ops.judging.models import Judgment
    from router_ops.shadow.models import ShadowRun

    Judgment.objects.filter(sample_id__in=measured).delete()
    ShadowRun.objects.filter(sample_id__in=measured).delete()
    ShadowSample.objects.filter(id__in=measured).update(status="pending", judge_status="", verdict="")
    profiler.enable()
    for chunk in batches(measured[: min(400, len(measured))]):
        shadow_runs_execute(sample_ids=chunk)
        pair_judges_execute(sample_ids=chunk)
    profiler.disable()
    n = len(measured)
    print(
        f"profile: {n} pairs, {threads} threads, batches of {batch}, provider at 0 ms in its own process\n"
        f"  shadow_runs_execute: {shadow_cpu / n * 1000:.2f} ms CPU/pair, {n / shadow_wall:.0f}/s wall"
        f" ({statuses(shadow_out)})\n"
        f"  pair_judges_execute: {judge_cpu / n * 1000:.2f} ms CPU/pair, {n / judge_wall:.0f}/s wall"
        f" ({statuses(judge_out)})\n"
        f"  load average: {load_average()}"
    )
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def workers_start(args, env: dict) -> list[subprocess.Popen]:
    workers = []
    for index in range(args.workers):
        command = [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "router_ops",
            "--quiet",
            "worker",
            "-P",
            args.pool,
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
        ]
        workers.append(subprocess.Popen(command, cwd=ROOT, env=env))
    return workers


def workers_wait_ready(count: int, timeout: float = 60.0) -> None:
    from router_ops.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    raise RuntimeError("the workers did not answer a ping")


def pipeline_run(args, application, provider_root: str) -> int:
    from django.db.models import F

    from router_ops.shadow.models import ShadowSample
    from router_ops.shadow.outbox import outbox_relay

    env = {**os.environ, "DB_CONN_MAX_AGE": "600", "CELERY_REMOTE_CONTROL": "1"}  # for the ping below
    workers = workers_start(args, env)
    try:
        workers_wait_ready(args.workers)
        ingest(application, 0, 50)  # warm-up pairs: connections, caches, imports
        while ShadowSample.objects.exclude(judge_status__in=["done", "failed"]).exists():
            outbox_relay(batch_size=5000)
            time.sleep(0.1)
        warm = ShadowSample.objects.count()
        calls_before = provider_completions(provider_root)
        feeder = None
        if args.rate <= 0:
            ingest(application, warm, args.pairs)
        else:
            step = 0.2

            def feed() -> None:
                from django.db import connection

                sent, begun = 0, time.monotonic()
                while sent < args.pairs:
                    due = min(args.pairs, int((time.monotonic() - begun) * args.rate) + 1)
                    if due > sent:
                        ingest(application, warm + sent, due - sent)
                        sent = due
                    time.sleep(step)
                connection.close()

            feeder = threading.Thread(target=feed, daemon=True)
        cpu_before = sum(tree_cpu_seconds(w.pid) for w in workers)
        started = time.perf_counter()
        if feeder is not None:
            feeder.start()
        open_rows = ShadowSample.objects.exclude(judge_status__in=["done", "failed"])
        while (feeder is not None and feeder.is_alive()) or open_rows.exists():
            outbox_relay(batch_size=5000)
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = sum(tree_cpu_seconds(w.pid) for w in workers) - cpu_before
        measured = ShadowSample.objects.filter(id__gt=ShadowSample.objects.order_by("id")[warm - 1].id)
        failed = measured.filter(judge_status="failed").count() + measured.filter(status="failed").count()
        latencies = sorted(
            (judged - created).total_seconds()
            for created, judged in measured.filter(judge_status="done")
            .annotate(c=F("created_at"))
            .values_list("c", "judged_at")
        )
        calls = provider_completions(provider_root) - calls_before
        p50 = statistics.median(latencies) if latencies else float("nan")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
        mode = "backlog (all queued before the clock)" if args.rate <= 0 else f"steady {args.rate:g} pairs/s offered"
        print(
            f"pairs:            {args.pairs} ({calls} provider calls; failed: {failed})\n"
            f"seconds:          {elapsed:.1f}\n"
            f"pairs/s:          {args.pairs / elapsed:.1f}\n"
            f"worker CPU/pair:  {cpu / args.pairs * 1000:.1f} ms ({cpu:.1f} s over {args.workers} workers)\n"
            f"latency p50/p99:  {p50:.2f} s / {p99:.2f} s (ingestion commit → judged; {mode})\n"
            f"load average:     {load_average()} (at the end; {os.cpu_count()} cores)\n"
            f"configuration:    {args.workers} workers × -P {args.pool} -c {args.concurrency}, "
            f"provider {args.latency_ms:g} ms in its own process, 1 pairwise LLM judge (3 calls per pair)"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "gevent", "eventlet"])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rate", type=float, default=0.0, help="pairs/s ingested while measuring; 0 = backlog")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N pairs in-process instead")
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

    settings.SHADOW_RELAY_NUDGE = False  # the bench runs the relay itself
    redis.Redis.from_url(broker).flushdb()
    provider, provider_root = provider_start(0.0 if args.profile else args.latency_ms)
    try:
        application = application_setup(provider_root + "/v1")
        if args.profile:
            profile_run(application, args.profile, args.concurrency)
            return 0
        return pipeline_run(args, application, provider_root)
    finally:
        provider.terminate()
        provider.wait(timeout=10)
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        redis.Redis.from_url(broker).flushdb()


if __name__ == "__main__":
    sys.exit(main())
