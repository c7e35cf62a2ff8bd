"""Maintaining the hourly rollups incrementally.

Every write that changes what an hour's rollup would say (decisions, samples,
verdicts, feedback) marks that (application, hour) dirty *in its own
transaction*; the periodic `rollup_refresh` claims dirty hours and recomputes
each from the raw rows. Late data therefore just marks an old hour dirty again.

Why the mark is an upsert that touches the row (ON CONFLICT DO UPDATE): it takes
the row lock until the writer commits, and the refresher claims with
`FOR UPDATE SKIP LOCKED`, so it never deletes a mark whose data it cannot see
yet. The mark is the writer's last statement, so the lock is held only for the
commit itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection, transaction

from router_ops.applications.models import ModelEndpoint

_MARK_DIRTY = """
INSERT INTO rollups_dirtyhour (application_id, hour, marked_at)
SELECT %(app)s, h, now() FROM unnest(%(hours)s::timestamptz[]) AS h
ON CONFLICT (application_id, hour) DO UPDATE SET marked_at = excluded.marked_at
"""


def rollup_mark_dirty(*, application_id: int, hours: Iterable[datetime]) -> None:
    """Mark the hours (any datetimes; truncated here) of an application as needing a recompute."""
    truncated = sorted({h.replace(minute=0, second=0, microsecond=0) for h in hours})
    if not truncated:
        return
    with connection.cursor() as cursor:
        cursor.execute(_MARK_DIRTY, {"app": application_id, "hours": truncated})


def rollup_mark_dirty_for_decisions(*, decision_ids: Iterable[int]) -> None:
    """Mark the hours of the given decisions dirty (for writers that know decision ids only)."""
    ids = list(decision_ids)
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO rollups_dirtyhour (application_id, hour, marked_at)
            SELECT DISTINCT application_id, date_trunc('hour', occurred_at), now()
            FROM ingest_decision WHERE id = ANY(%(ids)s::bigint[])
            ORDER BY 1, 2
            ON CONFLICT (application_id, hour) DO UPDATE SET marked_at = excluded.marked_at
            """,
            {"ids": ids},
        )


# One statement recomputes an hour: every decision of the hour once per segment it
# belongs to plus once for "all traffic" (segment 0), joined to its sample, shadow
# run and feedback. w = 1/π for judged pairs. A cheap-routed pair is "bad" (regret)
# when the strong shadow was better; a strong-routed pair (reverse sampling) is
# "bad" (overspend) when the cheap shadow was no worse.
_RECOMPUTE = """
WITH d AS (
    SELECT d.id, d.router_version_id, d.routed_to, d.cost_usd, d.prompt_tokens, d.completion_tokens,
           unnest(array_append(d.segment_ids, 0)) AS segment_id
    FROM ingest_decision d
    WHERE d.application_id = %(app)s AND d.occurred_at >= %(hour)s AND d.occurred_at < %(hour)s + interval '1 hour'
), j AS (
    SELECT d.*, s.id AS sample_id, s.verdict, s.materially_disagree, s.direction,
           CASE WHEN s.verdict <> '' THEN 1.0 / s.inclusion_probability END AS w,
           CASE
               WHEN s.verdict = '' OR s.verdict IS NULL THEN NULL
               WHEN s.direction = 'cheap_to_strong' THEN (s.verdict = 'shadow_better')::int
               ELSE (s.verdict <> 'primary_better')::int
           END AS bad,
           r.cost_usd AS shadow_cost,
           fb.total AS fb_total, fb.negative AS fb_negative
    FROM d
    LEFT JOIN shadow_shadowsample s ON s.decision_id = d.id
    LEFT JOIN shadow_shadowrun r ON r.sample_id = s.id
    LEFT JOIN LATERAL (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE f.kind IN ('thumbs_down', 'retry', 'regenerate', 'escalation')) AS negative
        FROM ingest_feedback f WHERE f.decision_id = d.id
    ) fb ON true
)
INSERT INTO rollups_hourlyrollup (
    application_id, hour, router_version_id, segment_id, tier, decisions, cost_usd, strong_cost_usd,
    sampled, judged, shadow_cost_usd, judge_cost_usd, feedback_negative, feedback_total,
    sum_w, sum_w2, sum_w_bad, sum_w2_bad, sum_w_disagree, sum_w2_disagree, n_bad, n_disagree
)
SELECT %(app)s, %(hour)s, router_version_id, segment_id, routed_to,
       count(*),
       coalesce(sum(cost_usd), 0),
       coalesce(sum(CASE WHEN routed_to = %(strong_tier)s THEN cost_usd
                         ELSE (coalesce(prompt_tokens, 0) * %(strong_in)s + coalesce(completion_tokens, 0) * %(strong_out)s) / 1e6
                    END), 0),
       count(sample_id),
       count(w),
       coalesce(sum(shadow_cost), 0),
       0,
       coalesce(sum(fb_negative), 0),
       coalesce(sum(fb_total), 0),
       coalesce(sum(w), 0), coalesce(sum(w * w), 0),
       coalesce(sum(w * bad), 0), coalesce(sum(w * w * bad), 0),
       coalesce(sum(w * materially_disagree::int), 0), coalesce(sum(w * w * materially_disagree::int), 0),
       coalesce(sum(bad), 0), coalesce(sum(materially_disagree::int) FILTER (WHERE w IS NOT NULL), 0)
FROM j
GROUP BY router_version_id, segment_id, routed_to
"""


