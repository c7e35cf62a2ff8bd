"""Create the application the fault suite drives, in the private stack's database.

    DJANGO_SETTINGS_MODULE=tests.faults.settings DATABASE_URL=… \
        python -m tests.faults.setup_app --slug faults --provider-url http://127.0.0.1:P/v1 --budget 3

Prints one JSON line: {"application_id", "api_key"}. An application with that slug
must not exist yet (each run uses a fresh slug or a fresh database).
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slug", required=True)
    parser.add_argument("--provider-url", required=True)
    parser.add_argument("--budget", type=Decimal, default=Decimal("3"))
    parser.add_argument("--base-rate", type=float, default=0.3)
    parser.add_argument("--reverse-rate", type=float, default=0.05)
    parser.add_argument("--divergence-rate", type=float, default=0.5)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    args = parser.parse_args()

    import django

    django.setup()
    from router_ops.applications.models import ModelEndpoint
    from router_ops.applications.services import api_key_create, application_create
    from router_ops.judging.models import Judge
    from router_ops.judging.services import judge_prompt_default
    from router_ops.shadow.services import sampling_policy_update

    application, created = application_create(slug=args.slug, name=args.slug)
    if not created:
        raise SystemExit(f"application {args.slug} exists already")
    _, key = api_key_create(application=application, scopes=["ingest", "read", "admin"])
    prices = {"cheap": (0.5, 1.5), "strong": (5.0, 15.0), "judge": (2.5, 10.0)}
    for tier, model in (("cheap", "sim-cheap"), ("strong", "sim-strong"), ("judge", "sim-judge")):
        ModelEndpoint.objects.create(
            application=application,
            name=model,
            tier=tier,
            base_url=args.provider_url,
            model=model,
            input_price_per_mtok=prices[tier][0],
            output_price_per_mtok=prices[tier][1],
            timeout_s=args.timeout_s,
            max_concurrency=256,
        )
    prompt = judge_prompt_default()
    Judge.objects.create(application=application, name="normalised", kind=Judge.KIND_NORMALISED)
    Judge.objects.create(
        application=application,
        name="llm",
        kind=Judge.KIND_PAIRWISE_LLM,
        model="sim-judge",
        prompt_version=prompt.version,
    )
    sampling_policy_update(
        application=application,
        base_rate=args.base_rate,
        reverse_rate=args.reverse_rate,
        divergence_rate=args.divergence_rate,
        min_judged_per_segment=0,
        daily_budget_usd=args.budget,
    )
    print(json.dumps({"application_id": application.id, "api_key": key}))


if __name__ == "__main__":
    main()
