"""When to retry a request and how long to wait first.

Exponential backoff with "full jitter" (delay drawn uniformly from
[0, min(cap, base · 2^attempt)]): of the schemes compared in the AWS
Architecture Blog's "Exponential Backoff and Jitter", it spreads a crowd of
clients retrying after the same outage best, for the fewest total calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 429 and 503 are the API's "come back later"; any other 5xx may be a proxy or a
# restarting worker. All are safe to resend because ingestion is idempotent.
RETRYABLE_STATUSES = frozenset({429}) | frozenset(range(500, 600))


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None if absent/unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass
class RetryPolicy:
    max_retries: int = 8
    backoff_base: float = 0.25
    backoff_cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must be >= 0")

    def delay(self, retry: int, *, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number `retry` (0 for the first retry).

        The server's Retry-After is a floor: we never come back earlier than it
        asked, but it is clamped to backoff_cap so that a confused server cannot
        park a producer for hours (the retry then meets another 429/503 and waits
        again).
        """
        # 2**64 already exceeds any sane cap; a bigger exponent would overflow a float.
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(retry, 64))
        jittered = self.rng.uniform(0.0, ceiling)
        if retry_after is None:
            return jittered
        return max(min(retry_after, self.backoff_cap), jittered)
