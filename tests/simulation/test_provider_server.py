from __future__ import annotations

import json
import time

import httpx
import pytest

from router_ops.simulation import scenario
from router_ops.simulation.judge_sim import GARBAGE_REPLY, judge_prompt_build, judge_reply_parse
from router_ops.simulation.provider_server import start_in_thread

# A prompt the cheap tier answers badly and the strong tier well (seed 7).
SCRIPTED = next(
    f"BULK-EXTRACT record={n}: return JSON with keys id, owner, status, renewal_date."
    for n in range(1, 500)
    if not scenario.answer_is_good(
        f"BULK-EXTRACT record={n}: return JSON with keys id, owner, status, renewal_date.", "cheap", 7
    )
    and scenario.answer_is_good(
        f"BULK-EXTRACT record={n}: return JSON with keys id, owner, status, renewal_date.", "strong", 7
    )
)
GOOD = scenario.simulated_answer(SCRIPTED, "strong", 7)
BAD = scenario.simulated_answer(SCRIPTED, "cheap", 7)


def chat(base_url: str, model: str, messages: list[dict], **extra) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", json={"model": model, "messages": messages, **extra})


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_tiers_answer_with_their_quality(sim):
    _, base_url = sim
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": SCRIPTED}]
    assert content(chat(base_url, "sim-cheap", messages)) == BAD
    assert content(chat(base_url, "sim-strong", messages)) == GOOD
    assert scenario.answer_grade(BAD) == 3 and scenario.answer_grade(GOOD) == 9


def test_answers_and_usage_are_deterministic(sim):
    _, base_url = sim
    messages = [{"role": "user", "content": "Translate to German: 'Your order 7 has shipped.'"}]
    first, second = chat(base_url, "sim-cheap", messages).json(), chat(base_url, "sim-cheap", messages).json()
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]
    assert first["id"] == second["id"]
    assert first["usage"]["total_tokens"] == first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]


def test_max_tokens_truncates_with_finish_reason_length(sim):
    _, base_url = sim
    body = chat(base_url, "sim-strong", [{"role": "user", "content": SCRIPTED}], max_tokens=5).json()
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["message"]["content"]) == 20


def test_models_health_and_errors(sim):
    _, base_url = sim
    root = base_url.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").json() == {"status": "ok"}
    ids = {m["id"] for m in httpx.get(f"{base_url}/models").json()["data"]}
    assert {"sim-cheap", "sim-strong", "sim-judge"} <= ids

    unknown = chat(base_url, "nope", [{"role": "user", "content": "hi"}])
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"

    bad = httpx.post(f"{base_url}/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"

    empty = chat(base_url, "sim-cheap", [])
    assert empty.status_code == 400 and "messages" in empty.json()["error"]["message"]


def test_configured_model_names_map_to_tiers():
    server, base_url = start_in_thread(models={"small-1": "cheap", "big-1": "strong"})
    try:
        assert content(chat(base_url, "big-1", [{"role": "user", "content": SCRIPTED}])) == GOOD
        assert chat(base_url, "sim-cheap", [{"role": "user", "content": SCRIPTED}]).status_code == 404
    finally:
        server.stop()


def test_the_error_rate_is_seeded():
    def statuses() -> list[int]:
        server, base_url = start_in_thread(error_rate=0.5, error_status=429, retry_after_s=2, seed=11)
        try:
            responses = [chat(base_url, "sim-cheap", [{"role": "user", "content": "hi"}]) for _ in range(20)]
        finally:
            server.stop()
        for response in responses:
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "2"
        return [r.status_code for r in responses]

    first = statuses()
    assert first == statuses()
    assert 3 <= first.count(429) <= 17


def test_faults_can_be_set_read_and_cleared(sim):
    _, base_url = sim
    root = base_url.removesuffix("/v1")
    messages = [{"role": "user", "content": "hi"}]

    set_response = httpx.post(f"{root}/admin/faults", json={"error_rate": 1.0, "status": 503, "for_seconds": 30})
    assert set_response.json()["fault"]["status"] == 503
    assert httpx.get(f"{root}/admin/faults").json()["fault"]["error_rate"] == 1.0
    failed = chat(base_url, "sim-cheap", messages)
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"

    httpx.delete(f"{root}/admin/faults")
    assert httpx.get(f"{root}/admin/faults").json() == {"fault": None}
    assert chat(base_url, "sim-cheap", messages).status_code == 200


def test_a_fault_ends_by_itself(sim):
    _, base_url = sim
    root = base_url.removesuffix("/v1")
    messages = [{"role": "user", "content": "hi"}]
    httpx.post(f"{root}/admin/faults", json={"error_rate": 1.0, "status": 500, "for_seconds": 0.3})
    assert chat(base_url, "sim-cheap", messages).status_code == 500
    time.sleep(0.35)
    assert chat(base_url, "sim-cheap", messages).status_code == 200

    httpx.post(f"{root}/admin/faults", json={"error_rate": 1.0, "for_requests": 2})
    assert [chat(base_url, "sim-cheap", messages).status_code for _ in range(3)] == [500, 500, 200]


def test_a_bad_fault_is_refused_with_the_reason(sim):
    _, base_url = sim
    response = httpx.post(f"{base_url.removesuffix('/v1')}/admin/faults", json={"error_rat": 1})
    assert response.status_code == 400
    assert "unknown fields: error_rat" in response.json()["error"]["message"]


def test_the_server_holds_hundreds_of_slow_requests_at_once(sim):
    import asyncio

    server, base_url = sim
    httpx.post(f"{base_url.removesuffix('/v1')}/admin/faults", json={"latency_ms": 300})
    request = json.dumps({"model": "sim-cheap", "messages": [{"role": "user", "content": "hi"}]}).encode()
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Content-Length: {len(request)}\r\n\r\n".encode()
            + request
        )
        data = await reader.read()
        writer.close()
        return data.split(b"\r\n", 1)[0]

    async def main() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(300)))

    started = time.perf_counter()
    lines = asyncio.run(main())
    elapsed = time.perf_counter() - started
    assert lines == [b"HTTP/1.1 200 OK"] * 300
    assert server.stats["max_in_flight"] >= 200
    assert elapsed < 3.0  # one at a time: 300 × 0.3 s = 90 s


