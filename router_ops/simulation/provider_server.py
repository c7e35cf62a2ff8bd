"""A simulated LLM provider: a real HTTP server speaking OpenAI chat completions.

Routes (HTTP/1.1, keep-alive, JSON):

- `POST /v1/chat/completions` — the answer of the model's tier
  (`scenario.simulated_answer`, or the recorded answer in replay mode); the judge
  model (`sim-judge`) answers pairwise judge prompts (see `judge_sim`).
- `GET /v1/models`, `GET /healthz`.
- `GET|POST|DELETE /admin/faults` — read / set / clear a temporary fault, e.g.
  `{"error_rate": 0.5, "status": 500, "for_seconds": 10}`; also `retry_after`,
  `latency_ms`, `malformed_rate` (200 with a broken body), `judge_garbage_rate`,
  and `for_requests` (end after that many completions) instead of or with `for_seconds`.
- `GET /admin/stats`, `POST /admin/stats/reset` — requests, in-flight and the
  maximum in flight seen (overall and per model), counts by status.

It is one asyncio event loop with a small HTTP/1.1 parser (stdlib only): a slow
request costs a coroutine, not a thread, so hundreds of concurrent 200 ms requests
fit on two cores. Randomness (latency jitter, injected errors, garbage) comes from
`random.Random(f"{seed}:{request number}")`; answers, token counts and judge
verdicts depend only on the request (and the seed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from router_ops.simulation import scenario
from router_ops.simulation.judge_sim import GARBAGE_REPLY, JudgeSettings, simulated_judge_reply
from router_ops.simulation.routellm import CHEAP_MODEL, STRONG_MODEL, ReplayBook

logger = logging.getLogger(__name__)

JUDGE_TIER = "judge"
DEFAULT_MODELS = {
    "sim-cheap": "cheap",
    "sim-strong": "strong",
    "sim-judge": JUDGE_TIER,
    # The RouteLLM pair, so replayed traffic can name the real models.
    CHEAP_MODEL: "cheap",
    STRONG_MODEL: "strong",
}
MAX_BODY_BYTES = 5 * 1024 * 1024
RETRYABLE_FAULT_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class ProviderConfig:
    seed: int = 7
    latency_ms: float = 0.0  # mean added latency per completion
    jitter_ms: float = 0.0  # uniform ± around the mean
    error_rate: float = 0.0  # share of completions answered with `error_status`
    error_status: int = 500
    retry_after_s: float = 1.0  # sent with 429 and 503
    models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    judge_noise: float = 0.0
    judge_position_bias: float = 0.0
    judge_garbage_rate: float = 0.0
    api_key: str | None = None  # when set, requests must send `Authorization: Bearer <api_key>`
    replay: ReplayBook | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "judge_noise", "judge_position_bias", "judge_garbage_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        if not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 4xx/5xx status, got {self.error_status}")


@dataclass
class Fault:
    error_rate: float = 0.0
    status: int = 500
    retry_after: float | None = None
    latency_ms: float | None = None
    malformed_rate: float = 0.0
    judge_garbage_rate: float | None = None
    until: float = 0.0  # time.monotonic() deadline; math.inf = until cleared
    requests_left: int | None = None  # applies to this many more completions, then ends

    FIELDS = (
        "error_rate",
        "status",
        "retry_after",
        "latency_ms",
        "malformed_rate",
        "judge_garbage_rate",
        "for_seconds",
        "for_requests",
    )

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        unknown = sorted(set(data) - set(cls.FIELDS))
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(unknown)}; known: {', '.join(cls.FIELDS)}")
        fault = cls()
        for name in ("error_rate", "malformed_rate", "judge_garbage_rate"):
            if data.get(name) is not None:
                value = _number(data, name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} must be in [0, 1]")
                setattr(fault, name, value)
        if "status" in data:
            status = data["status"]
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise ValueError("status must be an integer 4xx/5xx status")
            fault.status = status
        for name in ("retry_after", "latency_ms"):
            if data.get(name) is not None:
                value = _number(data, name)
                if value < 0:
                    raise ValueError(f"{name} must be >= 0")
                setattr(fault, name, value)
        seconds = data.get("for_seconds")
        fault.until = math.inf if seconds is None else time.monotonic() + _number(data, "for_seconds")
        if data.get("for_requests") is not None:
            count = data["for_requests"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError("for_requests must be a positive integer")
            fault.requests_left = count
        return fault

    def active(self) -> bool:
        return time.monotonic() < self.until and (self.requests_left is None or self.requests_left > 0)

    def describe(self) -> dict:
        data = asdict(self)
        until = data.pop("until")
        data["remaining_s"] = None if until == math.inf else round(max(0.0, until - time.monotonic()), 3)
        return data


def _number(data: dict, name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)


def token_count(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    return max(1, math.ceil(len(text) / 4))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, code: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _error_body(status: int, message: str, code: str) -> dict:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
    return {"error": {"message": message, "type": kind.get(status, "server_error"), "code": code}}


class SimulatedProvider:
    """The server. Create it, then `await start()` in a loop, or use `start_in_thread`."""

    def __init__(self, config: ProviderConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or ProviderConfig()
        self.host, self.port = host, port
        self.fault: Fault | None = None
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._request_number = 0
        self.stats_reset()

    # -- state ---------------------------------------------------------------

    def stats_reset(self) -> None:
        self.stats: dict[str, Any] = {
            "requests": 0,
            "completions": 0,
            "in_flight": 0,
            "max_in_flight": 0,
            "by_status": {},
            "by_model": {},
        }

    def _model_stats(self, model: str) -> dict:
        return self.stats["by_model"].setdefault(model, {"requests": 0, "in_flight": 0, "max_in_flight": 0})

    def _active_fault(self) -> Fault | None:
        if self.fault is not None and not self.fault.active():
            self.fault = None
        return self.fault

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        async with self._server:
            await self._server.serve_forever()

    def stop(self) -> None:
        """Stop a server started by `start_in_thread` (idempotent)."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return

        async def shutdown() -> None:
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # -- HTTP/1.1 --------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                try:
                    method, target, version = request_line.decode("latin-1").split()
                except ValueError:
                    await self._write(writer, 400, _error_body(400, "bad request line", "bad_request"), {}, False)
                    return
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    body = _error_body(411, "send a Content-Length body", "length_required")
                    await self._write(writer, 411, body, {}, False)
                    return
                try:
                    length = int(headers.get("content-length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY_BYTES:
                    body = _error_body(413, f"body must be 0..{MAX_BODY_BYTES} bytes", "body_too_large")
                    await self._write(writer, 413, body, {}, False)
                    return
                raw = await reader.readexactly(length) if length else b""
                status, payload, extra = await self._dispatch(method, target.split("?", 1)[0], headers, raw)
                await self._write(writer, status, payload, extra, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            # Shutdown: end quietly. Re-raising makes asyncio's stream callback log
            # a traceback per open connection (it calls task.exception()).
            return
        finally:
            writer.close()

    async def _write(self, writer, status: int, payload: Any, headers: dict, keep_alive: bool) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Status"
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"Date: {formatdate(usegmt=True)}",
            "Server: routerops-simulated-provider",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _dispatch(self, method: str, path: str, headers: dict, raw: bytes) -> tuple[int, Any, dict]:
        self.stats["requests"] += 1
        path = path.rstrip("/") or "/"
        try:
            if path in ("/v1/chat/completions", "/chat/completions"):
                self._require(method, "POST")
                status, payload, extra = await self._chat(headers, raw)
            elif path in ("/v1/models", "/models"):
                self._require(method, "GET")
                status, payload, extra = 200, self._models(), {}
            elif path == "/healthz":
                status, payload, extra = 200, {"status": "ok"}, {}
            elif path == "/admin/faults":
                status, payload, extra = 200, self._faults(method, raw), {}
            elif path == "/admin/stats":
                self._require(method, "GET")
                status, payload, extra = 200, self.stats, {}
            elif path == "/admin/stats/reset":
                self._require(method, "POST")
                self.stats_reset()
                status, payload, extra = 200, self.stats, {}
            else:
                raise HttpError(404, f"no route {method} {path}", code="not_found")
        except HttpError as exc:
            status, payload, extra = exc.status, _error_body(exc.status, exc.message, exc.code), exc.headers
        except Exception:  # a bug in the simulation must still answer, as a real 500 would
            logger.exception("simulated provider failed on %s %s", method, path)
            status, payload, extra = 500, _error_body(500, "simulated provider crashed", "internal_error"), {}
        by_status = self.stats["by_status"]
        by_status[str(status)] = by_status.get(str(status), 0) + 1
        return status, payload, extra

    @staticmethod
    def _require(method: str, expected: str) -> None:
        if method != expected:
            raise HttpError(405, f"use {expected}", code="method_not_allowed")

    # -- routes ----------------------------------------------------------------

    def _models(self) -> dict:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": f"routerops-sim ({tier})"}
                for name, tier in sorted(self.config.models.items())
            ],
        }

    def _faults(self, method: str, raw: bytes) -> dict:
        if method == "POST":
            try:
                self.fault = Fault.from_json(json.loads(raw or b"{}"))
            except (ValueError, json.JSONDecodeError) as exc:
                raise HttpError(400, f"bad fault: {exc}", code="invalid_fault") from None
        elif method == "DELETE":
            self.fault = None
        elif method != "GET":
            raise HttpError(405, "use GET, POST or DELETE", code="method_not_allowed")
        fault = self._active_fault()
        return {"fault": fault.describe() if fault else None}

    def _parse_chat(self, headers: dict, raw: bytes) -> tuple[str, str, list[dict], int | None]:
        if self.config.api_key is not None and headers.get("authorization") != f"Bearer {self.config.api_key}":
            raise HttpError(401, "missing or wrong API key", code="invalid_api_key")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HttpError(400, "body is not JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object", code="invalid_request")
        model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
        if not isinstance(model, str) or not model:
            raise HttpError(400, "'model' is required", code="invalid_request")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise HttpError(400, "'messages' must be a non-empty list of objects", code="invalid_request")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise HttpError(400, "'max_tokens' must be a positive integer", code="invalid_request")
        tier = self.config.models.get(model)
        if tier is None:
            raise HttpError(404, f"the model {model!r} does not exist", code="model_not_found")
        return model, tier, messages, max_tokens

    async def _chat(self, headers: dict, raw: bytes) -> tuple[int, Any, dict]:
        model, tier, messages, max_tokens = self._parse_chat(headers, raw)
        self._request_number += 1
        rng = random.Random(f"{self.config.seed}:{self._request_number}")
        fault = self._active_fault()
        if fault and fault.requests_left is not None:
            fault.requests_left -= 1
        model_stats = self._model_stats(model)
        for counter in (self.stats, model_stats):
            counter["in_flight"] += 1
            counter["max_in_flight"] = max(counter["max_in_flight"], counter["in_flight"])
        model_stats["requests"] += 1
        try:
            latency = self.config.latency_ms
            if fault and fault.latency_ms is not None:
                latency = fault.latency_ms
            jitter = self.config.jitter_ms
            delay_ms = max(0.0, latency + (rng.uniform(-jitter, jitter) if jitter else 0.0))
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            error_rate, status, retry_after = (
                self.config.error_rate,
                self.config.error_status,
                self.config.retry_after_s,
            )
            if fault:
                error_rate, status = fault.error_rate, fault.status
                retry_after = fault.retry_after if fault.retry_after is not None else retry_after
            if rng.random() < error_rate:
                extra = {"Retry-After": f"{retry_after:g}"} if status in (429, 503) else {}
                raise HttpError(status, f"simulated {status}", code="simulated_error", headers=extra)
            if fault and rng.random() < fault.malformed_rate:
                return 200, b'{"id": "chatcmpl-broken", "choices": [', {}
            garbage = self.config.judge_garbage_rate
            if fault and fault.judge_garbage_rate is not None:
                garbage = fault.judge_garbage_rate
            text = self._answer(tier, messages, garbage_draw=rng.random() < garbage)
            self.stats["completions"] += 1
            return 200, self._completion(model, messages, text, max_tokens), {}
        finally:
            for counter in (self.stats, model_stats):
                counter["in_flight"] -= 1

    def _answer(self, tier: str, messages: list[dict], *, garbage_draw: bool) -> str:
        if tier == JUDGE_TIER:
            if garbage_draw:
                return GARBAGE_REPLY
            prompt_text = "\n\n".join(_content_text(m.get("content")) for m in messages)
            settings = JudgeSettings(
                seed=self.config.seed, noise=self.config.judge_noise, position_bias=self.config.judge_position_bias
            )
            return simulated_judge_reply(prompt_text, settings, self.config.replay)
        user_turns = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        if not user_turns:
            raise HttpError(400, "no user message", code="invalid_request")
        if self.config.replay is not None:
            record = self.config.replay.record_find(user_turns)
            if record is None:
                raise HttpError(404, "this prompt is not in the replay data", code="prompt_not_recorded")
            return record.answer(tier)
        return scenario.simulated_answer(user_turns[-1], tier, self.config.seed)

    def _completion(self, model: str, messages: list[dict], text: str, max_tokens: int | None) -> dict:
        prompt_tokens = 3 + sum(4 + token_count(_content_text(m.get("content"))) for m in messages)
        completion_tokens, finish_reason = token_count(text), "stop"
        if max_tokens is not None and completion_tokens > max_tokens:
            text, completion_tokens, finish_reason = text[: max_tokens * 4], max_tokens, "length"
        digest = hashlib.sha256(json.dumps([model, messages, text], sort_keys=True).encode()).hexdigest()[:24]
        return {
            "id": f"chatcmpl-sim-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def start_in_thread(port: int = 0, host: str = "127.0.0.1", **config: Any) -> tuple[SimulatedProvider, str]:
    """Start a server on a daemon thread; returns (server, base_url), base_url ending in /v1.

    Keyword arguments are ProviderConfig fields. Call `server.stop()` when done.
    """
    server = SimulatedProvider(ProviderConfig(**config), host=host, port=port)
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    server._thread = threading.Thread(target=run, name=f"simulated-provider-{port}", daemon=True)
    server._thread.start()
    ready.wait(timeout=10)
    if failure:
        raise failure[0]
    return server, server.base_url


def serve(port: int = 8100, host: str = "127.0.0.1", **config: Any) -> None:
    """Run in the foreground until interrupted (the management command's body)."""
    server = SimulatedProvider(ProviderConfig(**config), host=host, port=port)

    async def main() -> None:
        await server.start()
        logger.info("simulated provider listening on %s", server.base_url)
        await server.serve_forever()

    asyncio.run(main())
