"""OpenAI-compatible chat completions: `POST {base_url}/chat/completions`.

The decisions (request, secret, classification of each outcome, backoff) live in
`ChatCall`, which does no I/O; `chat_complete` and `achat_complete` only drive it,
one with the shared `httpx.Client` and `time.sleep`, the other with the shared
per-loop `httpx.AsyncClient` and `asyncio.sleep`. Both therefore behave the same.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
import random
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import certifi
import httpx

from router_ops.shadow.providers.concurrency import endpoint_limiter
from router_ops.shadow.providers.outcome import ChatResult, ProviderError

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
# A provider asking for a longer pause than this is not waited for in the worker:
# the call fails as retryable, carrying `retry_after`, and the caller reschedules.
RETRY_AFTER_CAP_S = 30.0
CONNECT_TIMEOUT_CAP_S = 10.0
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
USER_AGENT = "routerops-shadow/1"
_ERROR_TEXT_LIMIT = 300

_jitter = random.Random()


# -- shared clients (connection pooling) -------------------------------------------

_POOL_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)
# httpcore's async pool re-examines every pooled connection whenever it assigns a
# request, so one AsyncClient with hundreds of connections in flight spends its time
# in the pool (encode/httpx#3215: measured here, 200 concurrent 200 ms calls gave
# ~55-130 calls/s through one client, ~300-460 through 16). So each loop spreads its
# calls round-robin over a few small clients. (httpcore also imports `sniffio` on
# every pool operation: without that package installed the failed import searches
# sys.path each time and halves async throughput; it is pinned in requirements.)
ASYNC_CLIENT_SHARDS = 16
_ASYNC_SHARD_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=30)
_sync_client: httpx.Client | None = None
_sync_client_pid: int | None = None
_sync_client_lock = threading.Lock()
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list] = weakref.WeakKeyDictionary()


def sync_client() -> httpx.Client:
    """The process's client; re-created after a fork (a Celery prefork child must not
    share its parent's sockets)."""
    global _sync_client, _sync_client_pid
    with _sync_client_lock:
        if _sync_client is None or _sync_client_pid != os.getpid():
            _sync_client = httpx.Client(limits=_POOL_LIMITS, headers={"User-Agent": USER_AGENT})
            _sync_client_pid = os.getpid()
        return _sync_client


