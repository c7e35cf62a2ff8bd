"""Judges: deterministic rules, the swap rule, recorded grades, and a judge that cannot
be parsed recorded as a failure (never a verdict)."""

from __future__ import annotations

import pytest

from router_ops.judging import deterministic, pairwise, recorded
from router_ops.judging.models import Judge, Judgment
from router_ops.judging.services import pair_judge_execute
from router_ops.shadow.models import ShadowSample
from router_ops.shadow.services import shadow_run_execute
from tests.shadow.conftest import (
    endpoints_create,
    fault_set,
    ingest_and_sample,
    judges_create,
    policy_set,
    sim_decisions,
)


def test_normalised_and_exact_match():
    assert deterministic.exact_match("a", "a").verdict == "equivalent"
    assert deterministic.exact_match("a", "A") is None
    assert deterministic.normalised_match("  Paris.\n", "paris").verdict == "equivalent"


def test_numeric_answer_decides_only_equality_unless_a_reference_is_given():
    assert deterministic.numeric_answer("so it is 1,200 dollars", "#### 1200").verdict == "equivalent"
    assert deterministic.numeric_answer("The answer is 12", "The answer is 13") is None
    decided = deterministic.numeric_answer("The answer is 12", "The answer is 13", config={"reference": 13})
    assert (decided.verdict, decided.materially_disagree) == ("shadow_better", True)


def test_json_validity_prefers_the_valid_answer_when_json_was_asked():
    prompt = "return JSON with keys id, owner"
    assert deterministic.json_valid('{"id": 1}', "id: 1", prompt).verdict == "primary_better"
    assert deterministic.json_valid("id: 1", '```json\n{"id": 1}\n```', prompt).verdict == "shadow_better"
    assert deterministic.json_valid('{"id": 1}', "id: 1", "say hello") is None


def test_swap_rule():
    assert pairwise.order_verdict("A", pairwise.PRIMARY_FIRST) == "primary_better"
    assert pairwise.order_verdict("A", pairwise.SHADOW_FIRST) == "shadow_better"
    assert pairwise.swap_combine("shadow_better", "shadow_better") == ("shadow_better", True)
    assert pairwise.swap_combine("primary_better", "shadow_better") == ("equivalent", False)
    assert pairwise.reply_parse("blah\nVerdict: B\n") == "B"
    assert pairwise.reply_parse("I would rather not say.") is None


def test_recorded_grades_minus_one_is_missing():
    assert recorded.recorded_compare(8, 3).verdict == "primary_better"
    assert recorded.recorded_compare(5, 5).verdict == "equivalent"
    assert recorded.recorded_compare(-1, 3).verdict is None
    source = recorded.grade_source({"source": "attributes"})
    assert source.grade(question="", answer="", role="shadow", attributes={"shadow_grade": -1}) is None


def _one_disagreeing_pair(owner, base_url):
    eps = endpoints_create(owner.application, base_url)
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    from router_ops.simulation.scenario import answer_is_good

    items = [
        d for d in sim_decisions(200) if answer_is_good(d["prompt"], "cheap") != answer_is_good(d["prompt"], "strong")
    ]
    ingest_and_sample(owner.application, items[:1])
    sample = ShadowSample.objects.get()
    assert shadow_run_execute(sample_id=sample.id).status == "done"
    return eps, sample


@pytest.mark.django_db
def test_an_unparseable_judge_reply_is_asked_again_then_recorded_as_a_failure(owner, sim):
    server, base_url = sim
    eps, sample = _one_disagreeing_pair(owner, base_url)
    judges_create(owner.application, eps["judge"])
    fault_set(base_url, judge_garbage_rate=1.0)
    outcome = pair_judge_execute(sample_id=sample.id)
    assert outcome.status == "failed"
    judgment = Judgment.objects.get()
    assert (judgment.status, judgment.verdict, judgment.calls) == ("failed", "", 4)
    assert judgment.error == "unparseable judge reply (no 'Verdict: A|B|tie' line), asked twice"
    assert judgment.cost_usd > 0
    sample.refresh_from_db()
    assert (sample.judge_status, sample.verdict) == ("failed", "")


@pytest.mark.django_db
def test_position_bias_is_counted_as_inconsistent_and_equivalent(owner):
    from router_ops.simulation.provider_server import start_in_thread

    server, base_url = start_in_thread(port=0, judge_position_bias=1.0)
    try:
        eps, sample = _one_disagreeing_pair(owner, base_url)
        judges_create(owner.application, eps["judge"])
        assert pair_judge_execute(sample_id=sample.id).verdict == "equivalent"
    finally:
        server.stop()
    judgment = Judgment.objects.get(judge__kind=Judge.KIND_PAIRWISE_LLM)
    assert (judgment.verdict, judgment.swap_consistent, judgment.materially_disagree) == ("equivalent", False, False)
    from router_ops.judging.selectors import judge_position_inconsistency

    assert judge_position_inconsistency(judge=judgment.judge) == {"judged": 1, "inconsistent": 1, "rate": 1.0}
