from __future__ import annotations

import pytest
from django.db import connection

from router_ops.rollouts.models import RouterVersion
from segments.membership import segment_matcher_clear

_INSERT = """
INSERT INTO ingest_decision (
    application_id, decision_id, occurred_at, received_at, router_version_id, unit_id, routed_to, model,
    prompt_tokens, latency_ms, attributes, segment_ids, shadow_decisions
)
SELECT %(app)s, 'gen-' || g, now() - (g %% 86400) * interval '1 second', now(), %(version)s, 'u' || (g %% 1000),
       CASE WHEN g %% 3 = 0 THEN 'strong' ELSE 'cheap' END, '', g %% 5000, (g %% 100)::float8,
       jsonb_build_object(
           'tenant', (ARRAY['acme', 'hooli', 'initech'])[1 + g %% 3],
           'channel', CASE WHEN g %% 7 = 0 THEN 'api' ELSE 'web' END,
           'n', g %% 10
       ),
       CASE WHEN g %% 11 = 0 THEN ARRAY[%(stale)s]::int[] ELSE '{}'::int[] END, '[]'::jsonb
FROM generate_series(1, %(count)s) AS g
"""


def insert_decisions(application, count: int, *, stale_segment_id: int = -1) -> None:
    """`count` synthetic decisions in one INSERT … SELECT; every 11th already (wrongly)
    carries `stale_segment_id`."""
    version, _ = RouterVersion.objects.get_or_create(application=application, name="v1")
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT, {"app": application.id, "version": version.id, "stale": stale_segment_id, "count": count}
        )


@pytest.fixture(autouse=True)
def _fresh_matchers():
    segment_matcher_clear()
    yield
    segment_matcher_clear()


@pytest.fixture
def enqueued(monkeypatch):
    """Backfill and purge tasks sent (by id), instead of reaching the broker."""
    from segments import tasks

    sent = []
    monkeypatch.setattr(tasks.segment_backfill_task, "delay", lambda segment_id: sent.append(("backfill", segment_id)))
    monkeypatch.setattr(
        tasks.segment_membership_purge_task, "delay", lambda app_id, segment_id: sent.append(("purge", segment_id))
    )
    return sent
