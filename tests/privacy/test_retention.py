"""Retention: text past the period is purged; aggregates and verdicts stay. Read back from the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from router_ops.ingest.models import Decision
from router_ops.judging.models import Judge, Judgment
from router_ops.privacy.models import PrivacySettings
from router_ops.privacy.services import privacy_settings_update, retention_purge
from router_ops.privacy.tasks import retention_purge_task
from router_ops.rollouts.models import RouterVersion
from router_ops.shadow.models import ShadowRun, ShadowSample

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _decision(application, decision_id: str, age_days: float, **fields) -> Decision:
    version, _ = RouterVersion.objects.get_or_create(application=application, name="v12")
    return Decision.objects.create(
        application=application,
        decision_id=decision_id,
        occurred_at=NOW - timedelta(days=age_days),
        router_version=version,
        unit_id="u-1",
        routed_to="cheap",
        prompt=fields.pop("prompt", f"prompt of {decision_id}"),
        messages=fields.pop("messages", [{"role": "user", "content": f"prompt of {decision_id}"}]),
        response=fields.pop("response", f"answer of {decision_id}"),
        prompt_tokens=10,
        completion_tokens=20,
        cost_usd=Decimal("0.001"),
        attributes={"tenant": "acme"},
        **fields,
    )


def _judged(decision: Decision) -> tuple[ShadowRun, Judgment]:
    sample = ShadowSample.objects.create(
        application=decision.application,
        decision=decision,
        direction=ShadowSample.DIRECTION_UP,
        primary_tier="cheap",
        shadow_tier="strong",
        inclusion_probability=0.5,
        reason=ShadowSample.REASON_BASE,
        status=ShadowSample.DONE,
        judge_status=ShadowSample.DONE,
        verdict="shadow_better",
        materially_disagree=True,
    )
    run = ShadowRun.objects.create(
        sample=sample,
        model="big-1",
        response="shadow answer",
        prompt_tokens=10,
        completion_tokens=30,
        cost_usd=Decimal("0.01"),
        latency_ms=100,
        attempts=1,
    )
    judge, _ = Judge.objects.get_or_create(
        application=decision.application, name="exact", defaults={"kind": "exact_match"}
    )
    judgment = Judgment.objects.create(
        sample=sample,
        judge=judge,
        application=decision.application,
        judge_kind="exact_match",
        status="ok",
        verdict="shadow_better",
        materially_disagree=True,
        replies=[{"order": "ab", "reply": "B quotes the answer"}],
        rationale="B says 'shadow answer'",
    )
    return run, judgment


def test_it_purges_text_past_retention_and_keeps_the_rest(owner):
    privacy_settings_update(application=owner.application, retention_days=30)
    old = _decision(owner.application, "old", age_days=31)
    young = _decision(owner.application, "young", age_days=29)
    old_run, old_judgment = _judged(old)
    young_run, _ = _judged(young)

    assert retention_purge(now=NOW) == {"applications": 1, "decisions": 1, "shadow_runs": 1, "judgments": 1}

    old_row = Decision.objects.values(
        "prompt", "messages", "response", "prompt_tokens", "completion_tokens", "cost_usd", "attributes"
    ).get(pk=old.pk)
    assert old_row == {
        "prompt": None,
        "messages": None,
        "response": None,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "cost_usd": Decimal("0.00100000"),
        "attributes": {"tenant": "acme"},
    }
    assert Decision.objects.values_list("prompt", "response").get(pk=young.pk) == ("prompt of young", "answer of young")
    old_run.refresh_from_db()
    assert (old_run.response, old_run.cost_usd, old_run.completion_tokens) == ("", Decimal("0.01000000"), 30)
    young_run.refresh_from_db()
    assert young_run.response == "shadow answer"
    old_judgment.refresh_from_db()
    assert (old_judgment.verdict, old_judgment.replies, old_judgment.rationale) == ("shadow_better", [], "")
    sample = ShadowSample.objects.get(decision=old)
    assert (sample.verdict, sample.materially_disagree) == ("shadow_better", True)


def test_it_works_in_bounded_batches(owner):
    privacy_settings_update(application=owner.application, retention_days=1)
    for n in range(25):
        _decision(owner.application, f"d-{n}", age_days=2 + n / 100)
    assert retention_purge(now=NOW, batch_size=4)["decisions"] == 25
    assert not Decision.objects.filter(prompt__isnull=False).exists()


def test_applications_without_settings_use_the_default_of_30_days(owner):
    _decision(owner.application, "old", age_days=31)
    _decision(owner.application, "young", age_days=29)
    retention_purge(now=NOW)
    assert dict(Decision.objects.values_list("decision_id", "prompt")) == {"old": None, "young": "prompt of young"}
    assert PrivacySettings.objects.get(application=owner.application).text_purged_before == NOW - timedelta(days=30)


def test_empty_retention_keeps_text_forever(owner):
    privacy_settings_update(application=owner.application, retention_days=None)
    _decision(owner.application, "ancient", age_days=3000)
    retention_purge(now=NOW)
    assert Decision.objects.get(decision_id="ancient").prompt == "prompt of ancient"


def test_each_application_has_its_own_period(owner, outsider):
    privacy_settings_update(application=owner.application, retention_days=7)
    privacy_settings_update(application=outsider.application, retention_days=60)
    _decision(owner.application, "o", age_days=10)
    _decision(outsider.application, "x", age_days=10)
    retention_purge(now=NOW)
    assert Decision.objects.get(application=owner.application).prompt is None
    assert Decision.objects.get(application=outsider.application).prompt == "prompt of x"


def test_the_next_run_starts_at_the_watermark_and_catches_late_arrivals(owner):
    privacy_settings_update(application=owner.application, retention_days=30)
    _decision(owner.application, "old", age_days=40)
    retention_purge(now=NOW)
    # Arrived after the first run, occurred just before its cutoff (within the grace period).
    _decision(owner.application, "late", age_days=30.5)
    # Far behind the watermark: not rescanned (ingestion drops text already past retention).
    _decision(owner.application, "ancient", age_days=400)
    assert retention_purge(now=NOW + timedelta(hours=1))["decisions"] == 1
    prompts = dict(Decision.objects.values_list("decision_id", "prompt"))
    assert prompts == {"old": None, "late": None, "ancient": "prompt of ancient"}


def test_a_second_run_changes_nothing(owner):
    _decision(owner.application, "old", age_days=31)
    retention_purge(now=NOW)
    assert retention_purge(now=NOW) == {"applications": 1, "decisions": 0, "shadow_runs": 0, "judgments": 0}


def test_the_task_calls_the_service(owner):
    _decision(owner.application, "old", age_days=400)
    retention_purge_task.apply()
    assert Decision.objects.get(decision_id="old").prompt is None