def _strong_prices(application_id: int) -> tuple[float, float]:
    endpoint = ModelEndpoint.objects.filter(application_id=application_id, tier="strong").order_by("id").first()
    if endpoint is None:
        return 0.0, 0.0
    return float(endpoint.input_price_per_mtok), float(endpoint.output_price_per_mtok)


def rollup_recompute_hour(*, application_id: int, hour: datetime) -> None:
    """Replace an hour's rollup rows by a fresh aggregate of the raw rows."""
    strong_in, strong_out = _strong_prices(application_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM rollups_hourlyrollup WHERE application_id = %s AND hour = %s", [application_id, hour]
        )
        cursor.execute(
            _RECOMPUTE,
            {
                "app": application_id,
                "hour": hour,
                "strong_tier": "strong",
                "strong_in": strong_in,
                "strong_out": strong_out,
            },
        )


def rollup_refresh(*, batch_size: int = 50) -> int:
    """Recompute up to `batch_size` dirty hours; return how many were done.

    Each hour is claimed and recomputed in its own transaction (claim = DELETE of
    the mark, SKIP LOCKED), so concurrent refreshers share the work and a crash
    leaves the mark in place.
    """
    done = 0
    while done < batch_size:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    DELETE FROM rollups_dirtyhour WHERE id = (
                        SELECT id FROM rollups_dirtyhour ORDER BY hour FOR UPDATE SKIP LOCKED LIMIT 1
                    ) RETURNING application_id, hour
                    """
                )
                row = cursor.fetchone()
            if row is None:
                break
            rollup_recompute_hour(application_id=row[0], hour=row[1])
        done += 1
    return done


def rollup_mark_dirty_for_id_range(*, application_id: int, low_id: int, high_id: int) -> None:
    """Mark the hours of an application's decisions with low_id < id <= high_id dirty
    (segment backfills change membership of old decisions in id ranges)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO rollups_dirtyhour (application_id, hour, marked_at)
            SELECT DISTINCT %(app)s, date_trunc('hour', occurred_at), now()
            FROM ingest_decision WHERE application_id = %(app)s AND id > %(low)s AND id <= %(high)s
            ORDER BY 2
            ON CONFLICT (application_id, hour) DO UPDATE SET marked_at = excluded.marked_at
            """,
            {"app": application_id, "low": low_id, "high": high_id},
        )
