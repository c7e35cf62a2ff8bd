from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from router_ops.ingest.models import Decision
from router_ops.simulation.scenario import Scenario, answer_grade
from router_ops.simulation.traffic import (
    CANDIDATE_BULK_SCORE,
    decision_build,
    decision_id_for,
    decisions_build,
    rfc3339,
)
from tests.client.fake_routerops import Reply

AT = datetime(2026, 11, 24, 10, 15, 0, 123456, tzinfo=UTC)


def test_the_same_seed_gives_the_same_decisions():
    first = decisions_build(Scenario(seed=7), start_index=0, count=300, occurred_at=AT)
    second = decisions_build(Scenario(seed=7), start_index=0, count=300, occurred_at=AT)
    other = decisions_build(Scenario(seed=8), start_index=0, count=300, occurred_at=AT)

    assert first == second
    assert [d["decision_id"] for d in first] == [f"sim-s7-{i:010d}" for i in range(300)]
    assert [d["prompt"] for d in first] != [d["prompt"] for d in other]
    assert {d["decision_id"] for d in first}.isdisjoint(d["decision_id"] for d in other)


def test_a_later_start_index_continues_the_same_stream():
    whole = decisions_build(Scenario(seed=7), start_index=0, count=20, occurred_at=AT)
    tail = decisions_build(Scenario(seed=7), start_index=10, count=10, occurred_at=AT)
    assert tail == whole[10:]


def test_a_decision_has_every_field_of_the_api():
    request = Scenario(seed=7).request(42)
    decision = decision_build(request, seed=7, occurred_at=AT, threshold=0.5)

    routed = "strong" if request.router_score >= 0.5 else "cheap"
    assert decision["decision_id"] == decision_id_for(seed=7, index=42) == "sim-s7-0000000042"
    assert decision["occurred_at"] == "2026-11-24T10:15:00.123Z"
    assert decision["router_version"] == "v1"
    assert decision["unit_id"] == request.unit_id
    assert decision["routed_to"] == routed
    assert decision["model"] == f"sim-{routed}"
    assert decision["router_score"] == request.router_score
    assert decision["prompt"] == request.prompt
    assert answer_grade(decision["response"]) in (3, 9)
    assert (decision["prompt_tokens"], decision["completion_tokens"]) == (
        request.prompt_tokens,
        request.completion_tokens,
    )
    assert decision["attributes"] == request.attributes
    assert decision["shadow_decisions"][0]["router_version"] == "v2"
    assert set(decision) == {
        "decision_id", "occurred_at", "router_version", "unit_id", "routed_to", "model", "router_score", "prompt",
        "response", "prompt_tokens", "completion_tokens", "latency_ms", "attributes", "shadow_decisions",
    }  # fmt: skip


def test_the_threshold_decides_the_tier():
    request = Scenario(seed=7).request(3)
    assert decision_build(request, seed=7, occurred_at=AT, threshold=0.0)["routed_to"] == "strong"
    assert decision_build(request, seed=7, occurred_at=AT, threshold=1.01)["routed_to"] == "cheap"


def test_the_strong_tier_is_slower():
    decisions = decisions_build(Scenario(seed=7), start_index=0, count=2000, occurred_at=AT)
    by_tier = {tier: [d["latency_ms"] for d in decisions if d["routed_to"] == tier] for tier in ("cheap", "strong")}
    mean = {tier: sum(values) / len(values) for tier, values in by_tier.items()}
    assert 200 < mean["cheap"] < 1000 < 2000 < mean["strong"] < 6000
    assert all(value > 0 for values in by_tier.values() for value in values)


def test_no_candidate_means_no_shadow_decisions():
    request = Scenario(seed=7).request(0)
    assert decision_build(request, seed=7, occurred_at=AT, candidate=None)["shadow_decisions"] == []


def test_enterprise_scripted_api_is_3_percent_and_only_the_candidate_sends_it_strong():
    scenario = Scenario(seed=7)
    requests = [scenario.request(i) for i in range(20_000)]
    scripted = [r for r in requests if r.kind == "enterprise-scripted-api"]

    share = len(scripted) / len(requests)
    assert 0.025 <= share <= 0.035
    # The kind is visible to segments only through attributes, and to the candidate only through the prompt.
    assert all(r.prompt.startswith("BULK-") for r in scripted)
    assert not any(r.prompt.startswith("BULK-") for r in requests if r.kind != "enterprise-scripted-api")
    assert all(r.attributes["channel"] == "api" and r.attributes["user_tier"] == "enterprise" for r in scripted)

    decisions = [decision_build(r, seed=7, occurred_at=AT, threshold=0.5) for r in scripted]
    primary_cheap = sum(d["routed_to"] == "cheap" for d in decisions) / len(decisions)
    assert primary_cheap > 0.85  # the primary router is fooled: these look easy
    assert all(d["shadow_decisions"][0]["routed_to"] == "strong" for d in decisions)
    assert all(d["shadow_decisions"][0]["router_score"] >= CANDIDATE_BULK_SCORE for d in decisions)


def test_the_candidate_agrees_with_the_primary_outside_the_bulk_prompts():
    scenario = Scenario(seed=7)
    for i in range(3000):
        request = scenario.request(i)
        if request.prompt.startswith("BULK-"):
            continue
        decision = decision_build(request, seed=7, occurred_at=AT)
        assert decision["shadow_decisions"] == [
            {"router_version": "v2", "routed_to": decision["routed_to"], "router_score": decision["router_score"]}
        ]


