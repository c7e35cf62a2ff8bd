"""Simulated judged shadow samples (the seed's world, router_ops/simulation/scenario.py),
written through the real tables so discovery reads them through `discovery_observations`.

Regret (verdict shadow_better) is 35 % for the enterprise-scripted-API kind and 8 %
for every other request; the sampler over-samples rare kinds (π = 0.6 for the
scripted API kind, 0.3 for enterprise UI, 0.1 for the rest).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
from django.utils import timezone

from router_ops.ingest.models import Decision
from router_ops.rollouts.models import RouterVersion
from router_ops.shadow.models import ShadowSample
from router_ops.simulation.scenario import Scenario

SEEDED_KIND = "enterprise-scripted-api"
SEEDED_RULE = 'channel == "api" and user_tier == "enterprise"'
REGRET = {SEEDED_KIND: 0.35}
BASE_REGRET = 0.08
PI = {SEEDED_KIND: 0.6, "enterprise-ui": 0.3}
BASE_PI = 0.1


def inclusion_probability(kind: str) -> float:
    return PI.get(kind, BASE_PI)


def insert_judged_samples(
    application, *, requests: int, seed: int = 7, null: bool = False, now: datetime | None = None
) -> int:
    """Draw `requests` simulated requests, keep each with its π (Poisson sampling), and
    write the kept ones as cheap-routed decisions with a judged ShadowSample. Returns
    the number of samples written."""
    now = now or timezone.now()
    version, _ = RouterVersion.objects.get_or_create(application=application, name="v1")
    scenario = Scenario(seed=seed)
    rng = random.Random(seed)
    decisions, meta = [], []
    for i in range(requests):
        request = scenario.request(i)
        pi = inclusion_probability(request.kind)
        if rng.random() >= pi:
            continue
        regret = BASE_REGRET if null else REGRET.get(request.kind, BASE_REGRET)
        verdict = "shadow_better" if rng.random() < regret else rng.choice(["primary_better", "equivalent"])
        decisions.append(
            Decision(
                application=application,
                decision_id=f"sim-{seed}-{i}",
                occurred_at=now - timedelta(minutes=1 + i % 5000),
                router_version=version,
                unit_id=request.unit_id,
                routed_to="cheap",
                prompt_tokens=request.prompt_tokens,
                attributes=request.attributes,
            )
        )
        meta.append((pi, verdict))
    Decision.objects.bulk_create(decisions, batch_size=2000)
    ShadowSample.objects.bulk_create(
        [
            ShadowSample(
                application=application,
                decision=decision,
                direction=ShadowSample.DIRECTION_UP,
                primary_tier="cheap",
                shadow_tier="strong",
                inclusion_probability=pi,
                reason="quota",
                status="done",
                judge_status="done",
                verdict=verdict,
                judged_at=now,
            )
            for decision, (pi, verdict) in zip(decisions, meta, strict=True)
        ],
        batch_size=2000,
    )
    return len(decisions)


def null_pool(requests: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """Attributes and π of `requests` simulated requests (the population the null datasets sample from)."""
    scenario = Scenario(seed=seed)
    pool = [scenario.request(i) for i in range(requests)]
    return [r.attributes for r in pool], np.array([inclusion_probability(r.kind) for r in pool])
