#!/usr/bin/env python3
"""Sustained load: ingestion at a fixed rate for minutes while workers shadow.

    .venv/bin/python bench/load.py [--rate 2000] [--batch 100] [--threads 4] [--duration 600]
                                   [--interval 30] [--workers 2] [--base-rate 0.02] [--keep]

Starts the private stack of the fault suite (tests/faults/harness.py: its own PostgreSQL
and Redis on free ports in a temporary folder, gunicorn with --web-workers, --workers
Celery workers with 8 threads on both queues, beat, the simulated provider at 50 ms),
creates an application that samples --base-rate of the traffic, and sends --rate
decisions/s in batches of --batch from --threads RouterOpsClient threads for --duration
seconds. Every --interval seconds it prints:

    API latency p50/p99 (per request, from the client), throughput (decisions acknowledged/s),
    outbox lag (age of the oldest pending/enqueued shadow job, and how many are open),
    worker backlog (LLEN of the Redis queues `celery` and `judge`),
    RSS of the web (gunicorn master + workers) and of each worker process, from /proc.

At the end a summary: whether memory stayed flat (last RSS within 25 % + 30 MB of the
RSS after warm-up), whether the backlog stayed bounded (no growth over the second half),
and whether every acknowledged decision is stored. Ingestion throttling is lifted
(THROTTLE_INGEST) for the private stack. Only 127.0.0.1; stops by itself.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router_ops.simulation.scenario import Scenario  # noqa: E402
from router_ops.simulation.traffic import decisions_build  # noqa: E402
from routerops_client import RouterOpsClient, RouterOpsError  # noqa: E402
from tests.faults.harness import Stack  # noqa: E402


class Sender(threading.Thread):
    """One client thread: batches at rate/threads per second, each latency recorded."""

    def __init__(self, index: int, url: str, key: str, templates: list[dict], *, rate: float, batch: int, until: float):
        super().__init__(name=f"sender{index}", daemon=True)
        self.index, self.templates, self.rate, self.batch, self.until = index, templates, rate, batch, until
        self.client = RouterOpsClient(url, key, batch_size=batch, timeout=30, max_retries=8, backoff_cap=2.0)
        self.lock = threading.Lock()
        self.samples: list[tuple[float, float, int]] = []  # (finished at, seconds, decisions acked)
        self.errors = 0
        self.acked = 0

    def run(self) -> None:
        interval = self.batch / self.rate
        next_at = time.monotonic()
        n = 0
        now_text = datetime.now(UTC).isoformat()
        while time.monotonic() < self.until:
            items = []
            for _ in range(self.batch):
                template = self.templates[n % len(self.templates)]
                items.append({**template, "decision_id": f"load-{self.index}-{n}", "occurred_at": now_text})
                n += 1
            started = time.perf_counter()
            try:
                summary = self.client.send_decisions(items)
                acked = summary.accepted + summary.duplicates
            except RouterOpsError as exc:
                acked = 0
                with self.lock:
                    self.errors += 1
                    if self.errors == 1:
                        print(f"sender {self.index}: {exc} (status {exc.status}, code {exc.code})", flush=True)
            finished = time.monotonic()
            with self.lock:
                self.samples.append((finished, time.perf_counter() - started, acked))
                self.acked += acked
            if n % 2000 == 0:
                now_text = datetime.now(UTC).isoformat()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -5 * interval:
                next_at = time.monotonic()  # fell far behind: do not burst to catch up
        self.client.close()

    def window(self, since: float) -> list[tuple[float, float, int]]:
        with self.lock:
            return [s for s in self.samples if s[0] >= since]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="decisions per second (all threads)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between reports")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--base-rate", type=float, default=0.02, help="sampling base rate")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulated provider latency")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    t0 = time.monotonic()
    print(f"starting the private stack ({args.web_workers} web, {args.workers} workers)…", flush=True)
    stack = Stack.start(
        workers=args.workers,
        web_workers=args.web_workers,
        provider_latency_ms=args.latency_ms,
        extra_env={"THROTTLE_INGEST": "10000000/min"},
    )
    try:
        app = stack.application_create(
            slug="load",
            budget="100000",
            base_rate=args.base_rate,
            divergence_rate=args.base_rate,
            reverse_rate=args.base_rate / 2,
        )
        templates = decisions_build(Scenario(seed=5), start_index=0, count=2000, occurred_at=datetime.now(UTC))
        print(
            f"stack up in {time.monotonic() - t0:.0f}s; load: {args.rate:.0f} decisions/s in batches of "
            f"{args.batch} from {args.threads} threads for {args.duration:.0f}s; sampling base rate {args.base_rate}",
            flush=True,
        )
        until = time.monotonic() + args.duration
        senders = [
            Sender(
                i, stack.web_url, app.api_key, templates, rate=args.rate / args.threads, batch=args.batch, until=until
            )
            for i in range(args.threads)
        ]
        started = time.monotonic()
        for sender in senders:
            sender.start()
        header = (
            f"{'t(s)':>6} {'p50 ms':>8} {'p99 ms':>8} {'dec/s':>8} {'errors':>6} {'outbox lag s':>12} "
            f"{'open jobs':>9} {'celery q':>8} {'judge q':>8} {'web MB':>8} {'workers MB':>16}"
        )
        print(header, flush=True)
        rows = []
        last = started
        while True:
            remaining = until - time.monotonic()
            time.sleep(max(0.0, min(args.interval, remaining + 0.5)))
            now = time.monotonic()
            window = [s for sender in senders for s in sender.window(last)]
            latencies = [s[1] * 1000 for s in window]
            acked = sum(s[2] for s in window)
            lag, open_jobs = stack.sql(
                "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0), count(*) FROM shadow_shadowsample "
                "WHERE application_id = %s AND status IN ('pending', 'enqueued')",
                [app.id],
            )[0]
            queues = stack.redis_llen("celery", "judge")
            web = stack.rss_mb("web")
            workers = [stack.rss_mb(name) for name in stack.workers]
            row = {
                "t": now - started,
                "p50": pct(latencies, 0.5),
                "p99": pct(latencies, 0.99),
                "rate": acked / (now - last),
                "errors": sum(s.errors for s in senders),
                "lag": float(lag),
                "open": open_jobs,
                "celery": queues["celery"],
                "judge": queues["judge"],
                "web": web,
                "workers": workers,
            }
            rows.append(row)
            print(
                f"{row['t']:6.0f} {row['p50']:8.1f} {row['p99']:8.1f} {row['rate']:8.0f} {row['errors']:6d} "
                f"{row['lag']:12.1f} {row['open']:9d} {row['celery']:8d} {row['judge']:8d} {web:8.0f} "
                f"{'/'.join(f'{w:.0f}' for w in workers):>16}",
                flush=True,
            )
            last = now
            if now >= until:
                break
        for sender in senders:
            sender.join(timeout=60)
        total_acked = sum(s.acked for s in senders)
        stored = stack.sql("SELECT count(*) FROM ingest_decision WHERE application_id = %s", [app.id])[0][0]
        sampled = stack.sql("SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s", [app.id])[0][0]
        done = stack.sql(
            "SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s AND judge_status IN "
            "('done', 'failed') OR (application_id = %s AND status = 'failed')",
            [app.id, app.id],
        )[0][0]
        all_lat = [s[1] * 1000 for sender in senders for s in sender.samples]
        elapsed = rows[-1]["t"]

        base = rows[1] if len(rows) > 2 else rows[0]  # after warm-up
        end = rows[-1]

        def flat(before: float, after: float) -> bool:
            return after <= before * 1.25 + 30

        web_flat = flat(base["web"], end["web"])
        workers_flat = all(flat(b, e) for b, e in zip(base["workers"], end["workers"], strict=False))
        half = rows[len(rows) // 2 :]
        first = rows[: len(rows) // 2] or rows
        backlog = [r["celery"] + r["judge"] + r["open"] for r in rows]
        second_half_max = max(r["celery"] + r["judge"] + r["open"] for r in half)
        first_half_max = max(r["celery"] + r["judge"] + r["open"] for r in first)
        bounded = second_half_max <= max(first_half_max * 1.5, 200) and max(r["lag"] for r in half) < 60
        print()
        print("summary")
        print(
            f"  decisions acknowledged {total_acked} in {elapsed:.0f}s = {total_acked / elapsed:.0f}/s "
            f"(target {args.rate:.0f}/s); stored {stored}; request errors {sum(s.errors for s in senders)}"
        )
        print(
            f"  API latency over the run: p50 {pct(all_lat, 0.5):.1f} ms, p99 {pct(all_lat, 0.99):.1f} ms, "
            f"max {max(all_lat):.1f} ms, mean {statistics.fmean(all_lat):.1f} ms"
        )
        print(
            f"  shadow samples {sampled} ({sampled / max(stored, 1):.1%} of decisions); finished (judged or "
            f"failed) at the end {done}"
        )
        print(
            f"  memory: web {base['web']:.0f} → {end['web']:.0f} MB, workers "
            f"{'/'.join(f'{w:.0f}' for w in base['workers'])} → {'/'.join(f'{w:.0f}' for w in end['workers'])} MB: "
            f"{'flat' if web_flat and workers_flat else 'GROWING'}"
        )
        print(
            f"  backlog (open jobs + queued messages): max first half {first_half_max}, max second half "
            f"{second_half_max}, last {backlog[-1]}; outbox lag max {max(r['lag'] for r in rows):.1f}s: "
            f"{'bounded' if bounded else 'GROWING'}"
        )
        ok = (
            total_acked > 0
            and not any(s.errors for s in senders)
            and stored >= total_acked
            and web_flat
            and workers_flat
            and bounded
        )
        print(f"  RESULT: {'OK' if ok else 'CHECK'}")
        return 0 if ok else 1
    finally:
        stack.stop(keep_dir=args.keep)


if __name__ == "__main__":
    sys.exit(main())
