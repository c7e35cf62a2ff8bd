from __future__ import annotations

from collections import Counter

import httpx
import pytest
from django.core.management import CommandError, call_command

from router_ops.simulation.judge_sim import JudgeSettings, judge_prompt_build, judge_reply_parse, simulated_judge_reply
from router_ops.simulation.provider_server import start_in_thread
from router_ops.simulation.routellm import (
    CHEAP_BETTER,
    STRONG_BETTER,
    TIE,
    MtBenchRecord,
    ReplayBook,
    gsm8k_load,
    mt_bench_load,
    outcome_counts,
    replay_book_load,
)

# ../shared/data/routellm/README.md
README_TABLE = {
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


@pytest.fixture(scope="module")
def mt_bench(routellm_dir):
    return mt_bench_load(routellm_dir)


@pytest.fixture(scope="module")
def gsm8k(routellm_dir):
    return gsm8k_load(routellm_dir)


def test_mt_bench_reproduces_the_readme_table(mt_bench):
    counts = outcome_counts(mt_bench)
    table = {category: (row[STRONG_BETTER], row[TIE], row[CHEAP_BETTER]) for category, row in counts.items()}
    assert table == README_TABLE
    assert counts["all"]["n"] == 160 and counts["all"]["missing"] == 0


def test_mt_bench_answers_come_from_the_right_turn(mt_bench):
    by_key = {(r.question_id, r.turn): r for r in mt_bench}
    first, second = by_key[(81, 1)], by_key[(81, 2)]
    assert first.category == "writing"
    assert first.prompt.startswith("Compose an engaging travel blog post about a recent trip to Hawaii")
    assert second.prompt == "Rewrite your previous response. Start every sentence with the letter A."
    assert second.turns == (first.prompt, second.prompt)
    for record in mt_bench:
        for answer in (record.cheap_answer, record.strong_answer):
            assert answer.strip()
            assert "### Assistant A:" not in answer and "[The End of Assistant's Answer]" not in answer
        assert record.cheap_answer != record.strong_answer
    assert first.strong_answer != second.strong_answer


def test_gsm8k_reproduces_the_readme_counts(gsm8k):
    pairs = Counter((r.cheap_correct, r.strong_correct) for r in gsm8k)
    assert pairs == {(True, True): 747, (False, True): 383, (True, False): 95, (False, False): 94}
    assert len(gsm8k) == 1319


def test_the_replay_judge_reproduces_the_tables(mt_bench, gsm8k):
    book = ReplayBook([*mt_bench, *gsm8k])
    settings = JudgeSettings()
    verdicts = Counter()
    for record in mt_bench:
        messages = judge_prompt_build(record.prompt, record.cheap_answer, record.strong_answer)
        reply = simulated_judge_reply("\n\n".join(m["content"] for m in messages), settings, book)
        verdicts[(record.category, judge_reply_parse(reply))] += 1
    for category, (strong, tie, cheap) in README_TABLE.items():
        if category != "all":
            assert (verdicts[(category, "B")], verdicts[(category, "tie")], verdicts[(category, "A")]) == (
                strong,
                tie,
                cheap,
            )
    strong_better = 0
    for record in gsm8k:
        messages = judge_prompt_build(record.prompt, record.cheap_answer, record.strong_answer)
        strong_better += judge_reply_parse(simulated_judge_reply(messages[1]["content"], settings, book)) == "B"
    assert strong_better == 383


def test_a_missing_grade_is_a_judge_failure_never_a_verdict():
    record = MtBenchRecord(
        question_id=1,
        turn=1,
        category="math",
        prompt="What is 1+1?",
        turns=("What is 1+1?",),
        cheap_answer="3",
        strong_answer="2",
        cheap_grade=None,
        strong_grade=9.0,
    )
    book = ReplayBook([record])
    reply = simulated_judge_reply(judge_prompt_build("What is 1+1?", "3", "2")[1]["content"], JudgeSettings(), book)
    assert reply == "Cannot judge: the recorded grade of answer A is missing."
    assert judge_reply_parse(reply) is None
    unknown = simulated_judge_reply(judge_prompt_build("What is 1+1?", "two", "2")[1]["content"], JudgeSettings(), book)
    assert judge_reply_parse(unknown) is None


def test_the_replay_server_serves_recorded_answers_and_grades(routellm_dir, mt_bench):
    book = replay_book_load(routellm_dir)
    server, base_url = start_in_thread(replay=book)
    by_key = {(r.question_id, r.turn): r for r in mt_bench}
    first, second = by_key[(81, 1)], by_key[(81, 2)]

    def ask(model: str, messages: list[dict]) -> httpx.Response:
        return httpx.post(f"{base_url}/chat/completions", json={"model": model, "messages": messages}, timeout=10)

    try:
        one = ask("sim-strong", [{"role": "user", "content": first.prompt}])
        assert one.json()["choices"][0]["message"]["content"] == first.strong_answer
        conversation = [
            {"role": "user", "content": first.prompt},
            {"role": "assistant", "content": first.cheap_answer},
            {"role": "user", "content": second.prompt},
        ]
        two = ask("mistralai/Mixtral-8x7B-Instruct-v0.1", conversation)
        assert two.json()["choices"][0]["message"]["content"] == second.cheap_answer

        unknown = ask("sim-cheap", [{"role": "user", "content": "not in the data"}])
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "prompt_not_recorded"

        verdict = ask("sim-judge", judge_prompt_build(first.prompt, first.strong_answer, first.cheap_answer))
        expected = {STRONG_BETTER: "A", CHEAP_BETTER: "B", TIE: "tie"}[first.outcome]
        assert judge_reply_parse(verdict.json()["choices"][0]["message"]["content"]) == expected
    finally:
        server.stop()


def test_the_command_refuses_a_missing_replay_directory(tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("run_simulated_provider", "--replay", str(tmp_path / "absent"), "--port", "0")
