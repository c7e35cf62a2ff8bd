"""Sticky canary assignment: the public contract every client implements identically.

Standard library only, so a router can import it without Django or the HTTP client.

1. `bucket = int.from_bytes(sha256(f"{salt}:{unit_id}".encode("utf-8")).digest()[:8], "big") % 10000`
2. Walk the routing config's `versions` in the listed order, summing `weight_bp`;
   the unit gets the first version whose running sum exceeds its bucket.

The server lists the rollout candidate first, so raising its weight only grows
the interval [0, weight) of buckets it owns: a unit in the candidate at 1 % is
still in it at 5 %. The modulo bias of 2**64 mod 10000 is below 1e-15: negligible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

BUCKETS = 10_000


def bucket(salt: str, unit_id: str) -> int:
    """The unit's bucket in [0, 10000) for this salt."""
    digest = hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _pairs(versions: Iterable[tuple[str, int] | Mapping]) -> list[tuple[str, int]]:
    pairs = []
    for item in versions:
        if isinstance(item, Mapping):
            name, weight = item["router_version"], item["weight_bp"]
        else:
            name, weight = item
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ValueError(f"weight_bp of {name!r} must be a non-negative integer, got {weight!r}")
        pairs.append((name, weight))
    total = sum(weight for _, weight in pairs)
    if total != BUCKETS:
        raise ValueError(f"weight_bp must sum to {BUCKETS}, got {total}")
    return pairs


def assign_bucket(versions: Iterable[tuple[str, int] | Mapping], bucket_: int) -> str:
    """The version owning `bucket_` under the contract's walk (for callers that already hashed)."""
    running = 0
    for name, weight in _pairs(versions):
        running += weight
        if running > bucket_:
            return name
    raise ValueError(f"bucket {bucket_} is outside [0, {BUCKETS})")


def assign(versions: Iterable[tuple[str, int] | Mapping], salt: str, unit_id: str) -> str:
    """The router version for `unit_id`.

    `versions` is the routing config's list (dicts with `router_version` and
    `weight_bp`) or `(name, weight_bp)` pairs, in the order the server listed them.
    """
    return assign_bucket(versions, bucket(salt, unit_id))
