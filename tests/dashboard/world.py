"""A small but realistic application for page tests: decisions ingested through the real
service, shadow samples, shadow runs and judgments written through the ORM, then rolled up.

Shared by tests/dashboard, tests/alerts and tests/e2e (one place for the test data)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch, feedback_ingest_batch
from router_ops.judging.models import Judge, Judgment
from router_ops.rollouts.models import RouterVersion
from router_ops.rollups.services import rollup_mark_dirty, rollup_refresh
from router_ops.shadow.models import ShadowRun, ShadowSample
from segments.membership import segment_matcher_clear
from segments.models import Segment

# slug, name, rule, attributes of its traffic, probability the strong answer is better
SEGMENTS = [
    (
        "enterprise-api",
        "Enterprise API",
        'channel == "api" and user_tier == "enterprise"',
        {"channel": "api", "user_tier": "enterprise"},
        0.45,
    ),
    (
        "free-web",
        "Free web users",
        'channel == "web" and user_tier == "free"',
        {"channel": "web", "user_tier": "free"},
        0.05,
    ),
    (
        "pro-web",
        "Pro web users",
        'channel == "web" and user_tier == "pro"',
        {"channel": "web", "user_tier": "pro"},
        0.12,
    ),
]
TRAFFIC_MIX = [0.2, 0.5, 0.3]

PROMPTS = {
    "enterprise-api": "Export all admin audit events for tenant {n} as CSV with ISO timestamps.",
    "free-web": "What's a good name for a golden retriever puppy? (#{n})",
    "pro-web": "Summarise this quarterly report in three bullet points. Ref {n}.",
}


@dataclass
class World:
    application: Application
    segments: dict[str, Segment]
    versions: dict[str, RouterVersion]
    samples: list[ShadowSample] = field(default_factory=list)


def now_hour() -> datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def build_world(
    application: Application,
    *,
    decisions: int = 600,
    hours: int = 72,
    seed: int = 7,
    sample_rate: float = 0.5,
    extra_items: list[dict] | None = None,
    segments: list[tuple] | None = None,
) -> World:
    """1. Model endpoints and segments. 2. Decisions (v1 active; v2 on a fifth of the traffic)
    through decision_ingest_batch. 3. Samples with π, shadow runs and judgments for a share of
    them. 4. Some feedback. 5. rollup_refresh()."""
    rng = random.Random(seed)
    ModelEndpoint.objects.get_or_create(
        application=application,
        name="small",
        defaults=dict(
            tier="cheap",
            base_url="http://127.0.0.1:1/v1",
            model="small-1",
            input_price_per_mtok=Decimal("0.15"),
            output_price_per_mtok=Decimal("0.60"),
        ),
    )
    ModelEndpoint.objects.get_or_create(
        application=application,
        name="big",
        defaults=dict(
            tier="strong",
            base_url="http://127.0.0.1:1/v1",
            model="big-1",
            input_price_per_mtok=Decimal("2.50"),
            output_price_per_mtok=Decimal("10"),
        ),
    )
    spec = segments if segments is not None else SEGMENTS
    made = {}
    for slug, name, rule, _attrs, _p in spec:
        made[slug], _ = Segment.objects.get_or_create(
            application=application, slug=slug, defaults={"name": name, "rule": rule}
        )
    segment_matcher_clear()

    start = now_hour() - timedelta(hours=hours - 1)
    items = []
    truth = {}
    for i in range(decisions):
        k = rng.choices(range(len(spec)), weights=TRAFFIC_MIX[: len(spec)] if len(spec) <= 3 else None)[0]
        slug, _name, _rule, attrs, p_bad = spec[k]
        version = "v2" if rng.random() < 0.2 else "v1"
        cheap = rng.random() < (0.8 if version == "v1" else 0.9)
        occurred = start + timedelta(minutes=rng.randrange(hours * 60))
        items.append(
            {
                "decision_id": f"d-{i}",
                "occurred_at": occurred.isoformat(),
                "router_version": version,
                "unit_id": f"u-{rng.randrange(200)}",
                "routed_to": "cheap" if cheap else "strong",
                "model": "small-1" if cheap else "big-1",
                "prompt": PROMPTS.get(slug, "Question {n}").format(n=i),
                "response": f"{'Cheap' if cheap else 'Strong'} answer to request {i}.",
                "prompt_tokens": 800 + rng.randrange(400),
                "completion_tokens": 200 + rng.randrange(200),
                "attributes": {"locale": rng.choice(["en-US", "de-DE", "fr-FR"]), **attrs},
            }
        )
        truth[f"d-{i}"] = (slug, p_bad if version == "v1" else p_bad * 0.6)
    items += extra_items or []
    for chunk in range(0, len(items), 500):
        result = decision_ingest_batch(application=application, items=items[chunk : chunk + 500])
        assert not result.errors, result.errors[:3]
    # Ingestion samples by the application's policy and leaves pending outbox rows; these
    # tests write judged pairs with known verdicts instead, so the pipeline's rows go.
    ShadowSample.objects.filter(application=application).delete()
    versions = {v.name: v for v in RouterVersion.objects.filter(application=application)}
    RouterVersion.objects.filter(application=application, name="v1").update(status="active")
    RouterVersion.objects.filter(application=application, name="v2").update(status="canary")

    judge, _ = Judge.objects.get_or_create(
        application=application,
        name="pairwise-gpt",
        defaults=dict(kind="pairwise_llm", model="big", prompt_version="rubric-3"),
    )
    world = World(application=application, segments=made, versions=versions)
    rows = list(Decision.objects.filter(application=application).order_by("id"))
    for d in rows:
        if d.decision_id not in truth:
            continue
        slug, p_bad = truth[d.decision_id]
        up = d.routed_to == "cheap"
        pi = (0.9 if slug == "enterprise-api" else sample_rate) if up else 0.25
        if rng.random() >= pi:
            continue
        if up:
            bad = rng.random() < p_bad
            verdict = "shadow_better" if bad else rng.choice(["equivalent", "equivalent", "primary_better"])
        else:
            verdict = rng.choice(["equivalent", "primary_better", "primary_better"])
        disagree = verdict != "equivalent" and rng.random() < 0.9
        world.samples.append(
            ShadowSample(
                application=application,
                decision=d,
                direction="cheap_to_strong" if up else "strong_to_cheap",
                primary_tier=d.routed_to,
                shadow_tier="strong" if up else "cheap",
                inclusion_probability=pi,
                reason="quota" if slug == "enterprise-api" else "base",
                segment_ids=d.segment_ids,
                status="done",
                judge_status="done",
                verdict=verdict,
                materially_disagree=disagree,
                judged_at=d.occurred_at,
            )
        )
    ShadowSample.objects.bulk_create(world.samples)
    ShadowRun.objects.bulk_create(
        [
            ShadowRun(
                sample=s,
                model="big-1" if s.direction == "cheap_to_strong" else "small-1",
                response=f"Shadow ({s.shadow_tier}) answer to {s.decision.decision_id}.",
                prompt_tokens=900,
                completion_tokens=250,
                cost_usd=Decimal("0.004"),
                latency_ms=850.0,
                attempts=1,
            )
            for s in world.samples
        ]
    )
    Judgment.objects.bulk_create(
        [
            Judgment(
                sample=s,
                judge=judge,
                application=application,
                judge_kind="pairwise_llm",
                prompt_version="rubric-3",
                status="ok",
                verdict=s.verdict,
                materially_disagree=s.materially_disagree,
                swap_consistent=True,
                rationale=_rationale(s.verdict),
                calls=2,
            )
            for s in world.samples
        ]
    )
    feedback = [
        {
            "decision_id": d.decision_id,
            "kind": rng.choice(["thumbs_down", "retry", "thumbs_up"]),
            "feedback_id": f"f-{d.id}",
        }
        for d in rows[::7]
    ]
    feedback_ingest_batch(application=application, items=feedback)
    rollup_mark_dirty(application_id=application.id, hours=[d.occurred_at for d in rows])
    while rollup_refresh(batch_size=500):
        pass
    return world


def judged_pair(
    decision: Decision, *, verdict: str, shadow_response: str, rationale: str, pi: float = 1.0
) -> ShadowSample:
    """One cheap-routed decision mirrored onto the strong tier and judged (replacing any
    pending sample the ingestion pipeline made for it)."""
    ShadowSample.objects.filter(decision=decision).delete()
    sample = ShadowSample.objects.create(
        application_id=decision.application_id,
        decision=decision,
        direction="cheap_to_strong",
        primary_tier="cheap",
        shadow_tier="strong",
        inclusion_probability=pi,
        reason="base",
        segment_ids=decision.segment_ids,
        status="done",
        judge_status="done",
        verdict=verdict,
        materially_disagree=verdict != "equivalent",
    )
    ShadowRun.objects.create(
        sample=sample,
        model="big-1",
        response=shadow_response,
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0,
        latency_ms=1,
        attempts=1,
    )
    judge, _ = Judge.objects.get_or_create(
        application_id=decision.application_id,
        name="pairwise-gpt",
        defaults=dict(kind="pairwise_llm", model="big", prompt_version="rubric-3"),
    )
    Judgment.objects.create(
        sample=sample,
        judge=judge,
        application_id=decision.application_id,
        judge_kind="pairwise_llm",
        prompt_version="rubric-3",
        status="ok",
        verdict=verdict,
        rationale=rationale,
    )
    rollup_mark_dirty(application_id=decision.application_id, hours=[decision.occurred_at])
    return sample


def _rationale(verdict: str) -> str:
    return {
        "shadow_better": "Answer B follows the requested CSV format and includes every event; A truncates the export.",
        "primary_better": "Answer A is more concise and equally correct.",
        "equivalent": "Both answers are correct and complete; differences are stylistic.",
    }[verdict]
