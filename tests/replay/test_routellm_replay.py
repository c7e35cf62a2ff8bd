"""`manage.py replay_routellm` over the real RouteLLM files: the platform, fed MT-Bench and
GSM8K as cheap-routed traffic and shadowing every decision over HTTP, must measure exactly
the outcome counts of ../shared/data/routellm/README.md, read back from the judgments."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.judging.models import Judge, Judgment
from router_ops.shadow import services as shadow_services
from router_ops.shadow.models import BudgetDay, SamplingPolicy, ShadowRun, ShadowSample

ROUTELLM_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routellm"

# ../shared/data/routellm/README.md: strong better / tie / weak better per category.
MT_BENCH_TABLE = {
    "coding": (13, 5, 2),
    "math": (9, 11, 0),
    "extraction": (8, 10, 2),
    "reasoning": (7, 12, 1),
    "writing": (5, 12, 3),
    "stem": (5, 15, 0),
    "roleplay": (4, 12, 4),
    "humanities": (2, 18, 0),
    "all": (53, 95, 12),
}
# (weak, strong) correct: (True, True) 747, (False, True) 383, (True, False) 95, (False, False) 94.
GSM8K_TABLE = {"gsm8k": (383, 747 + 94, 95), "all": (383, 747 + 94, 95)}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (ROUTELLM_DIR / "mt_bench" / "judgements.jsonl").exists()
        or not (ROUTELLM_DIR / "gsm8k" / "gsm8k_responses.csv").exists(),
        reason=f"RouteLLM data not found at {ROUTELLM_DIR} (expected ../shared/data/routellm beside the project)",
    ),
]


@pytest.fixture(autouse=True)
def broker_sends(monkeypatch, settings):
    """The replay runs the jobs itself; the judge task the shadow service publishes after
    commit (a duplicate delivery a worker would skip) is recorded instead of sent, so the
    test never puts messages for its own database on a broker other workers read."""
    from router_ops.celery import app

    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append((name, list(args or []))))
    settings.SHADOW_RELAY_NUDGE = False
    shadow_services.sampling_state_forget()
    yield sent
    shadow_services.sampling_state_forget()


def replay(dataset: str, *extra: str) -> str:
    out = StringIO()
    call_command("replay_routellm", "--data", str(ROUTELLM_DIR), "--dataset", dataset, *extra, stdout=out)
    return out.getvalue()


def table_parse(output: str) -> dict[str, tuple[int, int, int, int, int]]:
    """category → (strong better, tie, weak better, failed, n), from the printed table."""
    rows = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 6 and all(p.isdigit() for p in parts[1:]):
            rows[parts[0]] = tuple(int(p) for p in parts[1:])
    return rows


def verdict_counts(slug: str) -> dict[str, tuple[int, int, int]]:
    """The same table, straight from the Judgment rows."""
    counts: dict[str, list[int]] = {}
    column = {"shadow_better": 0, "equivalent": 1, "primary_better": 2}
    judgments = Judgment.objects.filter(application__slug=slug, status="ok").select_related("sample__decision")
    for judgment in judgments:
        for key in (judgment.sample.decision.attributes["category"], "all"):
            counts.setdefault(key, [0, 0, 0])[column[judgment.verdict]] += 1
    return {key: tuple(value) for key, value in counts.items()}


@pytest.mark.django_db(transaction=True)
def test_mt_bench_replay_reproduces_the_readme_table(broker_sends):
    output = replay("mt_bench", "--workers", "8")

    assert verdict_counts("routellm-mtbench") == MT_BENCH_TABLE
    printed = table_parse(output)
    assert {k: v[:3] for k, v in printed.items()} == MT_BENCH_TABLE
    assert {k: v[3:] for k, v in printed.items()} == {k: (0, 160 if k == "all" else 20) for k in MT_BENCH_TABLE}
    assert "judge failures: none" in output

    app = Application.objects.get(slug="routellm-mtbench")
    # Every decision routed cheap, sampled with π = 1, shadowed over HTTP and judged once.
    samples = ShadowSample.objects.filter(application=app)
    assert samples.count() == 160
    assert set(
        samples.values_list("inclusion_probability", "primary_tier", "shadow_tier", "status", "judge_status")
    ) == {(1.0, "cheap", "strong", "done", "done")}
    assert ShadowRun.objects.filter(sample__application=app, model="gpt-4-1106-preview").count() == 160
    assert Judgment.objects.filter(application=app).count() == 160
    assert set(Judgment.objects.filter(application=app).values_list("judge_kind", flat=True)) == {"recorded"}
    # The verdict the rollups read agrees with the judgment.
    assert not samples.exclude(verdict__in=["shadow_better", "equivalent", "primary_better"]).exists()
    # Turn 2 is a conversation; its shadow answer is the strong model's answer to turn 2.
    turn2 = samples.select_related("decision", "run").get(decision__decision_id="mt_bench-q81-t2")
    assert [m["role"] for m in turn2.decision.messages] == ["user", "assistant", "user"]
    assert turn2.decision.attributes == {"category": "writing", "turn": 2, "dataset": "mt_bench", "question_id": 81}
    # The long strong answers are not cut by the completion limit (their grades apply).
    assert len(samples.select_related("run").get(decision__decision_id="mt_bench-q158-t2").run.response) == 4499
    day = BudgetDay.objects.get(application=app)
    assert day.reserved_usd == 0 and day.shadow_spent_usd > 0 and day.refused == 0
    # The command judged every pair itself: no judge task was published to the broker.
    assert [args for name, args in broker_sends if name == "judging.judge_pair"] == []

    # Idempotent: a second run ingests nothing new, calls nothing, prints the same table.
    again = replay("mt_bench")
    assert table_parse(again) == printed
    assert ShadowSample.objects.filter(application=app).count() == 160
    assert ShadowRun.objects.filter(sample__application=app).count() == 160
    assert ModelEndpoint.objects.filter(application=app).count() == 2
    assert list(Judge.objects.filter(application=app, active=True).values_list("name", "kind")) == [
        ("routellm-recorded", "recorded")
    ]
    assert SamplingPolicy.objects.get(application=app).base_rate == 1.0


@pytest.mark.django_db(transaction=True)
def test_gsm8k_replay_reproduces_the_readme_counts():
    output = replay("gsm8k", "--workers", "12")

    assert verdict_counts("routellm-gsm8k") == GSM8K_TABLE
    printed = table_parse(output)
    assert printed == {"gsm8k": (383, 841, 95, 0, 1319), "all": (383, 841, 95, 0, 1319)}
    assert "judge failures: none" in output
    samples = ShadowSample.objects.filter(application__slug="routellm-gsm8k")
    assert samples.count() == 1319
    assert set(samples.values_list("status", "judge_status")) == {("done", "done")}


@pytest.mark.django_db(transaction=True)
def test_a_missing_grade_is_listed_as_a_judge_failure(tmp_path):
    """A RouteLLM grade of -1 means the judgement failed: no verdict, a listed failure, exit ≠ 0."""
    import json
    import shutil

    data = tmp_path / "routellm"
    shutil.copytree(ROUTELLM_DIR / "mt_bench", data / "mt_bench")
    path = data / "mt_bench" / "judgements.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        if row["question_id"] == 81 and row["turn"] == 1 and row["model"] == "gpt-4-1106-preview":
            row["score"] = -1
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = StringIO()
    with pytest.raises(CommandError, match="1 pair"):
        call_command("replay_routellm", "--data", str(data), "--dataset", "mt_bench", stdout=out)
    output = out.getvalue()
    assert "judge failures: 1" in output
    assert "mt_bench-q81-t1: " in output and "recorded grade missing" in output
    assert table_parse(output)["writing"][3:] == (1, 20)
    assert Judgment.objects.filter(status="failed").count() == 1


def test_it_refuses_a_missing_data_directory(tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("replay_routellm", "--data", str(tmp_path / "absent"), "--dataset", "mt_bench")