def async_client() -> httpx.AsyncClient:
    """One of the running loop's clients (an AsyncClient's connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    state = _async_clients.get(loop)
    if state is None:
        # One TLS context for all shards: loading the CA bundle costs ~30 ms each.
        tls = ssl.create_default_context(cafile=certifi.where())
        clients = [
            httpx.AsyncClient(limits=_ASYNC_SHARD_LIMITS, headers={"User-Agent": USER_AGENT}, verify=tls)
            for _ in range(ASYNC_CLIENT_SHARDS)
        ]
        state = _async_clients[loop] = [clients, 0]
    clients, turn = state
    state[1] = (turn + 1) % len(clients)
    return clients[turn]


# -- the call, without I/O ----------------------------------------------------------


def _retry_after_parse(headers: httpx.Headers) -> float | None:
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _price(endpoint: Any, name: str) -> float:
    return float(getattr(endpoint, name, 0) or 0)


class ChatCall:
    """One logical call: builds the request and judges each attempt's outcome.

    1. Construction resolves the secret (missing → non-retryable error, no attempt).
    2. `outcome(response | exception)` returns a ChatResult, or the seconds to wait
       before the next attempt, or raises the final ProviderError.
    """

    def __init__(
        self,
        endpoint: Any,
        messages: list[dict],
        *,
        max_tokens: int | None,
        temperature: float,
        max_attempts: int,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.endpoint = endpoint
        self.max_attempts = max_attempts
        self.attempts = 0
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self.payload: dict[str, Any] = {"model": endpoint.model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            self.payload["max_tokens"] = max_tokens
        self.headers = {"Accept": "application/json"}
        self._secret = self._secret_read()
        if self._secret:
            self.headers["Authorization"] = f"Bearer {self._secret}"
        timeout_s = float(endpoint.timeout_s)
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_CAP_S))
        self.limiter = endpoint_limiter(endpoint)
        self.label = getattr(endpoint, "name", None) or endpoint.model

    def _secret_read(self) -> str | None:
        variable = (getattr(self.endpoint, "api_key_env", "") or "").strip()
        if not variable:
            return None
        value = os.environ.get(variable)
        if not value:
            raise ProviderError(
                f"secret missing: environment variable {variable} is not set (model {self.endpoint.model})",
                retryable=False,
            )
        return value

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def attempt_begin(self) -> None:
        self.attempts += 1

    def outcome(
        self, response: httpx.Response | None, error: Exception | None, latency_ms: float
    ) -> ChatResult | float:
        try:
            if error is not None:
                raise self._transport_error(error)
            assert response is not None
            if not 200 <= response.status_code < 300:
                raise self._status_error(response)
            return self._result(response, latency_ms)
        except ProviderError as failure:
            failure.attempts = self.attempts
            return self._next_delay(failure)

    def _next_delay(self, failure: ProviderError) -> float:
        if not failure.retryable:
            raise failure
        if self.attempts >= self.max_attempts:
            failure.reason = f"{failure.reason} (gave up after {self.attempts} attempts)"
            failure.args = (failure.reason,)
            raise failure
        if failure.retry_after is not None:
            if failure.retry_after > RETRY_AFTER_CAP_S:
                failure.reason = (
                    f"{failure.reason} (Retry-After {failure.retry_after:g}s exceeds {RETRY_AFTER_CAP_S:g}s)"
                )
                failure.args = (failure.reason,)
                raise failure
            delay = failure.retry_after
        else:
            # Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
            # spreads the retries of many workers hit by the same outage.
            delay = _jitter.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (self.attempts - 1)))
        logger.warning(
            "provider %s attempt %d/%d failed: %s; retrying in %.2fs",
            self.label,
            self.attempts,
            self.max_attempts,
            failure.reason,
            delay,
        )
        return delay

    def _transport_error(self, error: Exception) -> ProviderError:
        kind = type(error).__name__
        if isinstance(error, httpx.TimeoutException):
            return ProviderError(f"timeout ({kind}) after {float(self.endpoint.timeout_s):g}s", retryable=True)
        if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return ProviderError(f"bad base_url {self.endpoint.base_url!r}: {error}", retryable=False)
        if isinstance(error, httpx.TransportError):
            return ProviderError(f"connection error ({kind}): {self._redact(str(error))}", retryable=True)
        return ProviderError(f"HTTP client error ({kind}): {self._redact(str(error))}", retryable=False)

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        detail = ""
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                detail = str(body["error"].get("message") or body["error"].get("code") or "")
            elif isinstance(body, dict) and isinstance(body.get("error"), str):
                detail = body["error"]
        except ValueError:
            pass
        detail = detail or response.text
        detail = self._redact(" ".join(detail.split()))[:_ERROR_TEXT_LIMIT]
        return ProviderError(
            f"HTTP {status}: {detail}" if detail else f"HTTP {status}",
            retryable=status in RETRYABLE_STATUSES or status >= 500,
            status=status,
            retry_after=_retry_after_parse(response.headers),
        )

    def _malformed(self, response: httpx.Response, what: str) -> ProviderError:
        return ProviderError(f"malformed response: {what}", retryable=False, status=response.status_code)

    def _result(self, response: httpx.Response, latency_ms: float) -> ChatResult:
        try:
            data = response.json()
        except ValueError:
            raise self._malformed(response, "body is not JSON") from None
        if not isinstance(data, dict):
            raise self._malformed(response, "body is not a JSON object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._malformed(response, "no choices")
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise self._malformed(response, "choices[0].message.content is not a string")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            raise self._malformed(response, "no usage (token counts are needed for the cost)")
        tokens = []
        for name in ("prompt_tokens", "completion_tokens"):
            value = usage.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self._malformed(response, f"usage.{name} is not a non-negative integer")
            tokens.append(value)
        prompt_tokens, completion_tokens = tokens
        cost = (
            prompt_tokens * _price(self.endpoint, "input_price_per_mtok")
            + completion_tokens * _price(self.endpoint, "output_price_per_mtok")
        ) / 1_000_000
        return ChatResult(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            cost_usd=cost,
            model=data.get("model") if isinstance(data.get("model"), str) else self.endpoint.model,
            attempts=self.attempts,
        )


# -- drivers --------------------------------------------------------------------------


# Set at start-up by the shadow app (router_ops/shadow/apps.py) to the provider URL
# allowlist check; raises ValueError for a base URL a model may not point at (SSRF).
url_check: Callable[[str], None] | None = None


def _url_refuse(call: ChatCall) -> None:
    if url_check is None:
        return
    try:
        url_check(call.endpoint.base_url)
    except ValueError as exc:
        # A host that does not resolve may be a passing DNS failure; anything else is a refusal.
        transient = type(exc).__name__ == "HostUnresolvable"
        raise ProviderError(f"base URL refused: {exc}", retryable=transient) from None


def chat_complete(
    endpoint: Any,
    messages: list[dict],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    max_attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> ChatResult:
    """Call the endpoint, retrying transient failures; raise ProviderError when it gives up.

    Holds one of the endpoint's `max_concurrency` slots during each HTTP attempt
    (not while backing off), shared with every thread and loop of the process.
    """
    call = ChatCall(endpoint, messages, max_tokens=max_tokens, temperature=temperature, max_attempts=max_attempts)
    _url_refuse(call)  # resolves the host: checked at call time, not only when the model was saved
    client = sync_client()
    while True:
        with call.limiter.hold():
            call.attempt_begin()
            started = time.perf_counter()
            response, error = None, None
            try:
                response = client.post(call.url, json=call.payload, headers=call.headers, timeout=call.timeout)
            except httpx.HTTPError as exc:
                error = exc
            latency_ms = (time.perf_counter() - started) * 1000
        step = call.outcome(response, error, latency_ms)
        if isinstance(step, ChatResult):
            return step
        sleep(step)


async def achat_complete(
    endpoint: Any,
    messages: list[dict],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    max_attempts: int = 4,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ChatResult:
    """`chat_complete` for asyncio: same semantics, many calls in flight per thread."""
    call = ChatCall(endpoint, messages, max_tokens=max_tokens, temperature=temperature, max_attempts=max_attempts)
    await asyncio.to_thread(_url_refuse, call)  # the DNS lookup blocks
    while True:
        async with call.limiter.hold_async():
            call.attempt_begin()
            client = async_client()
            started = time.perf_counter()
            response, error = None, None
            try:
                response = await client.post(call.url, json=call.payload, headers=call.headers, timeout=call.timeout)
            except httpx.HTTPError as exc:
                error = exc
            latency_ms = (time.perf_counter() - started) * 1000
        step = call.outcome(response, error, latency_ms)
        if isinstance(step, ChatResult):
            return step
        await sleep(step)


_thread_loops = threading.local()


def run_concurrently(coroutines: list[Awaitable]) -> list:
    """Run the coroutines side by side on this thread's event loop and return their
    results in order (an exception is returned in its place, not raised).

    The loop lives as long as the thread, so its pooled HTTP connections do too: a
    Celery thread running one batch after another reuses them (a new loop per batch
    would build new clients and TLS contexts each time)."""
    loop = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread_loops.loop = asyncio.new_event_loop()

    async def together() -> list:
        return await asyncio.gather(*coroutines, return_exceptions=True)

    return loop.run_until_complete(together())
