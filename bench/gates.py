"""Rollout gate evidence over a big canary stage. Not a test.

    .venv/bin/python bench/gates.py [--decisions 2000000] [--units 200000] [--repeat 5] [--keep]

1. Creates a throwaway database (TEST_DB_NAME, default bench_routerops_gates).
2. Starts a rollout whose first stage serves the candidate to 50 % of units, back-dated
   7 days, and loads N decisions of that week with COPY: units drawn with a heavy tail
   (a few busy units, many quiet ones), each unit's version by the real assignment hash,
   5 segments, and judged samples of 2 % of the cheap-routed decisions.
3. Times what the gate sweep (every 60 s per running rollout) and the rollout page do:
   each query of the canary evidence alone, then the whole `rollout_gate_evidence`.
   Median and p95 over --repeat runs, warm cache.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "router_ops.settings")
os.environ.setdefault("TEST_DB_NAME", "bench_routerops_gates")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.dashboard import throwaway_database_run, timed  # noqa: E402

SEGMENTS = 5
STAGE = [
    {"weight_bp": 5000, "min_duration_s": 0, "min_judged_per_segment": 0, "margin": 0.02},
    {"weight_bp": 10000, "min_duration_s": 0, "min_judged_per_segment": 0, "margin": 0.02},
]


def setup(args):
    from django.contrib.auth import get_user_model

    from router_ops.applications.models import Application
    from router_ops.applications.services import membership_set
    from router_ops.rollouts.actors import Actor
    from router_ops.rollouts.models import Rollout, RolloutStage
    from router_ops.rollouts.services import (
        rollout_approve,
        rollout_request,
        router_version_activate_initial,
        router_version_create,
    )
    from segments.models import Segment

    app, _ = Application.objects.get_or_create(slug="bench-gates", defaults={"name": "Bench gates"})
    rollout = Rollout.objects.filter(application=app).first()
    if rollout is not None:
        return rollout
    people = {}
    for name, role in (("ada", "admin"), ("otto", "operator"), ("anna", "approver")):
        people[name] = Actor(user=get_user_model().objects.create_user(username=name, password=None))
        membership_set(user=people[name].user, application=app, role=role)
    baseline = router_version_create(application=app, actor=people["ada"], name="v1")
    router_version_activate_initial(version=baseline, actor=people["ada"], reason="bench")
    candidate = router_version_create(application=app, actor=people["ada"], name="v2")
    segments = [
        Segment.objects.create(application=app, slug=f"s{i}", rule=f'tenant == "t{i}"') for i in range(SEGMENTS)
    ]
    rollout = rollout_request(application=app, actor=people["otto"], candidate=candidate, stages=STAGE)
    rollout_approve(rollout=rollout, actor=people["anna"], evidence_hash=rollout.evidence_hash, reason="bench")
    start = timezone.now() - timedelta(days=7)
    RolloutStage.objects.filter(rollout=rollout, order=0).update(started_at=start)
    rollout.refresh_from_db()
    load(rollout, [s.id for s in segments], start, args)
    return rollout


def load(rollout, segment_ids: list[int], start, args) -> None:
    from routerops_client.assignment import assign

    rng = random.Random(5)
    app = rollout.application
    versions = {"v2": rollout.candidate_id, "v1": rollout.baseline_id}
    weights = [("v2", 5000), ("v1", 5000)]
    span = (timezone.now() - start).total_seconds() - 60
    samples = []
    t0 = time.perf_counter()
    raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM ingest_decision")
        next_id = cursor.fetchone()[0] + 1
        with cursor.copy(
            "COPY ingest_decision (id, application_id, decision_id, occurred_at, received_at, router_version_id,"
            " unit_id, routed_to, model, cost_usd, prompt_tokens, completion_tokens, attributes, segment_ids,"
            " shadow_decisions) FROM STDIN"
        ) as copy:
            assigned: dict[str, int] = {}
            for i in range(args.decisions):
                # Half the requests from units drawn uniformly, half from a heavy tail (unit k with
                # probability ~ 1/k²): a few busy units among many quiet ones.
                if rng.random() < 0.5:
                    unit = f"u{rng.randrange(args.units)}"
                else:
                    unit = f"u{min(int(rng.paretovariate(1.0)) - 1, args.units - 1)}"
                version = assigned.get(unit)
                if version is None:
                    version = assigned[unit] = versions[assign(weights, app.salt, unit)]
                cheap = rng.random() < 0.6
                when = start + timedelta(seconds=1 + rng.random() * span)
                segment = segment_ids[i % SEGMENTS]
                copy.write_row(
                    (
                        next_id + i,
                        app.id,
                        f"g{i}",
                        when,
                        when,
                        version,
                        unit,
                        "cheap" if cheap else "strong",
                        "small" if cheap else "large",
                        0.0002 if cheap else 0.004,
                        400,
                        300,
                        "{}",
                        "{" + str(segment) + "}",
                        "[]",
                    )
                )
                if cheap and rng.random() < 0.02:
                    verdict = "shadow_better" if rng.random() < 0.1 else "equivalent"
                    samples.append((next_id + i, verdict, segment, when))
        with cursor.copy(
            "COPY shadow_shadowsample (application_id, decision_id, direction, primary_tier, shadow_tier,"
            " inclusion_probability, reason, segment_ids, created_at, status, attempts, sends, error, judge_status,"
            " judge_attempts, judge_error, verdict, materially_disagree, judged_at) FROM STDIN"
        ) as copy:
            for decision_pk, verdict, segment, when in samples:
                copy.write_row(
                    (app.id, decision_pk, "cheap_to_strong", "cheap", "strong", 0.02, "base", "{" + str(segment) + "}")
                    + (when, "done", 1, 1, "", "done", 1, "", verdict, verdict != "equivalent", when)
                )
        cursor.execute("ANALYZE")
    raw.commit()
    print(
        f"loaded {args.decisions:,} decisions from {len(assigned):,} units and {len(samples):,} judged samples "
        f"in {time.perf_counter() - t0:.1f} s"
    )


def run(args) -> None:
    from router_ops.rollouts import evidence, gates
    from router_ops.rollouts.models import RolloutStage

    rollout = setup(args)
    stage = RolloutStage.objects.get(rollout=rollout, order=rollout.current_stage)
    params = evidence._params(rollout, stage)
    rows = [
        (f"requests per arm and segment ({label})", *timed(lambda sql=sql: evidence._rows(sql, params), args.repeat))
        for label, sql in (("_CANARY_COUNTS", evidence._CANARY_COUNTS),)
    ]
    rows.append(
        (
            "distinct units per arm (_CANARY_UNITS)",
            *timed(lambda: evidence._rows(evidence._CANARY_UNITS, params), args.repeat),
        )
    )
    rows.append(
        (
            "judged samples (_CANARY_SAMPLES)",
            *timed(lambda: evidence._rows(evidence._CANARY_SAMPLES, params), args.repeat),
        )
    )
    rows.append(
        ("rollout_gate_evidence (all of it)", *timed(lambda: gates.rollout_gate_evidence(rollout), args.repeat))
    )
    result = gates.rollout_gate_evidence(rollout)
    srm = result["guardrails"]["srm"]
    print(f"\nstage {stage.name}, started 7 days ago; srm: {srm['verdict']} ({srm.get('detail', '')})")
    print(f"\n{'what':<48} {'median ms':>10} {'p95 ms':>10}")
    for label, med, worst in rows:
        print(f"{label:<48} {med:>10.1f} {worst:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=2_000_000)
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database (to re-run the timings)")
    throwaway_database_run(run, parser.parse_args())


if __name__ == "__main__":
    main()
