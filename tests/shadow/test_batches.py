"""A task runs a batch of jobs: the batch's provider calls are in flight together, and a
transient failure retries only the jobs it hit. Real database, simulated provider over HTTP."""

from __future__ import annotations

import pytest

from router_ops.judging.models import Judgment
from router_ops.judging.services import pair_judges_execute
from router_ops.shadow.models import BudgetDay, ShadowRun, ShadowSample
from router_ops.shadow.services import shadow_runs_execute
from tests.shadow.conftest import (
    endpoints_create,
    fault_set,
    ingest_and_sample,
    judges_create,
    policy_set,
    sim_decisions,
)


@pytest.fixture
def pairs(owner, sim):
    """20 sampled decisions of an application with a normalised-match and a pairwise LLM judge."""
    server, base_url = sim
    eps = endpoints_create(owner.application, base_url)
    judges_create(owner.application, eps["judge"])
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ingest_and_sample(owner.application, sim_decisions(20))
    return list(ShadowSample.objects.order_by("id").values_list("id", flat=True))


def budget_settled(wasted_judge_usd=0) -> None:
    day = BudgetDay.objects.get()
    assert day.reserved_usd == 0
    assert set(ShadowSample.objects.values_list("shadow_reserved_usd", "judge_reserved_usd")) == {(0, 0)}
    assert day.shadow_spent_usd == sum(r.cost_usd for r in ShadowRun.objects.all())
    assert day.judge_spent_usd == sum(j.cost_usd for j in Judgment.objects.all()) + wasted_judge_usd


@pytest.mark.django_db
def test_a_batch_has_all_its_calls_in_flight_at_once(pairs, sim):
    server, base_url = sim
    fault_set(base_url, latency_ms=300)  # slow enough that every call overlaps the others
    server.stats_reset()
    outcomes = shadow_runs_execute(sample_ids=pairs)
    assert {o.status for o in outcomes.values()} == {"done"}
    assert server.stats["max_in_flight"] == len(pairs)  # one at a time would give 1

    server.stats_reset()
    outcomes = pair_judges_execute(sample_ids=pairs)
    assert {o.status for o in outcomes.values()} == {"done"}
    llm = Judgment.objects.filter(judge_kind="pairwise_llm", status="ok").count()
    assert llm > 1
    # Both orders of every pair the LLM judge had to decide, all at once.
    assert server.stats["max_in_flight"] == server.stats["completions"] == 2 * llm
    budget_settled()


@pytest.mark.django_db
def test_a_transient_failure_retries_only_the_jobs_it_hit(pairs, sim, settings):
    _, base_url = sim
    settings.SHADOW_PROVIDER_ATTEMPTS = 1  # no quick retry inside the adapter
    fault_set(base_url, error_rate=1.0, status=429, retry_after=2, for_requests=3)
    outcomes = shadow_runs_execute(sample_ids=pairs, max_attempts=2)
    retried = sorted(sample_id for sample_id, o in outcomes.items() if o.status == "retry")
    assert len(retried) == 3
    assert all(outcomes[i].retry_after == 2 and outcomes[i].attempt == 1 for i in retried)
    assert sum(o.status == "done" for o in outcomes.values()) == len(pairs) - 3
    rows = ShadowSample.objects.filter(pk__in=retried)
    assert set(rows.values_list("status", flat=True)) == {"enqueued"}
    assert all("429" in error for error in rows.values_list("error", flat=True))

    # The retry message carries only those three: they run again and finish.
    again = shadow_runs_execute(sample_ids=pairs, max_attempts=2)
    assert sorted(i for i, o in again.items() if o.status == "done") == retried
    assert {again[i].status for i in set(pairs) - set(retried)} == {"skipped"}
    assert set(ShadowSample.objects.filter(pk__in=retried).values_list("attempts", flat=True)) == {2}
    assert ShadowRun.objects.count() == len(pairs)

    # The same for judging: the pair whose call failed is retried, its budget released.
    fault_set(base_url, error_rate=1.0, status=500, for_requests=1)
    judged = pair_judges_execute(sample_ids=pairs, max_attempts=2)
    assert sum(o.status == "retry" for o in judged.values()) == 1
    (pending,) = [i for i, o in judged.items() if o.status == "retry"]
    assert ShadowSample.objects.get(pk=pending).judge_status == "enqueued"
    assert not Judgment.objects.filter(sample_id=pending, judge_kind="pairwise_llm").exists()
    assert pair_judges_execute(sample_ids=[pending], max_attempts=2)[pending].status == "done"
    assert set(ShadowSample.objects.values_list("judge_status", flat=True)) == {"done"}
    # The failed attempt's other order was answered and paid for: booked, in no judgment.
    day = BudgetDay.objects.get()
    wasted = day.judge_spent_usd - sum(j.cost_usd for j in Judgment.objects.all())
    (redone,) = Judgment.objects.filter(sample_id=pending, judge_kind="pairwise_llm")
    assert 0 < wasted < redone.cost_usd  # one call of the two the retry made
    budget_settled(wasted)


@pytest.mark.django_db
def test_on_the_last_attempt_a_transient_failure_fails_the_job_with_its_reason(pairs, sim, settings):
    _, base_url = sim
    settings.SHADOW_PROVIDER_ATTEMPTS = 1
    fault_set(base_url, error_rate=1.0, status=503, for_requests=1)
    outcomes = shadow_runs_execute(sample_ids=pairs[:5], max_attempts=1)
    (failed,) = [i for i, o in outcomes.items() if o.status == "failed"]
    sample = ShadowSample.objects.get(pk=failed)
    assert sample.status == "failed"
    assert sample.error.startswith("provider: HTTP 503")
    assert ShadowRun.objects.count() == 4
    budget_settled()
