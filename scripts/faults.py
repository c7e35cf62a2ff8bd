#!/usr/bin/env python3
"""Fault-injection suite (`make test-faults`): real processes, real faults, counts after.

    .venv/bin/python scripts/faults.py [--rate 40] [--budget 2.5] [--phase 20] [--drain-timeout 120] [--keep]

1. Starts a private stack (tests/faults/harness.py): its own PostgreSQL cluster and
   Redis on free ports in a temporary folder (scripts/services.sh with ROUTEROPS_VAR_DIR),
   gunicorn (2 workers), 2 Celery workers (threads × 8, queues celery + judge) each under
   scripts/respawn.py (a restarting supervisor, as in production), beat, and the
   simulated provider (50 ms latency). Nothing of the checkout's own services is touched.
2. Creates an application: base rate 0.3 (+ divergence 0.5, reverse 0.05), a pairwise
   LLM judge behind a normalised-match judge, and a daily budget that runs out partway.
3. A producer sends decisions through RouterOpsClient at --rate/s for the whole run,
   and every shadow.run / judging.judge_pair message is published a second time (e).
4. Faults, one after another, --phase seconds apart:
   (a) SIGKILL a worker's celery process while provider calls are in flight; its
       supervisor starts it again;
   (b) stop Redis for 8 s, start it again (empty: no persistence); a worker that exits
       on the outage (kombu can) is restarted by its supervisor;
   (c) restart PostgreSQL (fast shutdown, start);
   (d) the provider answers 503 (Retry-After 1), then 429, then 500 for a while.
5. Stops the producer, waits (bounded) for the outbox to drain, then counts from the
   database and the producer's records and prints the table, with the restarts the
   supervisors made (every worker must be up at the end). Exit 1 if a check fails.

Every wait is bounded; the whole run takes about 2.5 minutes; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import Check, Duplicator, Producer, Report, Stack, wait_for  # noqa: E402

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[faults {time.monotonic() - T0:6.1f}s] {message}", flush=True)


def restarts_summary(restarts: dict[str, list[str]]) -> str:
    """`worker1: killed by SIGKILL, exit 1; worker2: exit 1` (or `none`)."""
    return "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in restarts.items() if reasons) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="decisions per second sent by the producer")
    parser.add_argument("--budget", default="0.7", help="daily shadow budget (USD); spent partway through the run")
    parser.add_argument("--phase", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) after the run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(name)s %(levelname)s %(message)s")

    say("starting the private stack (PostgreSQL, Redis, provider, 2 workers, beat, gunicorn ×2)")
    stack = Stack.start(workers=2, web_workers=2, provider_latency_ms=50)
    say(f"stack up in {stack.dir}: web :{stack.web_port}, pg :{stack.pg_port}, redis :{stack.redis_port}")
    producer = duplicator = None
    try:
        app = stack.application_create(slug="faults", budget=args.budget)
        producer = Producer(stack, app, rate=args.rate, batch=20)
        duplicator = Duplicator(stack, app)
        producer.start()
        duplicator.start()
        say(f"producer at {args.rate:.0f} decisions/s; duplicator publishing every message twice (e)")
        time.sleep(args.phase)

        # (a) SIGKILL a worker mid-call: calls slowed to 3 s for a moment so that the
        # worker certainly has some in flight when it dies. Its supervisor restarts it.
        running_before = stack.running_ids(app)
        stack.provider_fault(latency_ms=3000, for_seconds=6)
        wait_for(lambda: stack.provider_stats()["in_flight"] >= 3, 30, "provider calls in flight", interval=0.05)
        victim = stack.workers[0]
        in_flight = stack.provider_stats()["in_flight"]
        running = stack.running_ids(app) - running_before
        pid = stack.worker_kill(victim)
        killed_at = time.monotonic()
        say(
            f"(a) SIGKILLed {victim}'s celery process (pid {pid}) with {in_flight} provider call(s) in flight, "
            f"{len(running)} shadow job(s) running"
        )
        new_pid = wait_for(lambda: stack.worker_pid(victim), 30, f"the supervisor to restart {victim}")
        say(f"(a) its supervisor started it again (pid {new_pid}) {time.monotonic() - killed_at:.1f}s later")
        time.sleep(args.phase)

        # (b) Redis down and up again.
        stack.services("redis-stop")
        say("(b) Redis stopped")
        time.sleep(8)
        stack.services("redis-start")
        say("(b) Redis started again (empty)")
        time.sleep(args.phase)
        say(f"(b) worker restarts so far: {restarts_summary(stack.worker_restarts())}")

        # (c) PostgreSQL restart.
        started = time.monotonic()
        stack.services("pg-restart")
        say(f"(c) PostgreSQL restarted (fast shutdown + start, {time.monotonic() - started:.1f}s)")
        time.sleep(args.phase)

        # (d) provider errors.
        for status, seconds in ((503, 6), (429, 6), (500, 6)):
            stack.provider_fault(error_rate=0.8, status=status, retry_after=1, for_seconds=seconds)
            say(f"(d) provider answers {status} to 80% of calls for {seconds}s")
            time.sleep(seconds)
        stack.provider_fault_clear()
        time.sleep(args.phase / 2)

        producer.stop(give_up_after=30)
        producer.join(timeout=60)
        say(f"producer stopped: {len(producer.acked)} decisions acknowledged")
        try:
            took = stack.drain(app, timeout=args.drain_timeout)
            say(f"outbox drained in {took:.1f}s")
        except TimeoutError as exc:
            say(f"NOT DRAINED: {exc}")
        duplicator.stop()
        duplicator.join(timeout=10)
        time.sleep(1.0)  # let the last duplicate copies be consumed (they must be no-ops)

        report = Report.collect(stack, app, producer)
        restarts = stack.worker_restarts()
        killed = sum(reason == "killed by SIGKILL" for reasons in restarts.values() for reason in reasons)
        report.rows.append(
            Check(
                "worker restarts by the supervisor",
                ">= 1 (the SIGKILL of a)",
                str(sum(map(len, restarts.values()))),
                killed >= 1,
            )
        )
        up = [name for name in stack.workers if stack.worker_pid(name)]
        report.rows.append(
            Check("workers up at the end", str(len(stack.workers)), str(len(up)), len(up) == len(stack.workers))
        )
        report.info["worker restarts"] = restarts_summary(restarts)
        stats = stack.provider_stats()
        report.info["duplicate copies published (e)"] = (
            f"shadow.run {len(duplicator.shadow_sent)}, judge_pair {len(duplicator.judge_sent)}, "
            f"send errors while Redis was down {duplicator.send_errors}"
        )
        report.info["provider"] = f"requests {stats['requests']}, by status {stats['by_status']}"
        report.info["queues left"] = stack.redis_llen("celery", "judge")
        report.print()
        return 0 if report.ok else 1
    finally:
        for thread in (producer, duplicator):
            if thread is not None:
                thread.stop()
        say("stopping the private stack" + (f" (logs kept in {stack.logs})" if args.keep else ""))
        stack.stop(keep_dir=args.keep)
        say(f"done in {time.monotonic() - T0:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
