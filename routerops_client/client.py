"""A small synchronous client for the RouterOps ingestion API (API.md, v1)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from types import TracebackType

import httpx

from routerops_client.assignment import assign
from routerops_client.errors import RouterOpsError, RouterOpsTransportError
from routerops_client.retry import RETRYABLE_STATUSES, RetryPolicy, retry_after_seconds
from routerops_client.summary import IngestSummary

__version__ = "0.1.0"

logger = logging.getLogger("routerops_client")

MAX_BATCH = 1000  # the API's limit per request
MAX_BODY_BYTES = 5 * 1024 * 1024  # the API's default body limit (413 beyond it)

# Failures where the request may or may not have reached the server; a resend is
# harmless because the server deduplicates on decision_id.
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"naive datetime {value.isoformat()} has no timezone; RFC 3339 needs one")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _with_feedback_id(item: dict) -> dict:
    if not isinstance(item, dict) or item.get("feedback_id"):
        return item
    digest = hashlib.sha256(_encode(dict(sorted(item.items())))).hexdigest()[:32]
    return {**item, "feedback_id": f"fb-{digest}"}


def _encode(item: object) -> bytes:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


class RouterOpsClient:
    """Sends routing decisions and feedback to RouterOps.

    Every call is safe to resend: `decision_id` is the idempotency key, so a
    decision the server already stored comes back as a duplicate, not a second
    row. That is what makes the retries below safe even when a timeout hides
    whether the first attempt landed.

    A request is retried on 429, 503 and any other 5xx and on connection errors
    and timeouts, at most `max_retries` times, sleeping with exponential backoff
    and full jitter (capped at `backoff_cap` seconds) and never less than the
    server's `Retry-After`. Any other 4xx raises `RouterOpsError` at once with
    the API's error body. A 207 is not an error: the summary lists the rejected
    items, indexed into the caller's list.

    `add()` buffers decisions and sends a batch when `batch_size` are waiting;
    `flush()` sends the rest; used as a context manager the client flushes on
    exit. The buffer is not thread-safe: give each thread its own client.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        timeout: float = 10.0,
        max_retries: int = 8,
        backoff_base: float = 0.25,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        max_body_bytes: int = MAX_BODY_BYTES,
        rng: random.Random | None = None,
    ):
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
        if not api_key:
            raise ValueError("api_key is empty")
        self.batch_size = batch_size
        self.max_body_bytes = max_body_bytes
        self.retry = RetryPolicy(
            max_retries=max_retries, backoff_base=backoff_base, backoff_cap=backoff_cap, rng=rng or random.Random()
        )
        self._sleep = sleep
        self._pending: list[dict] = []
        self._routing_config: dict | None = None
        self._routing_etag: str | None = None
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"routerops-client/{__version__} httpx/{httpx.__version__}",
            },
        )

    # -- ingestion ---------------------------------------------------------

    def send_decisions(self, decisions: Sequence[dict]) -> IngestSummary:
        """Send decisions in batches of at most `batch_size` (and under the body limit).

        1. Encode every decision first, so a value JSON cannot hold fails before anything is sent.
        2. POST each batch as {"decisions": [...]}, retrying transient failures.
        3. Sum the batches' counts; error indexes point into `decisions`.
        If a batch finally fails, the RouterOpsError carries the summary of the
        batches already stored; resending all of `decisions` is safe.
        """
        return self._send("/api/v1/decisions", "decisions", decisions)

    def send_feedback(self, items: Sequence[dict]) -> IngestSummary:
        """Send feedback items ({decision_id, kind, value?, occurred_at?, feedback_id?}) in batches.

        An item without `feedback_id` gets one derived from its content, so a retried
        request never stores the same feedback twice (the server deduplicates on it).
        """
        return self._send("/api/v1/feedback", "feedback", [_with_feedback_id(item) for item in items])

    def add(self, decision: dict) -> IngestSummary | None:
        """Buffer one decision; when `batch_size` are waiting, send them and return that summary."""
        self._pending.append(decision)
        if len(self._pending) >= self.batch_size:
            return self.flush()
        return None

    @property
    def pending(self) -> int:
        """Decisions buffered by `add()` and not yet stored."""
        return len(self._pending)

    def flush(self) -> IngestSummary:
        """Send every buffered decision. On failure they stay buffered for the next flush."""
        if not self._pending:
            return IngestSummary()
        batch = list(self._pending)
        summary = self.send_decisions(batch)
        # Only now: an exception above leaves the buffer whole, and resending is safe.
        del self._pending[: len(batch)]
        return summary

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RouterOpsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.flush()
        finally:
            self.close()

    # -- internals ---------------------------------------------------------

    def _batches(self, items: Sequence[dict], key: str) -> list[tuple[int, bytes]]:
        """(offset of the batch's first item, request body) for contiguous batches of `items`."""
        head = b'{"' + key.encode() + b'":['
        tail = b"]}"
        encoded = [_encode(item) for item in items]
        batches: list[tuple[int, bytes]] = []
        start = 0
        while start < len(encoded):
            size = len(head) + len(tail) + len(encoded[start])
            end = start + 1
            # A single item over the limit still goes alone: the server's 413 then names it.
            while end < len(encoded) and end - start < self.batch_size:
                size += 1 + len(encoded[end])  # the comma
                if size > self.max_body_bytes:
                    break
                end += 1
            batches.append((start, head + b",".join(encoded[start:end]) + tail))
            start = end
        return batches

    def _send(self, path: str, key: str, items: Sequence[dict]) -> IngestSummary:
        summary = IngestSummary()
        for offset, body in self._batches(items, key):
            try:
                response_body = self._post(path, body)
            except RouterOpsError as error:
                error.summary = summary
                raise
            summary.add_batch(response_body, offset=offset)
        return summary

    def _post(self, path: str, body: bytes) -> dict:
        response, attempts = self._request("POST", path, content=body)
        return self._json(response, attempts)

    def _request(
        self, method: str, path: str, *, content: bytes | None = None, headers: dict | None = None
    ) -> tuple[httpx.Response, int]:
        """The response (2xx or 304) and the attempts it took; retries transient failures."""
        attempts = 0
        while True:
            attempts += 1
            retry_number = attempts - 1
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except _RETRYABLE_TRANSPORT as exc:
                if retry_number >= self.retry.max_retries:
                    raise RouterOpsTransportError(
                        f"{type(exc).__name__}: {exc}", code="transport_error", attempts=attempts
                    ) from exc
                delay = self.retry.delay(retry_number)
                logger.warning("RouterOps %s: %s; retry %d in %.2fs", path, type(exc).__name__, attempts, delay)
                self._sleep(delay)
                continue

            if response.is_success or response.status_code == 304:
                return response, attempts
            if response.status_code in RETRYABLE_STATUSES and retry_number < self.retry.max_retries:
                retry_after = retry_after_seconds(response.headers.get("Retry-After"), now=datetime.now(UTC))
                delay = self.retry.delay(retry_number, retry_after=retry_after)
                logger.warning("RouterOps %s: HTTP %d; retry %d in %.2fs", path, response.status_code, attempts, delay)
                self._sleep(delay)
                continue
            raise self._error(response, attempts)

    # -- routing -----------------------------------------------------------

    def routing_config(self) -> dict:
        """The application's routing config (API.md), cached by ETag.

        A repeat call sends If-None-Match; on 304 the cached config is returned,
        so polling every few seconds costs the server almost nothing.
        """
        headers = {"If-None-Match": self._routing_etag} if self._routing_etag else None
        response, attempts = self._request("GET", "/api/v1/routing-config", headers=headers)
        if response.status_code == 304 and self._routing_config is not None:
            return self._routing_config
        self._routing_config = self._json(response, attempts)
        self._routing_etag = response.headers.get("ETag")
        return self._routing_config

    def assign(self, unit_id: str) -> str:
        """The router version this unit is assigned to, computed locally (sticky, deterministic)."""
        config = self.routing_config()
        return assign(config["versions"], config["salt"], unit_id)

    @staticmethod
    def _json(response: httpx.Response, attempts: int) -> dict:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise RouterOpsError(
                f"expected a JSON object, got {response.text[:200]!r}",
                status=response.status_code,
                code="bad_response",
                attempts=attempts,
            )
        return data

    @staticmethod
    def _error(response: httpx.Response, attempts: int) -> RouterOpsError:
        try:
            data = response.json()
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            return RouterOpsError(
                str(error.get("message", "")),
                status=response.status_code,
                code=str(error.get("code") or f"http_{response.status_code}"),
                details=error.get("details"),
                attempts=attempts,
            )
        # Not the API's shape: a proxy or load balancer answered.
        return RouterOpsError(
            response.text[:500] or response.reason_phrase,
            status=response.status_code,
            code=f"http_{response.status_code}",
            attempts=attempts,
        )
