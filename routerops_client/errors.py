"""What a failed call raises: the API's one error shape (API.md), or a transport failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routerops_client.summary import IngestSummary


class RouterOpsError(Exception):
    """The API refused a request, or a retryable failure outlasted the retries.

    `status` is the HTTP status (None when no response came at all), and `code`,
    `message`, `details` are the API's `{"error": {code, message, details}}` body.
    `summary` holds what earlier batches of the same call stored before this one
    failed: resending the whole call is safe (decision_id is the idempotency key).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: object = None,
        attempts: int = 1,
        summary: IngestSummary | None = None,
    ):
        super().__init__(f"{status or 'no response'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.attempts = attempts
        self.summary = summary


class RouterOpsTransportError(RouterOpsError):
    """No usable response after every retry: connection refused or reset, timeout."""
