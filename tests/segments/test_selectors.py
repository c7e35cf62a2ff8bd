"""dimension_slices: frequent values and numeric buckets, each with a rule that selects it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router_ops.ingest.models import Decision
from segments.rule_q import rule_q
from segments.selectors import dimension_slices
from segments.services import dimension_create
from tests.segments.conftest import insert_decisions

pytestmark = pytest.mark.django_db


def test_it_slices_by_value_and_by_bucket(owner, outsider, django_assert_num_queries):
    app = owner.application
    dimension_create(application=app, path="channel", min_share=0.1)
    dimension_create(application=app, path="prompt_tokens", bucket_edges=[500, 2000], min_share=0.05)
    dimension_create(application=app, path="routed_to", min_share=0.5)
    dimension_create(application=app, path="locale", active=False)
    insert_decisions(app, 700)
    insert_decisions(outsider.application, 50)

    with django_assert_num_queries(5):  # total, dimensions, one per active dimension
        result = dimension_slices(application=app, window=timedelta(days=7))

    by_path = {r.path: r for r in result}
    assert sorted(by_path) == ["channel", "prompt_tokens", "routed_to"]
    assert [(s.label, s.count, s.rule) for s in by_path["channel"].slices] == [
        ('channel = "web"', 600, 'channel == "web"'),
        ('channel = "api"', 100, 'channel == "api"'),
    ]
    assert [(s.label, s.count, s.rule) for s in by_path["prompt_tokens"].slices] == [
        ("prompt_tokens < 500", 499, "prompt_tokens < 500"),
        ("500 ≤ prompt_tokens < 2000", 201, "prompt_tokens >= 500 and prompt_tokens < 2000"),
    ]
    assert [(s.label, s.count) for s in by_path["routed_to"].slices] == [('routed_to = "cheap"', 467)]
    assert by_path["channel"].slices[0].share == pytest.approx(600 / 700)
    # Every slice's rule selects exactly what it counted.
    window = Decision.objects.filter(application=app)
    for dimension in result:
        for slice_ in dimension.slices:
            assert window.filter(rule_q(slice_.rule)).count() == slice_.count, slice_


def test_missing_values_are_a_slice_and_the_window_bounds_the_count(owner):
    dimension_create(application=owner.application, path="attributes.locale", min_share=0.5)
    insert_decisions(owner.application, 100)  # occurred within the last 100 s, no locale
    [locale] = dimension_slices(application=owner.application, window=timedelta(days=1))
    assert [(s.label, s.count, s.rule) for s in locale.slices] == [("locale missing", 100, "not (locale exists)")]
    [empty] = dimension_slices(
        application=owner.application,
        window=timedelta(days=1),
        now=Decision.objects.order_by("occurred_at").first().occurred_at,
    )
    assert (empty.total, empty.slices) == (0, [])
