"""A simulated world for rollout tests: requests, two routers, a judge, and the sampler.

Every request has a latent "the strong answer is better" (probability `strong_better`
per segment). The baseline routes cheap with a fixed probability regardless of it;
a candidate's routing may depend on it (a better router sends those requests to the
strong tier). Decisions go through the real `decision_ingest_batch`; samples are
ShadowSample rows with the judge's verdict, as the shadow pipeline would leave them.
Sampling probabilities π differ by segment and arm, as the quota and divergence
rules make them, so the estimators' weights are exercised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection

from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch
from router_ops.rollouts.models import Rollout, RolloutStage
from router_ops.rollouts.selectors import routing_config
from router_ops.shadow.models import ShadowSample
from routerops_client.assignment import assign
from segments.services import segment_create

SEGMENTS = {
    # slug: (rule, share of traffic)
    "enterprise-api": ('channel == "api" and user_tier == "enterprise"', 0.03),
    "api": ('channel == "api" and user_tier == "free"', 0.27),
    "chat": ('channel == "chat"', 0.70),
}


def segments_create(application, slugs=tuple(SEGMENTS)) -> None:
    for slug in slugs:
        segment_create(application=application, slug=slug, rule=SEGMENTS[slug][0])


@dataclass
class Router:
    """P(route cheap | strong better) and P(route cheap | not), per segment ("*" = default)."""

    cheap_if_better: dict[str, float]
    cheap_if_not: dict[str, float]

    def p_cheap(self, segment: str, strong_better: np.ndarray) -> np.ndarray:
        a = self.cheap_if_better.get(segment, self.cheap_if_better["*"])
        b = self.cheap_if_not.get(segment, self.cheap_if_not["*"])
        return np.where(strong_better, a, b)


BASELINE = Router({"*": 0.6}, {"*": 0.6})
# Better everywhere: sends most strong-better requests to the strong tier.
BETTER = Router({"*": 0.1}, {"*": 0.7})
# Better on aggregate, but sends every enterprise API request cheap: regret there doubles.
REGRESSES_ENTERPRISE = Router({"*": 0.1, "enterprise-api": 1.0}, {"*": 0.7, "enterprise-api": 1.0})
EQUAL = BASELINE


@dataclass
class World:
    application: object
    baseline: str
    candidate: str
    candidate_router: Router
    seed: int = 0
    strong_better: dict[str, float] = field(default_factory=lambda: {"enterprise-api": 0.3, "api": 0.1, "chat": 0.1})
    # Sampling rates: cheap-routed (rare segments get the quota's high rate), reverse, divergence.
    pi_cheap: dict[str, float] = field(default_factory=lambda: {"enterprise-api": 1.0, "api": 0.3, "chat": 0.2})
    pi_reverse: float = 0.1
    pi_divergence: float = 0.5
    # Canary stages: the sampler favours the candidate's few requests over the baseline's many,
    # aiming at about as many judged samples per arm.
    pi_cheap_candidate: float = 1.0
    counter: int = 0

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        # The application's salt is random per row, and it decides which units the candidate
        # gets: with it, the sample-ratio check would see different counts on every run (and
        # pause a rollout by chance about once in a few hundred runs). A salt from the seed
        # makes the whole world, assignment included, the same on every run.
        self.application.salt = f"simulation-{self.seed}"
        self.application.save(update_fields=["salt"])

    def _segments(self, n: int) -> np.ndarray:
        slugs = list(SEGMENTS)
        return self.rng.choice(slugs, size=n, p=[SEGMENTS[s][1] for s in slugs])

    def _attributes(self, segment: str) -> dict:
        if segment == "enterprise-api":
            return {"channel": "api", "user_tier": "enterprise"}
        if segment == "api":
            return {"channel": "api", "user_tier": "free"}
        return {"channel": "chat", "user_tier": "free"}

    def traffic(self, *, start: datetime, n: int, dark: bool) -> None:
        """n requests in the half hour from `start`: decisions and judged samples.

        Units are assigned with the real routing config and the client's hash, so
        the counts per version match the stage's weight (the SRM check sees real assignment).
        """
        config = routing_config(application=self.application)
        weight = config["versions"][0]["weight_bp"] if len(config["versions"]) == 2 else 10000
        pi_cheap_baseline = min(1.0, weight / max(1, 10000 - weight))
        segs = self._segments(n)
        items, truth = [], []
        for i in range(n):
            self.counter += 1
            unit = f"u-{self.seed}-{self.counter}"
            version = self.baseline if dark else assign(config["versions"], config["salt"], unit)
            seg = str(segs[i])
            better = bool(self.rng.random() < self.strong_better[seg])
            router = BASELINE if version == self.baseline else self.candidate_router
            cheap = bool(self.rng.random() < router.p_cheap(seg, np.array(better)))
            item = {
                "decision_id": f"d-{self.seed}-{self.counter}",
                "occurred_at": (start + timedelta(seconds=1800 * i / n)).isoformat(),
                "router_version": version,
                "unit_id": unit,
                "routed_to": "cheap" if cheap else "strong",
                "attributes": self._attributes(seg),
                "prompt_tokens": 500,
                "completion_tokens": 200,
                "cost_usd": 0.001 if cheap else 0.01,
            }
            shadow_cheap = None
            if dark:
                shadow_cheap = bool(self.rng.random() < self.candidate_router.p_cheap(seg, np.array(better)))
                item["shadow_decisions"] = [
                    {"router_version": self.candidate, "routed_to": "cheap" if shadow_cheap else "strong"}
                ]
            items.append(item)
            truth.append((seg, better, cheap, shadow_cheap, version))
        for chunk in range(0, n, 5000):
            # sample=False: this world draws its own samples (with known π) below, as the sampler would.
            result = decision_ingest_batch(
                application=self.application, items=items[chunk : chunk + 5000], sample=False
            )
            assert result.rejected == 0, result.errors[:3]
        ids = dict(
            Decision.objects.filter(
                application=self.application, decision_id__in=[item["decision_id"] for item in items]
            ).values_list("decision_id", "id")
        )
        samples = []
        judged_at = start
        for item, (seg, better, cheap, shadow_cheap, version) in zip(items, truth, strict=True):
            if dark:
                pi = self.pi_cheap[seg] if cheap else self.pi_reverse
            elif cheap:
                pi = self.pi_cheap_candidate if version == self.candidate else pi_cheap_baseline
            else:
                continue  # canary gates read cheap-routed samples only
            if shadow_cheap is not None and shadow_cheap != cheap:
                pi = max(pi, self.pi_divergence)
            if self.rng.random() >= pi:
                continue
            judged_at += timedelta(milliseconds=10)
            if cheap:
                direction, verdict = ShadowSample.DIRECTION_UP, "shadow_better" if better else "equivalent"
            else:
                direction, verdict = ShadowSample.DIRECTION_DOWN, "primary_better" if better else "equivalent"
            samples.append(
                ShadowSample(
                    application=self.application,
                    decision_id=ids[item["decision_id"]],
                    direction=direction,
                    primary_tier="cheap" if cheap else "strong",
                    shadow_tier="strong" if cheap else "cheap",
                    inclusion_probability=pi,
                    reason="base",
                    status=ShadowSample.DONE,
                    judge_status=ShadowSample.DONE,
                    verdict=verdict,
                    materially_disagree=better,
                    judged_at=judged_at,
                )
            )
        ShadowSample.objects.bulk_create(samples)
        # In production autovacuum keeps planner statistics; rows written inside a test
        # transaction are invisible to it, and a plan made for "empty" tables can turn the
        # evidence queries into nested loops over tens of thousands of rows. ANALYZE may run
        # inside the transaction and sees its rows.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingest_decision")
            cursor.execute("ANALYZE shadow_shadowsample")


def current_stage(rollout: Rollout) -> RolloutStage:
    rollout.refresh_from_db()
    return RolloutStage.objects.get(rollout=rollout, order=rollout.current_stage)
