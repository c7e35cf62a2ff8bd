"""End to end with real parts: Postgres, Redis, a Celery worker (thread pool, both
queues) and the simulated provider over HTTP. Decisions are ingested, sampled per
policy, relayed through the outbox, shadowed, judged, and the records checked.

The worker and the producers use Redis database 7 (not the checkout's 0), so no other
worker on this machine consumes these tasks.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.db import connection
from kombu import pools

from router_ops.celery import app
from router_ops.judging.models import Judgment
from router_ops.shadow import sampling
from router_ops.shadow.models import BudgetDay, ShadowRun, ShadowSample
from router_ops.shadow.outbox import TASK_JUDGE_PAIR, TASK_SHADOW_RUN, outbox_relay
from router_ops.simulation.scenario import answer_is_good
from tests.shadow.conftest import (
    endpoints_create,
    fault_set,
    ingest_and_sample,
    judges_create,
    policy_set,
    sim_decisions,
)

pytestmark = pytest.mark.slow


def _test_broker() -> str:
    base = django_settings.REDIS_URL.rsplit("/", 1)[0]
    return f"{base}/7"


def _broker_use(url: str) -> None:
    """Point the project's Celery app (producers and the test worker) at `url`."""
    app.conf.broker_url = url
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()  # kombu's process-wide pools would hand back the closed one


