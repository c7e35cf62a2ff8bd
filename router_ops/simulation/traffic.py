"""Decisions of the demo's simulated production router, built from the simulated world.

Pure and deterministic (no Django, no clock): `decision_build` turns the i-th
request of a seeded `Scenario` into the decision dict the router would POST to
/api/v1/decisions. `manage.py simulate_traffic` paces and sends them.

Two routers look at each request:

- the *primary* router (e.g. "v1") routes on the scenario's router score:
  strong when score >= threshold. It is fooled by the enterprise scripted-API
  prompts ("BULK-…"): they look short and easy, score low, and go cheap, where
  they are answered badly (the seed's story, see scenario.py);
- the *candidate* router (e.g. "v2"), logged in `shadow_decisions` and never
  served, uses a better score: the same score, except that a prompt starting
  with "BULK-" scores at least CANDIDATE_BULK_SCORE (0.95), so it goes strong
  at any threshold up to that. The two routers therefore disagree on exactly
  the BULK- requests the primary sends cheap.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from router_ops.simulation.scenario import Scenario, SimRequest, simulated_answer

TIER_MODELS = {"cheap": "sim-cheap", "strong": "sim-strong"}
BULK_PREFIX = "BULK-"
CANDIDATE_BULK_SCORE = 0.95

# Latency of a simulated call: a fixed overhead plus a per-output-token cost, the
# strong model being slower on both (ms), with ±20 % noise.
_LATENCY_MS = {"cheap": (120.0, 1.5), "strong": (450.0, 9.0)}


DEFAULT_SEED = 7


def decision_id_prefix(seed: int) -> str:
    return f"sim-s{seed}-"


def decision_id_for(*, seed: int, index: int) -> str:
    """The same id for the same (seed, index), so a rerun of the generator is a no-op on the server.
    Zero-padded, so ids sort as their indexes do."""
    return f"{decision_id_prefix(seed)}{index:010d}"


def candidate_score(request: SimRequest) -> float:
    if request.prompt.startswith(BULK_PREFIX):
        return max(request.router_score, CANDIDATE_BULK_SCORE)
    return request.router_score


def latency_ms(*, seed: int, index: int, tier: str, completion_tokens: int) -> float:
    overhead, per_token = _LATENCY_MS[tier]
    noise = random.Random(f"{seed}:{index}:latency").uniform(0.8, 1.2)
    return round((overhead + per_token * completion_tokens) * noise, 1)


def rfc3339(moment: datetime) -> str:
    """UTC with a Z and millisecond precision, e.g. 2026-11-24T10:15:00.123Z."""
    if moment.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decision_build(
    request: SimRequest,
    *,
    seed: int,
    occurred_at: datetime,
    threshold: float = 0.5,
    router_version: str = "v1",
    candidate: str | None = "v2",
) -> dict:
    """The decision the primary router reports for `request`, with the candidate's as a shadow decision.

    The response is `simulated_answer` with its default world seed, not the
    traffic seed: the simulated provider answers shadow calls that way, and the
    primary's answer must be the one that provider would have given.
    """
    routed_to = request.routed_to(threshold)
    decision = {
        "decision_id": decision_id_for(seed=seed, index=request.index),
        "occurred_at": rfc3339(occurred_at),
        "router_version": router_version,
        "unit_id": request.unit_id,
        "routed_to": routed_to,
        "model": TIER_MODELS[routed_to],
        "router_score": request.router_score,
        "prompt": request.prompt,
        "response": simulated_answer(request.prompt, routed_to),
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": request.completion_tokens,
        "latency_ms": latency_ms(
            seed=seed, index=request.index, tier=routed_to, completion_tokens=request.completion_tokens
        ),
        "attributes": dict(request.attributes),
        "shadow_decisions": [],
    }
    if candidate:
        score = candidate_score(request)
        decision["shadow_decisions"].append(
            {
                "router_version": candidate,
                "routed_to": "strong" if score >= threshold else "cheap",
                "router_score": score,
            }
        )
    return decision


def decisions_build(
    scenario: Scenario,
    *,
    start_index: int,
    count: int,
    occurred_at: datetime,
    threshold: float = 0.5,
    router_version: str = "v1",
    candidate: str | None = "v2",
) -> list[dict]:
    """`count` consecutive decisions from `start_index`, all at `occurred_at` (for tests and bulk loads)."""
    return [
        decision_build(
            scenario.request(index),
            seed=scenario.seed,
            occurred_at=occurred_at,
            threshold=threshold,
            router_version=router_version,
            candidate=candidate,
        )
        for index in range(start_index, start_index + count)
    ]
