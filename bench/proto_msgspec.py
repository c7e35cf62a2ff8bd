#!/usr/bin/env python3
"""Prototype: decode + validate a 1000-decision batch with msgspec, falling back to the
hand-written validator (router_ops/ingest/validation.py) whenever msgspec refuses.

    PYTHONPATH=/tmp/msgspec_proto .venv/bin/python bench/proto_msgspec.py

(msgspec is not a project dependency: `pip install --target /tmp/msgspec_proto msgspec`.)

The fast path only ever *accepts* what the hand-written validator accepts (its
constraints are the same or stricter), so the API contract and error shape stay
exactly as they are: any batch msgspec rejects is re-validated item by item by the
existing code, which produces the per-item errors. Checked below on the bench's
payloads: the clean values are identical.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import decisions_generate  # noqa: E402
from router_ops.ingest import validation as v  # noqa: E402

NonBlank = lambda n: Annotated[str, msgspec.Meta(min_length=1, max_length=n, pattern=r"\S")]  # noqa: E731
NonNeg = Annotated[float, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0, le=v.MAX_INT)]


class Shadow(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    router_version: NonBlank(v.MAX_VERSION)
    routed_to: NonBlank(32)
    router_score: float | None = None


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    decision_id: NonBlank(v.MAX_ID)
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    router_version: NonBlank(v.MAX_VERSION)
    unit_id: NonBlank(v.MAX_ID)
    routed_to: NonBlank(32)
    model: Annotated[str, msgspec.Meta(max_length=v.MAX_MODEL)] | None = None
    router_score: float | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    response: str | None = None
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    latency_ms: NonNeg | None = None
    cost_usd: Annotated[float, msgspec.Meta(ge=0, le=v.MAX_COST)] | None = None
    attributes: msgspec.Raw = msgspec.Raw(b"{}")  # JSON null arrives as b"null": the exact path handles it
    shadow_decisions: Annotated[list[Shadow], msgspec.Meta(max_length=v.MAX_SHADOW_DECISIONS)] | None = None


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    decisions: Annotated[list[Decision], msgspec.Meta(min_length=1, max_length=1000)]


decoder = msgspec.json.Decoder(Batch)
encoder = msgspec.json.Encoder()


def fast_validate(body: bytes, tiers: frozenset[str]) -> list[v.CleanDecision] | None:
    """The clean decisions, or None: then run the existing (slow, exact) path."""
    if b"\\u0000" in body:  # NUL anywhere: let the exact validator say where
        return None
    try:
        batch = decoder.decode(body)
    except msgspec.ValidationError:
        return None
    out = []
    for d in batch.decisions:
        if d.routed_to not in tiers or (d.prompt is not None and d.messages is not None) or d.messages is not None:
            return None  # rare cases: the exact path handles them
        attributes = bytes(d.attributes)
        if attributes[:1] != b"{" or len(attributes) > v.MAX_ATTRIBUTES_BYTES:
            return None
        shadows = d.shadow_decisions or []
        for s in shadows:
            if s.routed_to not in tiers:
                return None
        out.append(
            v.CleanDecision(
                decision_id=d.decision_id,
                occurred_at=d.occurred_at,
                router_version=d.router_version,
                unit_id=d.unit_id,
                routed_to=d.routed_to,
                model=d.model or "",
                router_score=d.router_score,
                prompt=d.prompt,
                messages=None,
                response=d.response,
                prompt_tokens=d.prompt_tokens,
                completion_tokens=d.completion_tokens,
                latency_ms=d.latency_ms,
                cost_usd=d.cost_usd,
                attributes={},  # not needed on the insert path (the JSON text is)
                attributes_json=attributes.decode(),
                shadow_decisions=[],
                shadow_decisions_json=encoder.encode(shadows).decode(),
            )
        )
    return out


def main() -> int:
    tiers = frozenset({"cheap", "strong"})
    decisions = decisions_generate(30_000, seed=5, tag="m")
    bodies = [orjson.dumps({"decisions": decisions[i : i + 1000]}) for i in range(0, len(decisions), 1000)]

    def med(xs):
        return sorted(xs)[len(xs) // 2]

    slow, fast = [], []
    for body in bodies:
        t = time.perf_counter()
        exact = [v.decision_validate(item, tiers) for item in orjson.loads(body)["decisions"]]
        slow.append(time.perf_counter() - t)
        t = time.perf_counter()
        quick = fast_validate(body, tiers)
        fast.append(time.perf_counter() - t)
        assert quick is not None
        for a, b in zip(exact, quick, strict=True):
            for field in ("decision_id", "occurred_at", "router_version", "unit_id", "routed_to", "model",
                          "router_score", "prompt", "response", "prompt_tokens", "completion_tokens", "latency_ms",
                          "cost_usd"):  # fmt: skip
                assert getattr(a, field) == getattr(b, field), field
            assert orjson.loads(a.attributes_json) == orjson.loads(b.attributes_json)
            assert orjson.loads(a.shadow_decisions_json) == orjson.loads(b.shadow_decisions_json)
    print("Per batch of 1000 decisions (median of 30), parse + validate:")
    print(f"  orjson.loads + decision_validate × 1000 (today)   {med(slow) * 1000:6.2f} ms")
    print(f"  msgspec decode into Structs + checks (prototype)   {med(fast) * 1000:6.2f} ms")
    print("  clean values identical on all 30,000 decisions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