@pytest.fixture
def worker(settings):
    settings.SHADOW_RELAY_NUDGE = True
    url = _test_broker()
    redis.Redis.from_url(url).flushdb()
    _broker_use(url)
    with start_worker(
        app, pool="threads", concurrency=16, perform_ping_check=False, queues=["celery", "judge"], loglevel="WARNING"
    ) as w:
        yield w
    redis.Redis.from_url(url).flushdb()
    # The worker's threads kept their database connections (CELERY_DB_REUSE_MAX); the
    # threads are gone, so end their sessions, or the test database cannot be dropped.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def wait_until(predicate, timeout: float = 60.0) -> None:
    """Poll, running the relay the way beat would, until the predicate holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        outbox_relay()
        time.sleep(0.2)
    states = list(ShadowSample.objects.values_list("status", "judge_status", "error", "judge_error"))
    raise AssertionError(f"timed out waiting for the pipeline: {states}")


def expected_verdict(sample: ShadowSample) -> str:
    primary = answer_is_good(sample.decision.prompt, sample.primary_tier)
    shadow = answer_is_good(sample.decision.prompt, sample.shadow_tier)
    return "equivalent" if primary == shadow else "primary_better" if primary else "shadow_better"


@pytest.mark.django_db(transaction=True)
def test_ingested_decisions_are_sampled_shadowed_and_judged(owner, sim, worker):
    _, base_url = sim
    eps = endpoints_create(owner.application, base_url)
    judges_create(owner.application, eps["judge"])
    policy_set(owner.application, base_rate=0.5, reverse_rate=0.3, divergence_rate=1.0, min_judged_per_segment=0)
    items = sim_decisions(120)
    ids, sampled = ingest_and_sample(owner.application, items)

    # Sampled per policy: exactly the decisions whose draw fell under their π.
    state = sampling.SamplingState(base_rate=0.5, divergence_rate=1.0, reverse_rate=0.3)
    predicted = {
        d["decision_id"]
        for d in items
        if sampling.sample_decide(
            state,
            application_id=owner.application.id,
            decision_id=d["decision_id"],
            routed_to=d["routed_to"],
            segment_ids=[],
            shadow_decisions=d["shadow_decisions"],
        )
    }
    assert set(ShadowSample.objects.values_list("decision__decision_id", flat=True)) == predicted
    assert sampled == len(predicted) > 30
    assert ShadowSample.objects.filter(reason="divergence").exists()
    assert ShadowSample.objects.filter(direction="strong_to_cheap").exists()

    wait_until(lambda: not ShadowSample.objects.exclude(judge_status__in=["done", "failed"]).exists())

    samples = list(ShadowSample.objects.select_related("decision", "run"))
    assert {s.status for s in samples} == {"done"} and {s.judge_status for s in samples} == {"done"}
    assert {s.id: s.verdict for s in samples} == {s.id: expected_verdict(s) for s in samples}
    assert ShadowRun.objects.count() == len(samples)
    for s in samples:
        assert s.run.model == ("sim-strong" if s.shadow_tier == "strong" else "sim-cheap")
        assert s.run.cost_usd > 0 and s.run.latency_ms > 0
    llm = Judgment.objects.filter(judge_kind="pairwise_llm")
    assert llm.count() == sum(1 for s in samples if s.verdict != "equivalent") > 0
    assert all(j.status == "ok" and j.swap_consistent is True for j in llm)
    assert all(j.cost_usd > 0 and j.latency_ms > 0 and len(j.replies) == 2 for j in llm)
    day = BudgetDay.objects.get(application=owner.application)
    assert day.reserved_usd == 0
    assert day.shadow_spent_usd == sum(r.cost_usd for r in ShadowRun.objects.all())
    assert day.judge_spent_usd == sum(j.cost_usd for j in Judgment.objects.all()) > 0


@pytest.mark.django_db(transaction=True)
def test_a_task_delivered_twice_makes_one_run_and_one_judgment(owner, sim, worker):
    _, base_url = sim
    eps = endpoints_create(owner.application, base_url)
    judges_create(owner.application, eps["judge"])
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ingest_and_sample(owner.application, sim_decisions(8))
    ids = list(ShadowSample.objects.values_list("id", flat=True))
    # A redelivery (the same batch twice, nothing in the outbox marked), an overlapping
    # batch, and a single id as messages carried before batching.
    for batch in (ids, ids, ids[:4], ids[0]):
        app.send_task(TASK_SHADOW_RUN, args=[batch], queue="celery")
    wait_until(lambda: ShadowSample.objects.filter(judge_status="done").count() == len(ids))
    for batch in (ids, ids, ids[2:6], ids[-1]):
        app.send_task(TASK_JUDGE_PAIR, args=[batch], queue="judge")
    time.sleep(1.5)
    assert ShadowRun.objects.count() == len(ids)
    per_sample = Judgment.objects.values_list("sample_id", "judge_id")
    assert len(per_sample) == len(set(per_sample)) == len(ids)  # one decisive judgment each
    assert set(ShadowSample.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_provider_500_is_retried_with_backoff_then_marked_failed(owner, sim, worker, settings):
    server, base_url = sim
    settings.SHADOW_PROVIDER_ATTEMPTS = 2
    settings.SHADOW_TASK_MAX_RETRIES = 2
    settings.SHADOW_RETRY_BASE_S = 0.3
    endpoints_create(owner.application, base_url)
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    fault_set(base_url, error_rate=1.0, status=500)
    server.stats_reset()
    ingest_and_sample(owner.application, [d for d in sim_decisions(10) if d["routed_to"] == "cheap"][:1])
    sample = ShadowSample.objects.get()
    wait_until(lambda: ShadowSample.objects.filter(status="failed").exists(), timeout=30)
    sample.refresh_from_db()
    assert sample.error == "provider: HTTP 500: simulated 500 (gave up after 2 attempts)"
    assert sample.attempts == 3  # the first delivery and two retries
    assert server.stats["by_status"] == {"500": 6}  # 3 deliveries × 2 HTTP attempts
    assert not ShadowRun.objects.exists()
    assert BudgetDay.objects.get().spent_usd == Decimal(0)


@pytest.mark.django_db(transaction=True)
def test_provider_429_honours_retry_after_then_succeeds(owner, sim, worker, settings):
    server, base_url = sim
    settings.SHADOW_PROVIDER_ATTEMPTS = 1
    settings.SHADOW_RETRY_BASE_S = 0.1
    endpoints_create(owner.application, base_url)
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    fault_set(base_url, error_rate=1.0, status=429, retry_after=1, for_requests=1)
    server.stats_reset()
    ingest_and_sample(owner.application, [d for d in sim_decisions(10) if d["routed_to"] == "cheap"][:1])
    started = time.monotonic()
    wait_until(lambda: ShadowSample.objects.filter(status="done").exists(), timeout=30)
    assert time.monotonic() - started >= 1.0  # waited as long as Retry-After asked
    sample = ShadowSample.objects.get()
    assert sample.attempts == 2
    assert server.stats["by_status"]["429"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_relay_sends_jobs_in_batches(owner, settings):
    settings.SHADOW_TASK_BATCH = 20
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ingest_and_sample(owner.application, sim_decisions(45))
    url = _test_broker()
    client = redis.Redis.from_url(url)
    client.flushdb()
    _broker_use(url)
    try:
        result = outbox_relay()
        messages = [json.loads(raw) for raw in reversed(client.lrange("celery", 0, -1))]  # LPUSH: newest first
    finally:
        client.flushdb()
    assert result.shadow_sent == 45
    assert [m["headers"]["task"] for m in messages] == [TASK_SHADOW_RUN] * 3
    batches = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]
    assert [len(b) for b in batches] == [20, 20, 5]
    assert sorted(i for b in batches for i in b) == sorted(ShadowSample.objects.values_list("id", flat=True))
    assert set(ShadowSample.objects.values_list("status", flat=True)) == {"enqueued"}
