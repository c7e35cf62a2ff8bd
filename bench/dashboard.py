"""Dashboard benchmark (issue 5). Not a test.

    .venv/bin/python bench/dashboard.py [--decisions 10000000] [--keep]

1. Creates a throwaway database (TEST_DB_NAME, default bench_routerops_dashboard).
2. Loads N decisions spread over 30 days with COPY (20 segments, 2 router
   versions, 2 % shadow-sampled with verdicts and unequal π).
3. Builds the hourly rollups (every hour marked dirty, then `rollup_refresh`).
4. Times, in-process through Django's test client as a logged-in superuser, the
   server time of the overview page and the segments table (and the stats API
   selector alone): median and p95 over repeated requests.
Bar (issue 5): median < 300 ms for both pages (goal beyond: < 200 ms).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "router_ops.settings")
os.environ.setdefault("TEST_DB_NAME", "bench_routerops_dashboard")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

KINDS = [  # (share, attributes, cheap share, regret)
    (0.52, {"channel": "ui", "user_tier": "free", "tenant": "public"}, 0.9, 0.08),
    (0.25, {"channel": "ui", "user_tier": "pro", "tenant": "public"}, 0.3, 0.2),
    (0.12, {"channel": "api", "user_tier": "team", "tenant": "globex"}, 0.8, 0.05),
    (0.08, {"channel": "ui", "user_tier": "enterprise", "tenant": "acme"}, 0.2, 0.15),
    (
        0.03,
        {"channel": "api", "user_tier": "enterprise", "tenant": "acme", "client": "python-requests/2.32"},
        0.9,
        0.38,
    ),
]


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def load(app, versions, segments, n: int, rng: random.Random) -> None:
    """COPY decisions and, for 2 % of cheap- and 1 % of strong-routed ones, judged samples."""
    now = timezone.now()
    start = now - timedelta(days=30)
    span = (now - start).total_seconds()
    cumulative, running = [], 0.0
    for kind in KINDS:
        running += kind[0]
        cumulative.append((running, kind))
    seg_of_kind = {i: [segments[i * 4 + j].id for j in range(rng.randint(1, 3))] for i in range(len(KINDS))}
    import orjson

    attrs_json = [orjson.dumps(k[1]).decode() for k in KINDS]
    samples = []
    raw = connection.connection
    t0 = time.perf_counter()
    with raw.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM ingest_decision")
        next_id = cursor.fetchone()[0] + 1
        with cursor.copy(
            "COPY ingest_decision (id, application_id, decision_id, occurred_at, received_at, router_version_id,"
            " unit_id, routed_to, model, cost_usd, prompt_tokens, completion_tokens, attributes, segment_ids,"
            " shadow_decisions) FROM STDIN"
        ) as copy:
            for i in range(n):
                draw = rng.random()
                k = next(
                    index for index, (bound, _) in enumerate(cumulative) if draw < bound or index == len(KINDS) - 1
                )
                _, _, cheap_share, regret = KINDS[k]
                cheap = rng.random() < cheap_share
                when = start + timedelta(seconds=rng.random() * span)
                decision_pk = next_id + i
                copy.write_row(
                    (
                        decision_pk,
                        app.id,
                        f"b{i}",
                        when,
                        when,
                        versions[i % 2].id,
                        f"u{i % 50000}",
                        "cheap" if cheap else "strong",
                        "small" if cheap else "large",
                        0.0002 if cheap else 0.004,
                        400,
                        300,
                        attrs_json[k],
                        "{" + ",".join(map(str, seg_of_kind[k])) + "}",
                        "[]",
                    )
                )
                pi = 0.02 if cheap else 0.01
                if rng.random() < pi:
                    bad = rng.random() < (regret if cheap else 0.4)
                    verdict = (
                        ("shadow_better" if bad else "equivalent")
                        if cheap
                        else ("equivalent" if bad else "primary_better")
                    )
                    samples.append((decision_pk, cheap, pi, verdict, seg_of_kind[k]))
                if i and i % 1_000_000 == 0:
                    print(f"  {i:,} decisions copied ({time.perf_counter() - t0:.0f} s)", flush=True)
        with cursor.copy(
            "COPY shadow_shadowsample (application_id, decision_id, direction, primary_tier, shadow_tier,"
            " inclusion_probability, reason, segment_ids, created_at, status, attempts, sends, error, judge_status,"
            " judge_attempts, judge_error, verdict, materially_disagree) FROM STDIN"
        ) as copy:
            for decision_pk, cheap, pi, verdict, segs in samples:
                copy.write_row(
                    (
                        app.id,
                        decision_pk,
                        "cheap_to_strong" if cheap else "strong_to_cheap",
                        "cheap" if cheap else "strong",
                        "strong" if cheap else "cheap",
                        pi,
                        "base",
                        "{" + ",".join(map(str, segs)) + "}",
                        now,
                        "done",
                        1,
                        1,
                        "",
                        "done",
                        1,
                        "",
                        verdict,
                        verdict != "equivalent",
                    )
                )
    raw.commit()
    print(f"loaded {n:,} decisions and {len(samples):,} judged samples in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database (to re-run the timings)")
    throwaway_database_run(run, parser.parse_args())


def throwaway_database_run(run, args) -> None:
    """run(args) in the TEST_DB_NAME database, created first and dropped after unless args.keep."""
    setup_test_environment()
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False, keepdb=args.keep)
    try:
        run(args)
    finally:
        if not args.keep:
            teardown_databases(old, verbosity=0)


def run(args) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from router_ops.applications.models import Application, ModelEndpoint
    from router_ops.rollouts.models import RouterVersion
    from router_ops.rollups.models import DirtyHour, HourlyRollup
    from router_ops.rollups.selectors import segment_stats
    from router_ops.rollups.services import rollup_refresh
    from segments.models import Segment

    rng = random.Random(11)
    app, created = Application.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    if created or not HourlyRollup.objects.filter(application=app).exists():
        ModelEndpoint.objects.get_or_create(
            application=app,
            name="large",
            defaults=dict(
                tier="strong",
                base_url="http://127.0.0.1:9/v1",
                model="large",
                input_price_per_mtok=2.5,
                output_price_per_mtok=10,
            ),
        )
        versions = [RouterVersion.objects.create(application=app, name=f"v{i}") for i in (1, 2)]
        RouterVersion.objects.filter(pk=versions[0].pk).update(status="active")
        segments = [
            Segment.objects.create(
                application=app, slug=f"seg-{i:02d}", name=f"Segment {i:02d}", rule=f'tenant == "t{i}"'
            )
            for i in range(20)
        ]
        load(app, versions, segments, args.decisions, rng)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            cursor.execute(
                "INSERT INTO rollups_dirtyhour (application_id, hour, marked_at) "
                "SELECT DISTINCT application_id, date_trunc('hour', occurred_at), now() FROM ingest_decision "
                "ON CONFLICT DO NOTHING"
            )
        hours = DirtyHour.objects.count()
        t0 = time.perf_counter()
        while rollup_refresh(batch_size=100):
            pass
        elapsed = time.perf_counter() - t0
        print(
            f"rollups: {hours} hours recomputed in {elapsed:.1f} s ({args.decisions / elapsed:,.0f} decisions/s); "
            f"{HourlyRollup.objects.count():,} rollup rows"
        )

    version = RouterVersion.objects.get(application=app, name="v1")
    user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "", "bench-password"
    )
    client = Client()
    client.force_login(user)
    rows = []
    med, p95 = timed(
        lambda: segment_stats(application=app, router_version=version, window=timedelta(days=7)), args.repeat
    )
    rows.append(("segment_stats selector (7d)", med, p95))
    for label, url in (
        ("overview page (7d)", f"/apps/{app.slug}/?window=7d"),
        ("segments table (7d)", f"/apps/{app.slug}/segments/?window=7d"),
        ("overview page (30d)", f"/apps/{app.slug}/?window=30d"),
        ("stats API (7d)", f"/api/v1/segments/stats?application={app.slug}&window=7d"),
    ):
        status = client.get(url).status_code
        if status != 200:
            print(f"{label}: {url} answered {status}; skipped")
            continue
        med, p95 = timed(lambda url=url: client.get(url), args.repeat)
        rows.append((label, med, p95))
    decisions = connection.cursor()
    decisions.execute("SELECT count(*) FROM ingest_decision")
    total = decisions.fetchone()[0]
    print(f"\n{total:,} decisions; server time over {args.repeat} requests each")
    print(f"{'what':32} {'median ms':>10} {'p95 ms':>10}")
    for label, med, p95 in rows:
        print(f"{label:32} {med:10.1f} {p95:10.1f}")
    print("bar: median < 300 ms (goal < 200 ms)")


if __name__ == "__main__":
    main()
