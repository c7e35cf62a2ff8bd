from __future__ import annotations

import asyncio
import socket
import threading
import time
from decimal import Decimal

import pytest

from router_ops.applications.models import ModelEndpoint
from router_ops.shadow.providers import ChatResult, ProviderError, achat_complete, chat_complete
from router_ops.simulation import scenario
from tests.providers.conftest import endpoint, fault_set

PROMPT = "How do I reset my password for account 42?"
MESSAGES = [{"role": "user", "content": PROMPT}]


class SleepRecorder:
    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class AsyncSleepRecorder(SleepRecorder):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.delays.append(seconds)


def test_it_returns_the_answer_with_cost_from_usage_and_prices(sim):
    server, base_url = sim
    result = chat_complete(endpoint(base_url), MESSAGES, max_tokens=200)

    assert isinstance(result, ChatResult)
    assert result.text == scenario.simulated_answer(PROMPT, "cheap", 7)
    assert result.model == "sim-cheap"
    assert result.attempts == 1
    # The server's token stand-in: ceil(len / 4), plus 4 per message and 3 per request.
    assert result.prompt_tokens == 3 + 4 + -(-len(PROMPT) // 4)
    assert result.completion_tokens == -(-len(result.text) // 4)
    assert result.cost_usd == pytest.approx((result.prompt_tokens * 2.5 + result.completion_tokens * 10.0) / 1e6)
    assert result.latency_ms > 0


def test_it_works_with_a_model_endpoint_instance(sim):
    _, base_url = sim
    model = ModelEndpoint(
        name="strong-1",
        tier="strong",
        base_url=base_url,
        model="sim-strong",
        input_price_per_mtok=Decimal("3"),
        output_price_per_mtok=Decimal("15"),
        timeout_s=5,
        max_concurrency=2,
    )
    result = chat_complete(model, MESSAGES)
    assert result.text == scenario.simulated_answer(PROMPT, "strong", 7)
    assert result.cost_usd == pytest.approx(model.cost_usd(result.prompt_tokens, result.completion_tokens))


def test_it_retries_500_then_succeeds(sim):
    server, base_url = sim
    fault_set(base_url, error_rate=1.0, status=500, for_requests=2)
    sleep = SleepRecorder()

    result = chat_complete(endpoint(base_url), MESSAGES, sleep=sleep)

    assert result.attempts == 3
    assert len(sleep.delays) == 2
    # Full jitter: uniform in [0, base × 2^(attempt-1)].
    assert 0 <= sleep.delays[0] <= 0.5 and 0 <= sleep.delays[1] <= 1.0
    assert server.stats["by_status"] == {"500": 2, "200": 2}  # the fault POST is one of the 200s


def test_it_honours_retry_after_on_429(sim):
    _, base_url = sim
    fault_set(base_url, error_rate=1.0, status=429, retry_after=1.5, for_requests=2)
    sleep = SleepRecorder()

    result = chat_complete(endpoint(base_url), MESSAGES, sleep=sleep)

    assert result.attempts == 3
    assert sleep.delays == [1.5, 1.5]


def test_it_does_not_wait_for_a_retry_after_beyond_the_cap(sim):
    _, base_url = sim
    fault_set(base_url, error_rate=1.0, status=429, retry_after=120, for_requests=1)
    sleep = SleepRecorder()

    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url), MESSAGES, sleep=sleep)

    assert caught.value.retryable is True
    assert caught.value.status == 429
    assert caught.value.retry_after == 120
    assert caught.value.attempts == 1
    assert sleep.delays == []


def test_it_does_not_retry_400(sim):
    server, base_url = sim
    fault_set(base_url, error_rate=1.0, status=400, for_requests=5)
    sleep = SleepRecorder()

    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url), MESSAGES, sleep=sleep)

    assert caught.value.retryable is False
    assert caught.value.status == 400
    assert caught.value.attempts == 1
    assert caught.value.reason == "HTTP 400: simulated 400"
    assert sleep.delays == []
    assert server.stats["by_status"]["400"] == 1


def test_it_does_not_retry_an_unknown_model(sim):
    _, base_url = sim
    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url, model="gpt-nonexistent"), MESSAGES, sleep=SleepRecorder())
    assert (caught.value.status, caught.value.retryable) == (404, False)
    assert "gpt-nonexistent" in caught.value.reason


def test_it_gives_up_on_persistent_503_as_retryable(sim):
    server, base_url = sim
    fault_set(base_url, error_rate=1.0, status=503, retry_after=0)
    sleep = SleepRecorder()

    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url), MESSAGES, max_attempts=3, sleep=sleep)

    assert caught.value.retryable is True
    assert caught.value.status == 503
    assert caught.value.attempts == 3
    assert "gave up after 3 attempts" in caught.value.reason
    assert sleep.delays == [0, 0]
    assert server.stats["by_status"]["503"] == 3


