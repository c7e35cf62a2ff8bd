"""The outcome of an ingestion call, summed over the batches it took."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestSummary:
    """Counts as the API reports them; `errors` carry indexes into the caller's list.

    `requests` counts HTTP requests that got a 2xx (one per batch), not attempts.
    """

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    requests: int = 0

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + self.rejected

    def add_batch(self, body: dict, *, offset: int) -> None:
        """Fold in one batch's response body; its item indexes start at `offset` in the caller's list."""
        self.accepted += int(body.get("accepted", 0))
        self.duplicates += int(body.get("duplicates", 0))
        self.rejected += int(body.get("rejected", 0))
        for error in body.get("errors") or []:
            self.errors.append({**error, "index": error.get("index", 0) + offset})
        self.requests += 1

    def merge(self, other: IngestSummary, *, offset: int = 0) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.errors.extend({**error, "index": error["index"] + offset} for error in other.errors)
        self.requests += other.requests