def test_rfc3339_refuses_naive_times():
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    with pytest.raises(ValueError):
        rfc3339(datetime(2026, 1, 2))


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("simulate_traffic", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_command_stores_count_decisions_and_a_rerun_is_idempotent(live_server, owner, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(owner.keys["ingest"] + "\n")
    args = ["--url", live_server.url, "--key-file", str(key_file), "--count", "200", "--rate", "0", "--seed", "11"]

    stdout, stderr = run(*args)

    assert stdout.strip() == f"Sent 200 decisions to {live_server.url}: 200 accepted, 0 duplicates, 0 rejected."
    assert "200/200 100%" in stderr
    stored = Decision.objects.filter(application=owner.application)
    assert stored.count() == 200
    expected = decisions_build(Scenario(seed=11), start_index=0, count=200, occurred_at=AT)
    rows = {row.decision_id: row for row in stored.select_related("router_version")}
    assert sorted(rows) == sorted(d["decision_id"] for d in expected)
    for decision in expected:
        row = rows[decision["decision_id"]]
        assert (row.routed_to, row.model, row.prompt, row.response, row.attributes, row.shadow_decisions) == (
            decision["routed_to"],
            decision["model"],
            decision["prompt"],
            decision["response"],
            decision["attributes"],
            decision["shadow_decisions"],
        )
        assert row.router_version.name == "v1"

    stdout, _ = run(*args)
    assert stdout.strip() == f"Sent 200 decisions to {live_server.url}: 0 accepted, 200 duplicates, 0 rejected."
    assert stored.count() == 200


@pytest.mark.django_db(transaction=True)
def test_the_command_is_paced_to_the_rate(live_server, owner):
    started = time.monotonic()
    run("--url", live_server.url, "--api-key", owner.keys["ingest"], "--count", "30", "--rate", "50",
        "--start-index", "1000", "--candidate", "", "--router-version", "v9")  # fmt: skip
    elapsed = time.monotonic() - started

    assert 0.55 <= elapsed < 3.0  # 30 decisions at 50/s: 0.6 s of pacing
    stored = Decision.objects.filter(application=owner.application)
    assert sorted(stored.values_list("decision_id", flat=True)) == [f"sim-s7-{i:010d}" for i in range(1000, 1030)]
    assert set(stored.values_list("router_version__name", flat=True)) == {"v9"}
    assert list(stored.exclude(shadow_decisions=[])) == []


@pytest.mark.django_db(transaction=True)
def test_the_command_stops_on_a_refused_key(live_server, owner):
    with pytest.raises(CommandError, match="401"):
        run("--url", live_server.url, "--api-key", "ro_bad_key", "--count", "5", "--rate", "0")
    assert Decision.objects.count() == 0


def test_the_command_explains_a_missing_key_file(tmp_path):
    with pytest.raises(CommandError, match="bootstrap_demo"):
        run("--key-file", str(tmp_path / "absent"), "--count", "1")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_command_flushes_and_exits_cleanly_when_stopped(live_server, owner, stop_signal):
    # A real process, so that the signal arrives the way Ctrl-C or honcho delivers it.
    command = [sys.executable, "manage.py", "simulate_traffic", "--url", live_server.url, "--api-key",
               owner.keys["ingest"], "--rate", "200", "--batch-size", "1000", "--seed", "3"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stored = Decision.objects.filter(application=owner.application)
    try:
        deadline = time.monotonic() + 60  # generous: CI machines can be loaded
        # The first time-based flush (after 1 s) proves the process is up and sending.
        while not stored.exists():
            assert time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "no decisions"
            time.sleep(0.05)
        time.sleep(0.3)  # let some decisions wait in the buffer
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, stderr
    assert "Interrupted; sending" in stderr
    count = stored.count()
    assert count > 200
    # An interrupt that lands mid-request makes the final flush resend that batch: duplicates, not losses.
    sent = re.fullmatch(
        r"Sent (\d+) decisions to (\S+): (\d+) accepted, (\d+) duplicates, 0 rejected\.", stdout.strip()
    )
    assert sent, stdout
    assert (int(sent[1]), sent[2], int(sent[3]) + int(sent[4])) == (count, live_server.url, count)
    # Nothing generated was skipped: the stored ids are one unbroken run from the start index.
    assert sorted(stored.values_list("decision_id", flat=True)) == [f"sim-s3-{i:010d}" for i in range(count)]


def test_the_command_rides_out_a_brief_outage(fake_api):
    unavailable = {"error": {"code": "service_unavailable", "message": "Restarting.", "details": None}}
    fake_api.script = [Reply(503, {"Retry-After": "0"}, unavailable), Reply(503, {"Retry-After": "0"}, unavailable)]

    stdout, _ = run("--url", fake_api.url, "--api-key", "k", "--count", "5", "--rate", "0")

    assert stdout.strip() == f"Sent 5 decisions to {fake_api.url}: 5 accepted, 0 duplicates, 0 rejected."
    assert len(fake_api.requests) == 3
    assert fake_api.requests[0].body == fake_api.requests[2].body
    assert [d["decision_id"] for d in fake_api.requests[2].body["decisions"]] == [f"sim-s7-{i:010d}" for i in range(5)]
