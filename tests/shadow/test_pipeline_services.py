"""The pipeline's services against a real database and the simulated provider over HTTP
(no broker): sample → shadow → judge, with the stored records checked exactly."""

from __future__ import annotations

import pytest

from router_ops.judging.models import Judgment
from router_ops.judging.services import pair_judge_execute
from router_ops.shadow.models import BudgetDay, ShadowRun, ShadowSample
from router_ops.shadow.outbox import outbox_relay
from router_ops.shadow.services import shadow_run_execute
from router_ops.simulation.scenario import answer_is_good
from tests.shadow.conftest import endpoints_create, ingest_and_sample, judges_create, policy_set, sim_decisions


@pytest.mark.django_db
def test_it_samples_shadows_and_judges(owner, sim):
    _, base_url = sim
    eps = endpoints_create(owner.application, base_url)
    judges_create(owner.application, eps["judge"])
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ids, sampled = ingest_and_sample(owner.application, sim_decisions(20))
    assert sampled == 20
    samples = list(ShadowSample.objects.order_by("id"))
    assert all(s.inclusion_probability == 1.0 and s.status == "pending" for s in samples)
    for sample in samples:
        assert shadow_run_execute(sample_id=sample.id).status == "done"
        assert pair_judge_execute(sample_id=sample.id).status == "done"
    assert ShadowRun.objects.count() == 20
    # The simulated world says which answers are good: equal quality gives identical
    # text (normalised match decides), different quality goes to the LLM judge.
    expected = {}
    for sample in ShadowSample.objects.select_related("decision"):
        primary_good = answer_is_good(sample.decision.prompt, sample.primary_tier)
        shadow_good = answer_is_good(sample.decision.prompt, sample.shadow_tier)
        expected[sample.id] = (
            "equivalent" if primary_good == shadow_good else "primary_better" if primary_good else "shadow_better"
        )
    assert dict(ShadowSample.objects.values_list("id", "verdict")) == expected
    assert set(ShadowSample.objects.values_list("judge_status", flat=True)) == {"done"}
    llm = Judgment.objects.filter(judge_kind="pairwise_llm")
    assert llm.count() == sum(1 for v in expected.values() if v != "equivalent") > 0
    assert all(j.swap_consistent and j.materially_disagree and j.status == "ok" for j in llm)
    assert all(j.cost_usd > 0 and j.latency_ms > 0 and j.calls == 2 for j in llm)
    assert all(len(j.replies) == 2 for j in llm)
    deterministic = Judgment.objects.filter(judge_kind="normalised_match")
    assert deterministic.count() == 20 - llm.count()
    assert all(j.cost_usd == 0 and j.verdict == "equivalent" for j in deterministic)
    day = BudgetDay.objects.get()
    assert day.reserved_usd == 0
    assert set(ShadowSample.objects.values_list("shadow_reserved_usd", "judge_reserved_usd")) == {(0, 0)}
    assert day.shadow_spent_usd == sum(r.cost_usd for r in ShadowRun.objects.all())
    assert day.judge_spent_usd == sum(j.cost_usd for j in Judgment.objects.all())
    # A second delivery of either task is a no-op.
    assert shadow_run_execute(sample_id=samples[0].id).status == "skipped"
    assert pair_judge_execute(sample_id=samples[0].id).status == "skipped"
    assert outbox_relay().shadow_sent == 0


@pytest.mark.django_db
def test_a_shadow_run_takes_four_queries_once_the_configuration_is_loaded(owner, sim, django_assert_num_queries):
    # claim+load, budget reservation, the privacy settings (redaction of the shadow answer),
    # settle+done+ShadowRun: the round trips the pipeline benchmark's throughput depends on.
    _, base_url = sim
    eps = endpoints_create(owner.application, base_url)
    judges_create(owner.application, eps["judge"])
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ingest_and_sample(owner.application, sim_decisions(2))
    first, second = ShadowSample.objects.order_by("id").values_list("id", flat=True)
    assert shadow_run_execute(sample_id=first).status == "done"  # loads the endpoints once
    with django_assert_num_queries(4):
        assert shadow_run_execute(sample_id=second).status == "done"
    assert ShadowRun.objects.filter(sample_id=second).count() == 1
    assert ShadowSample.objects.get(pk=second).judge_status == "enqueued"
