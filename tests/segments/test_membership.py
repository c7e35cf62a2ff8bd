"""segment_matcher: the ids of active segments a decision matches, cached per application."""

from __future__ import annotations

import pytest

from router_ops.ingest.services import application_tiers
from router_ops.ingest.validation import decision_validate
from segments.membership import segment_matcher
from segments.services import segment_create, segment_delete, segment_update

ITEM = {
    "decision_id": "d-1",
    "occurred_at": "2026-11-24T10:15:00Z",
    "router_version": "v12",
    "unit_id": "u-1",
    "routed_to": "cheap",
    "prompt_tokens": 2400,
    "attributes": {"tenant": "acme", "channel": "api", "client": "python-requests/2.32"},
}


@pytest.fixture
def segments(owner, enqueued):
    app = owner.application
    return {
        "api": segment_create(application=app, slug="api", rule='channel == "api"'),
        "long": segment_create(application=app, slug="long", rule="prompt_tokens >= 2000"),
        "scripted": segment_create(
            application=app, slug="scripted", rule='client startswith "python-requests" and router_version == "v12"'
        ),
        "hooli": segment_create(application=app, slug="hooli", rule='tenant == "hooli"'),
        "off": segment_create(application=app, slug="off", rule='tenant == "acme"', active=False),
    }


@pytest.mark.django_db
def test_it_matches_a_clean_decision(owner, segments):
    clean = decision_validate(ITEM, application_tiers(owner.application))
    match = segment_matcher(owner.application)
    assert match(clean) == sorted([segments["api"].id, segments["long"].id, segments["scripted"].id])
    assert match.fields == frozenset({"prompt_tokens", "router_version"})


@pytest.mark.django_db
def test_it_reads_the_stamp_with_one_query(owner, segments, django_assert_num_queries):
    segment_matcher(owner.application)
    with django_assert_num_queries(1):
        segment_matcher(owner.application)


@pytest.mark.django_db
def test_it_recompiles_when_segments_change(owner, segments, outsider):
    clean = decision_validate(ITEM, application_tiers(owner.application))
    first = segment_matcher(owner.application)
    assert segment_matcher(owner.application) is first
    segment_update(segment=segments["off"], active=True)
    assert segments["off"].id in segment_matcher(owner.application)(clean)
    segment_update(segment=segments["api"], rule='channel == "web"')
    assert segments["api"].id not in segment_matcher(owner.application)(clean)
    segment_delete(segment=segments["long"])
    assert segments["long"].id not in segment_matcher(owner.application)(clean)
    new = segment_create(application=owner.application, slug="new", rule="tenant exists")
    assert new.id in segment_matcher(owner.application)(clean)
    # Another application's segments never leak in.
    segment_create(application=outsider.application, slug="all", rule="tenant exists")
    assert segment_matcher(outsider.application)(clean) != segment_matcher(owner.application)(clean)


@pytest.mark.django_db
def test_an_application_without_segments_matches_nothing(owner):
    assert segment_matcher(owner.application)({"attributes": {"tenant": "acme"}}) == []