def test_a_timeout_is_retryable_and_retried_up_to_max_attempts(sim):
    server, base_url = sim
    fault_set(base_url, latency_ms=1000)
    sleep = SleepRecorder()

    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url, timeout_s=0.2), MESSAGES, max_attempts=2, sleep=sleep)

    assert caught.value.retryable is True
    assert caught.value.status is None
    assert caught.value.attempts == 2
    assert caught.value.reason.startswith("timeout (ReadTimeout) after 0.2s")
    assert len(sleep.delays) == 1
    assert time.perf_counter() - started < 1.5


def test_a_refused_connection_is_retryable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = SleepRecorder()
    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(f"http://127.0.0.1:{port}/v1"), MESSAGES, max_attempts=2, sleep=sleep)
    assert caught.value.retryable is True
    assert caught.value.reason.startswith("connection error (ConnectError)")
    assert caught.value.attempts == 2


def test_a_malformed_response_is_not_retried(sim):
    _, base_url = sim
    fault_set(base_url, malformed_rate=1.0)
    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url), MESSAGES, sleep=SleepRecorder())
    assert caught.value.retryable is False
    assert caught.value.status == 200
    assert caught.value.reason == "malformed response: body is not JSON"
    assert caught.value.attempts == 1


def test_a_missing_secret_env_var_fails_clearly_without_calling(sim, monkeypatch):
    server, base_url = sim
    monkeypatch.delenv("ROUTEROPS_TEST_PROVIDER_KEY", raising=False)

    with pytest.raises(ProviderError) as caught:
        chat_complete(endpoint(base_url, api_key_env="ROUTEROPS_TEST_PROVIDER_KEY"), MESSAGES)

    assert caught.value.retryable is False
    assert "environment variable ROUTEROPS_TEST_PROVIDER_KEY is not set" in caught.value.reason
    assert caught.value.attempts == 0
    assert server.stats["requests"] == 0


def test_it_sends_the_secret_and_never_reveals_it():
    from router_ops.simulation.provider_server import start_in_thread

    server, base_url = start_in_thread(api_key="sk-right-secret")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ROUTEROPS_TEST_PROVIDER_KEY", "sk-right-secret")
            ok = chat_complete(endpoint(base_url, api_key_env="ROUTEROPS_TEST_PROVIDER_KEY"), MESSAGES)
            assert ok.attempts == 1
            mp.setenv("ROUTEROPS_TEST_PROVIDER_KEY", "sk-wrong-secret")
            with pytest.raises(ProviderError) as caught:
                chat_complete(endpoint(base_url, api_key_env="ROUTEROPS_TEST_PROVIDER_KEY"), MESSAGES)
        assert (caught.value.status, caught.value.retryable) == (401, False)
        assert "sk-wrong-secret" not in caught.value.reason and "sk-wrong-secret" not in repr(caught.value)
    finally:
        server.stop()


def test_threads_never_exceed_the_endpoint_concurrency_limit(sim):
    server, base_url = sim
    fault_set(base_url, latency_ms=100)
    shared = endpoint(base_url, max_concurrency=3)
    results: list[ChatResult] = []

    def call(i: int) -> None:
        results.append(chat_complete(shared, [{"role": "user", "content": f"question {i}"}]))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 12
    assert server.stats["max_in_flight"] == 3


def test_async_calls_run_concurrently(sim):
    server, base_url = sim
    fault_set(base_url, latency_ms=200)
    shared = endpoint(base_url, max_concurrency=50)

    async def main() -> list[ChatResult]:
        return await asyncio.gather(
            *(achat_complete(shared, [{"role": "user", "content": f"question {i}"}]) for i in range(50))
        )

    started = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - started

    assert len(results) == 50 and all(r.attempts == 1 for r in results)
    assert elapsed < 2.5  # serially: 50 × 200 ms = 10 s
    assert server.stats["max_in_flight"] >= 25


def test_async_calls_honour_the_concurrency_limit_and_retries(sim):
    server, base_url = sim
    fault_set(base_url, error_rate=1.0, status=429, retry_after=0.25, for_requests=1)
    sleep = AsyncSleepRecorder()
    first = asyncio.run(achat_complete(endpoint(base_url), MESSAGES, sleep=sleep))
    assert first.attempts == 2 and sleep.delays == [0.25]

    fault_set(base_url, latency_ms=50)
    shared = endpoint(base_url, max_concurrency=4)

    async def main() -> list[ChatResult]:
        return await asyncio.gather(*(achat_complete(shared, MESSAGES) for _ in range(20)))

    server.stats_reset()
    assert len(asyncio.run(main())) == 20
    assert server.stats["max_in_flight"] == 4


def test_async_missing_secret_fails_like_sync(sim, monkeypatch):
    _, base_url = sim
    monkeypatch.delenv("ROUTEROPS_TEST_PROVIDER_KEY", raising=False)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(achat_complete(endpoint(base_url, api_key_env="ROUTEROPS_TEST_PROVIDER_KEY"), MESSAGES))
    assert caught.value.retryable is False
