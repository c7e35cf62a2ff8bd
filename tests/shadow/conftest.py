"""Fixtures of the shadow pipeline: the simulated provider over HTTP, an application
with its three model endpoints and judges, and helpers to ingest and sample decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from router_ops.applications.models import ModelEndpoint
from router_ops.ingest.services import decision_ingest_batch
from router_ops.ingest.validation import decision_validate
from router_ops.judging.models import Judge
from router_ops.judging.services import judge_prompt_default
from router_ops.shadow import services as shadow_services
from router_ops.shadow.models import SamplingPolicy, ShadowSample
from router_ops.simulation.provider_server import start_in_thread
from router_ops.simulation.scenario import Scenario
from router_ops.simulation.traffic import decisions_build


@pytest.fixture
def sim():
    server, base_url = start_in_thread(port=0)
    yield server, base_url
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_sampling_cache(settings):
    # The relay nudge needs a broker; tests that want it run a worker explicitly.
    settings.SHADOW_RELAY_NUDGE = False
    shadow_services.sampling_state_forget()
    yield
    shadow_services.sampling_state_forget()


def fault_set(base_url: str, **fault) -> None:
    response = httpx.post(base_url.removesuffix("/v1") + "/admin/faults", json=fault)
    assert response.status_code == 200, response.text


def endpoints_create(application, base_url: str) -> dict[str, ModelEndpoint]:
    prices = {"cheap": (0.5, 1.5), "strong": (5.0, 15.0), "judge": (2.5, 10.0)}
    made = {}
    for tier, model in (("cheap", "sim-cheap"), ("strong", "sim-strong"), ("judge", "sim-judge")):
        made[tier] = ModelEndpoint.objects.create(
            application=application,
            name=f"{model}-{application.slug}",
            tier=tier,
            base_url=base_url,
            model=model,
            input_price_per_mtok=prices[tier][0],
            output_price_per_mtok=prices[tier][1],
            timeout_s=5,
            max_concurrency=64,
        )
    return made


def judges_create(application, judge_endpoint: ModelEndpoint) -> list[Judge]:
    # transaction=True tests flush the tables between tests, data migrations included.
    judge_prompt_default()
    return [
        Judge.objects.create(application=application, name="normalised", kind=Judge.KIND_NORMALISED),
        Judge.objects.create(
            application=application,
            name="llm",
            kind=Judge.KIND_PAIRWISE_LLM,
            model=judge_endpoint.name,
            prompt_version="pairwise-v1",
        ),
    ]


def policy_set(application, **fields) -> SamplingPolicy:
    return shadow_services.sampling_policy_update(application=application, **fields)


def sim_decisions(count: int, *, start: int = 0, seed: int = 7) -> list[dict]:
    return decisions_build(Scenario(seed=seed), start_index=start, count=count, occurred_at=datetime.now(UTC))


def ingest_and_sample(
    application, items: list[dict], segment_ids: list[list[int]] | None = None
) -> tuple[list[int], int]:
    """Ingest through the real service, which samples as in production.

    With `segment_ids` (stand-in memberships for quota tests), ingest without
    sampling and call the sampling hook with those memberships instead.
    """
    from router_ops.ingest.models import Decision

    if segment_ids is None:
        result = decision_ingest_batch(application=application, items=items)
        ids = list(result.inserted_ids)
        return ids, ShadowSample.objects.filter(decision_id__in=ids).count()
    result = decision_ingest_batch(application=application, items=items, sample=False)
    by_id = {item["decision_id"]: item for item in items}
    rows = dict(Decision.objects.filter(pk__in=result.inserted_ids).values_list("pk", "decision_id"))
    ids = list(result.inserted_ids)
    tiers = frozenset({"cheap", "strong", "judge"})
    clean = [decision_validate(by_id[rows[pk]], tiers) for pk in ids]
    sampled = shadow_services.shadow_sample_batch(
        application=application, decisions=clean, decision_ids=ids, segment_ids=segment_ids
    )
    return ids, sampled