# -- the judge -------------------------------------------------------------------


def judge(base_url: str, question: str, a: str, b: str) -> str:
    return content(chat(base_url, "sim-judge", judge_prompt_build(question, a, b)))


def test_the_judge_prefers_the_better_answer_in_either_position(sim):
    _, base_url = sim
    assert judge_reply_parse(judge(base_url, SCRIPTED, GOOD, BAD)) == "A"
    assert judge_reply_parse(judge(base_url, SCRIPTED, BAD, GOOD)) == "B"
    assert judge_reply_parse(judge(base_url, SCRIPTED, GOOD, GOOD)) == "tie"
    reply = judge(base_url, SCRIPTED, GOOD, BAD)
    assert reply == "Answer A: grade 9/10. Answer B: grade 3/10.\nVerdict: A"


def test_the_judge_calls_unknown_text_a_tie(sim):
    _, base_url = sim
    assert judge_reply_parse(judge(base_url, "Q?", "some human text", GOOD)) == "tie"


def test_the_judge_can_reply_garbage():
    server, base_url = start_in_thread(judge_garbage_rate=1.0)
    try:
        reply = judge(base_url, SCRIPTED, GOOD, BAD)
    finally:
        server.stop()
    assert reply == GARBAGE_REPLY
    assert judge_reply_parse(reply) is None


def test_garbage_can_be_switched_on_at_runtime(sim):
    _, base_url = sim
    httpx.post(f"{base_url.removesuffix('/v1')}/admin/faults", json={"judge_garbage_rate": 1.0, "for_requests": 1})
    assert judge_reply_parse(judge(base_url, SCRIPTED, GOOD, BAD)) is None
    assert judge_reply_parse(judge(base_url, SCRIPTED, GOOD, BAD)) == "A"


def test_position_bias_and_noise_are_seeded():
    server, base_url = start_in_thread(judge_position_bias=1.0)
    try:
        assert judge_reply_parse(judge(base_url, SCRIPTED, BAD, GOOD)) == "A"
    finally:
        server.stop()

    def verdicts(seed: int) -> list[str | None]:
        server, base_url = start_in_thread(judge_noise=0.5, seed=seed)
        try:
            return [judge_reply_parse(judge(base_url, f"{SCRIPTED} {i}", GOOD, BAD)) for i in range(30)]
        finally:
            server.stop()

    noisy = verdicts(3)
    assert noisy == verdicts(3)
    assert 15 <= noisy.count("A") < 30  # half are redrawn among A / B / tie


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Answer A is better.\nVerdict: A", "A"),
        ("verdict: b", "B"),
        ("**Verdict:** tie", "tie"),
        ("Verdict: A\nOn reflection...\nVerdict: B", "B"),
        ("I pick A.", None),
        ("Verdict: A or B", None),
        ("Cannot judge: the recorded grade of answer B is missing.", None),
        ("", None),
    ],
)
def test_judge_reply_parse(reply, verdict):
    assert judge_reply_parse(reply) == verdict
