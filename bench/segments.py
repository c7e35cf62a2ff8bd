"""Segment membership and backfill benchmarks (issue 3). Not a test.

    .venv/bin/python bench/segments.py [--decisions 200000]

Creates a throwaway database with Django's test-database utilities (named by
TEST_DB_NAME, default bench_routerops_segments), and drops it at the end.
Prints:
- membership: µs per decision for `segment_matcher(app)(decision)` with 100
  active segments of simple rules (bar ≤ 20 µs);
- backfill: decisions per second of `segment_backfill` (bar ≥ 50,000/s).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "router_ops.settings")
os.environ.setdefault("TEST_DB_NAME", "bench_routerops_segments")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

TENANTS = [f"tenant-{i}" for i in range(60)]
CHANNELS = ["api", "web", "slack", "email"]
TIERS = ["free", "pro", "enterprise"]
CLIENTS = ["python-requests/2.32", "node-fetch/3", "curl/8.1", "Mozilla/5.0"]


def hundred_rules(rng: random.Random) -> list[str]:
    rules = []
    rules += [f'tenant == "{t}"' for t in TENANTS[:40]]
    rules += [f'channel == "{rng.choice(CHANNELS)}" and user_tier == "{rng.choice(TIERS)}"' for _ in range(20)]
    rules += [f"prompt_tokens >= {rng.randrange(100, 8000)}" for _ in range(15)]
    rules += [f'client startswith "{c.split("/")[0]}"' for c in CLIENTS] * 2 + [
        'client contains "requests"',
        'client endswith ".1"',
    ]
    rules += [
        f'tenant in ["{rng.choice(TENANTS)}", "{rng.choice(TENANTS)}", "{rng.choice(TENANTS)}"]' for _ in range(10)
    ]
    rules += [
        "not (locale exists)",
        'routed_to == "strong"',
        "latency_ms > 500",
        'router_version != "v1"',
        "router_score < 0.3",
    ]
    assert len(rules) == 100, len(rules)
    return rules


def item(rng: random.Random, i: int) -> dict:
    attributes = {
        "tenant": rng.choice(TENANTS),
        "channel": rng.choice(CHANNELS),
        "user_tier": rng.choice(TIERS),
        "client": rng.choice(CLIENTS),
    }
    if rng.random() < 0.7:
        attributes["locale"] = rng.choice(["en", "de", "fr"])
    return {
        "decision_id": f"b-{i}",
        "occurred_at": "2026-11-24T10:15:00Z",
        "router_version": rng.choice(["v1", "v2"]),
        "unit_id": f"u-{i % 1000}",
        "routed_to": rng.choice(["cheap", "strong"]),
        "router_score": rng.random(),
        "prompt_tokens": rng.randrange(0, 10_000),
        "completion_tokens": rng.randrange(0, 2000),
        "latency_ms": rng.random() * 2000,
        "attributes": attributes,
    }


_INSERT = """
INSERT INTO ingest_decision (
    application_id, decision_id, occurred_at, received_at, router_version_id, unit_id, routed_to, model,
    prompt_tokens, latency_ms, attributes, segment_ids, shadow_decisions
)
SELECT %(app)s, 'gen-' || g, now() - (g %% 86400) * interval '1 second', now(), %(version)s, 'u' || (g %% 1000),
       CASE WHEN g %% 3 = 0 THEN 'strong' ELSE 'cheap' END, '', g %% 5000, (g %% 100)::float8,
       jsonb_build_object('tenant', 'tenant-' || (g %% 60), 'channel', (ARRAY['api', 'web', 'slack', 'email'])[1 + g %% 4],
                          'user_tier', (ARRAY['free', 'pro', 'enterprise'])[1 + g %% 3]),
       '{}'::int[], '[]'::jsonb
FROM generate_series(1, %(count)s) AS g
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000, help="decisions to backfill")
    parser.add_argument("--membership-decisions", type=int, default=20_000)
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        run(args)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args) -> None:
    from unittest import mock

    from router_ops.applications.services import application_create
    from router_ops.ingest.services import application_tiers
    from router_ops.ingest.validation import decision_validate
    from router_ops.rollouts.models import RouterVersion
    from segments.membership import segment_matcher
    from segments.services import segment_backfill, segment_create

    rng = random.Random(7)
    application, _ = application_create(slug="bench", name="Bench")
    with mock.patch("segments.tasks.segment_backfill_task.delay"):  # no broker needed
        for n, rule in enumerate(hundred_rules(rng)):
            segment_create(application=application, slug=f"s{n}", rule=rule)

    tiers = application_tiers(application)
    decisions = [decision_validate(item(rng, i), tiers) for i in range(args.membership_decisions)]
    started = time.perf_counter()
    match = segment_matcher(application)
    compile_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for _ in range(50):
        segment_matcher(application)
    stamp_ms = (time.perf_counter() - started) * 1000 / 50
    best = float("inf")
    matched = 0
    for _ in range(5):
        started = time.perf_counter()
        matched = sum(len(match(d)) for d in decisions)
        best = min(best, time.perf_counter() - started)
    per_decision_us = best / len(decisions) * 1e6
    print(
        f"membership: 100 active segments, {len(decisions):,} decisions, {matched / len(decisions):.1f} segments per decision"
    )
    print(
        f"membership: {per_decision_us:.2f} µs per decision (bar ≤ 20 µs) "
        f"{'PASS' if per_decision_us <= 20 else 'FAIL'}; compile {compile_ms:.1f} ms once, cache check {stamp_ms:.2f} ms per batch"
    )

    version, _ = RouterVersion.objects.get_or_create(application=application, name="v1")
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, {"app": application.id, "version": version.id, "count": args.decisions})
        cursor.execute("ANALYZE ingest_decision")
    with mock.patch("segments.tasks.segment_backfill_task.delay"):
        segment = segment_create(
            application=application,
            slug="bench-backfill",
            rule='channel == "api" and prompt_tokens >= 2000 or tenant in ["tenant-1", "tenant-2"]',
        )
    started = time.perf_counter()
    segment = segment_backfill(segment.id)
    elapsed = time.perf_counter() - started
    members = segment.backfill_processed
    rate = members / elapsed
    print(
        f"backfill: {members:,} decisions in {elapsed:.2f} s = {rate:,.0f} decisions/s (bar ≥ 50,000/s) "
        f"{'PASS' if rate >= 50_000 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
