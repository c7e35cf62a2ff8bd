"""segment_backfill: membership of existing decisions, in bounded, restartable batches."""

from __future__ import annotations

import pytest
from django.db import connection

from router_ops.ingest.models import Decision
from segments import services
from segments.models import Segment
from segments.services import segment_backfill, segment_create, segment_update
from segments.tasks import segment_backfill_task
from tests.segments.conftest import insert_decisions

RULE = 'channel == "api" and prompt_tokens >= 2000'
# The same rule, written by hand in SQL: the check does not go through rule_q.
_DISAGREEMENTS = """
SELECT count(*) FROM ingest_decision WHERE application_id = %s
AND (segment_ids @> ARRAY[%s]) IS DISTINCT FROM coalesce(attributes->>'channel' = 'api' AND prompt_tokens >= 2000, false)
"""


def _disagreements(application, segment_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            _DISAGREEMENTS,
            [application.id, segment_id],
        )
        return cursor.fetchone()[0]


def _members(application, segment_id: int) -> int:
    return Decision.objects.filter(application=application, segment_ids__contains=[segment_id]).count()


@pytest.mark.slow
@pytest.mark.django_db
def test_it_backfills_100000_decisions(owner, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(application=owner.application, slug="api-long", rule=RULE)
    assert enqueued == [("backfill", segment.id)]
    insert_decisions(owner.application, 100_000, stale_segment_id=segment.id)
    assert _disagreements(owner.application, segment.id) > 0

    segment = segment_backfill(segment.id, batch_size=7_000)

    assert _disagreements(owner.application, segment.id) == 0
    # g % 7 == 0 and g % 5000 >= 2000: 3/5 of the 14,285 api decisions, counted by hand.
    expected = sum(1 for g in range(1, 100_001) if g % 7 == 0 and g % 5000 >= 2000)
    assert _members(owner.application, segment.id) == expected
    assert (segment.backfill_status, segment.backfill_processed, segment.backfill_total) == ("done", 100_000, 100_000)
    # No decision carries the id twice.
    assert (
        not Decision.objects.filter(application=owner.application)
        .extra(where=["array_length(segment_ids, 1) <> cardinality(ARRAY(SELECT DISTINCT unnest(segment_ids)))"])
        .exists()
    )


@pytest.mark.django_db
def test_it_resumes_after_a_failure_and_is_idempotent(owner, enqueued, monkeypatch):
    segment = segment_create(application=owner.application, slug="api-long", rule=RULE)
    insert_decisions(owner.application, 5_000, stale_segment_id=segment.id)
    real_batch = services._backfill_batch
    calls = []

    def failing_batch(segment, batch_size):
        calls.append(segment.backfill_through_id)
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        real_batch(segment, batch_size)

    monkeypatch.setattr(services, "_backfill_batch", failing_batch)
    with pytest.raises(RuntimeError):
        segment_backfill(segment.id, batch_size=1_000)
    segment.refresh_from_db()
    assert (segment.backfill_status, segment.backfill_processed, segment.backfill_error) == (
        "failed",
        2_000,
        "RuntimeError: worker lost",
    )
    cursor = segment.backfill_through_id

    monkeypatch.setattr(services, "_backfill_batch", real_batch)
    segment_backfill_task(segment.id)  # a redelivery resumes at the cursor
    segment.refresh_from_db()
    assert segment.backfill_through_id > cursor
    assert (segment.backfill_status, segment.backfill_processed) == ("done", 5_000)
    assert _disagreements(owner.application, segment.id) == 0

    before = list(
        Decision.objects.filter(application=owner.application).order_by("id").values_list("segment_ids", flat=True)
    )
    assert segment_backfill(segment.id).backfill_status == "done"  # a second delivery changes nothing
    after = list(
        Decision.objects.filter(application=owner.application).order_by("id").values_list("segment_ids", flat=True)
    )
    assert before == after


@pytest.mark.django_db
def test_a_rule_change_restarts_the_backfill(owner, enqueued, django_capture_on_commit_callbacks):
    segment = segment_create(application=owner.application, slug="s", rule='tenant == "acme"')
    insert_decisions(owner.application, 3_000)
    segment_backfill(segment.id)
    assert _members(owner.application, segment.id) == 1_000
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_update(segment=segment, rule='tenant == "hooli" and n < 5')
    assert enqueued == [("backfill", segment.id)]
    assert (segment.backfill_status, segment.backfill_through_id, segment.backfill_processed) == ("pending", 0, 0)
    segment_backfill(segment.id)
    expected = sum(1 for g in range(1, 3_001) if g % 3 == 1 and g % 10 < 5)
    assert _members(owner.application, segment.id) == expected


@pytest.mark.django_db
def test_deactivating_keeps_history_and_does_not_backfill(owner, enqueued, django_capture_on_commit_callbacks):
    segment = segment_create(application=owner.application, slug="s", rule='tenant == "acme"')
    insert_decisions(owner.application, 300)
    segment_backfill(segment.id)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        segment_update(segment=segment, active=False)
    assert enqueued == []
    assert _members(owner.application, segment.id) == 100
    with django_capture_on_commit_callbacks(execute=True):
        segment_update(segment=segment, active=True)
    assert enqueued == [("backfill", segment.id)]


@pytest.mark.django_db
def test_deleting_purges_membership(owner, enqueued, django_capture_on_commit_callbacks):
    segment = segment_create(application=owner.application, slug="s", rule='tenant == "acme"')
    insert_decisions(owner.application, 300)
    segment_backfill(segment.id)
    segment_id = segment.id
    with django_capture_on_commit_callbacks(execute=True):
        services.segment_delete(segment=segment)
    assert enqueued[-1] == ("purge", segment_id)
    assert services.segment_membership_purge(application_id=owner.application.id, segment_id=segment_id) == 100
    assert _members(owner.application, segment_id) == 0
    assert not Segment.objects.filter(id=segment_id).exists()


@pytest.mark.django_db
def test_it_only_touches_its_application(owner, outsider, enqueued):
    segment = segment_create(application=owner.application, slug="s", rule='tenant == "acme"')
    insert_decisions(outsider.application, 100, stale_segment_id=segment.id)
    insert_decisions(owner.application, 30)
    segment_backfill(segment.id)
    assert _members(owner.application, segment.id) == 10
    assert _members(outsider.application, segment.id) == 9  # untouched, stale ids included


@pytest.mark.django_db
def test_a_deleted_segment_is_a_no_op(enqueued):
    assert segment_backfill(987654) is None
