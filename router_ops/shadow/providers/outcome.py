"""What a provider call returns or raises."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float  # of the successful attempt (request sent → response parsed)
    cost_usd: float  # usage × the endpoint's prices per million tokens
    model: str  # as the provider reports it (the endpoint's model when it does not)
    attempts: int  # HTTP attempts made, the successful one included


class ProviderError(Exception):
    """A call that did not produce an answer.

    `retryable` says whether trying again later may succeed (429, 5xx, timeouts,
    connection errors); `status` is the HTTP status when there was a response;
    `reason` is safe to store and show (it never contains the secret);
    `retry_after` is the provider's requested wait in seconds, when it sent one;
    `attempts` is how many HTTP attempts were made (0 when none could start).
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 0,
    ):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.reason!r}, retryable={self.retryable}, status={self.status}, "
            f"retry_after={self.retry_after}, attempts={self.attempts})"
        )
