"""Failure tests of issue 4 with real processes (tests/faults/harness.py).

One private stack for the module — its own PostgreSQL and Redis on free ports in a
temporary folder, gunicorn, a Celery worker (threads, both queues) under its restarting
supervisor, beat and the simulated provider — and one application per test. The
checkout's own services are never touched. Recovery clocks are shortened by
tests/faults/settings.py (outbox lease 15 s instead of 600 s, broker visibility timeout
30 s), so every wait here is bounded well under a minute.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Producer, Report, Stack, wait_for

pytestmark = pytest.mark.slow

DRAIN_TIMEOUT_S = 45


@pytest.fixture(scope="module")
def stack():
    stack = Stack.start(workers=1, web_workers=1, provider_latency_ms=20)
    yield stack
    stack.stop()


def _assert_all_shadowed_once(stack: Stack, app, producer: Producer | None = None) -> Report:
    report = Report.collect(stack, app, producer)
    failed = [row for row in report.rows if not row.ok]
    assert not failed, "\n".join(f"{r.name}: expected {r.left}, got {r.right}" for r in failed) + f"\n{report.info}"
    status = dict(
        stack.sql(
            "SELECT status || '/' || judge_status, count(*) FROM shadow_shadowsample WHERE application_id = %s GROUP BY 1",
            [app.id],
        )
    )
    assert set(status) == {"done/done"}, status  # shadowed and judged: nothing failed, nothing stuck
    return report


def test_redis_stopped_during_ingestion_then_restarted_every_sampled_decision_is_shadowed(stack):
    app = stack.application_create(slug="redis-outage", base_rate=0.5)
    producer = Producer(stack, app, rate=100, batch=25, seed=21)
    producer.start()
    try:
        time.sleep(3)
        stack.services("redis-stop")
        acked_before, requests_before = len(producer.acked), len(producer.latencies)
        time.sleep(5)  # ingestion goes on without a broker
        acked_during = len(producer.acked) - acked_before
        slow = producer.latencies[requests_before:]
        stack.services("redis-start")  # empty: whatever was queued is gone
        time.sleep(2)
    finally:
        producer.stop(give_up_after=20)
        producer.join(timeout=40)
    assert acked_during > 0, "ingestion must keep answering 2xx while Redis is down"
    print(f"while Redis was down: {acked_during} decisions acknowledged in 5 s; request seconds {slow}")
    sampled = stack.sql("SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s", [app.id])[0][0]
    assert sampled > 0.3 * len(producer.acked)
    stack.drain(app, timeout=DRAIN_TIMEOUT_S)
    _assert_all_shadowed_once(stack, app, producer)
    (runs,) = stack.sql(
        "SELECT count(*) FROM shadow_shadowrun r JOIN shadow_shadowsample s ON s.id = r.sample_id "
        "WHERE s.application_id = %s",
        [app.id],
    )[0]
    assert runs == sampled


def test_worker_killed_mid_call_job_completes_after_restart_without_duplicate_judgment(stack):
    app = stack.application_create(slug="worker-kill", base_rate=1.0, reverse_rate=1.0)
    stack.provider_fault(latency_ms=4000, for_seconds=6)  # long calls: the kill lands mid-call
    producer = Producer(stack, app, rate=40, batch=40, seed=31)
    producer.start()
    time.sleep(0.3)
    producer.stop(give_up_after=20)  # one batch of 40 (the next is due in 1 s), all sampled
    producer.join(timeout=30)
    assert len(producer.acked) == 40
    wait_for(lambda: stack.provider_stats()["in_flight"] >= 5, 30, "shadow calls in flight", interval=0.05)
    running = {
        row[0]
        for row in stack.sql(
            "SELECT id FROM shadow_shadowsample WHERE application_id = %s AND status = 'running'", [app.id]
        )
    }
    assert running, "the worker must be mid-call when it is killed"
    worker = stack.workers[0]
    stack.worker_kill(worker)
    stack.provider_fault_clear()
    wait_for(lambda: stack.worker_pid(worker), 30, "the supervisor to restart the worker")
    stack.drain(app, timeout=DRAIN_TIMEOUT_S)
    _assert_all_shadowed_once(stack, app, producer)
    rows = stack.sql(
        "SELECT s.id, s.attempts, count(DISTINCT r.id), count(j.id), count(DISTINCT j.judge_id) "
        "FROM shadow_shadowsample s LEFT JOIN shadow_shadowrun r ON r.sample_id = s.id "
        "LEFT JOIN judging_judgment j ON j.sample_id = s.id WHERE s.id = ANY(%s) GROUP BY s.id",
        [list(running)],
    )
    for sample_id, attempts, runs, judgments, judges in rows:
        assert attempts >= 2, f"sample {sample_id} was running when the worker died: it must have been run again"
        assert runs == 1, f"sample {sample_id} has {runs} shadow runs"
        assert judgments == judges >= 1, f"sample {sample_id}: {judgments} judgments by {judges} judges"
