"""/api/v1/segments/ and /api/v1/dimensions/ (API.md): scopes, tenancy, validation."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from segments.models import Dimension, Segment
from segments.services import dimension_create, segment_create
from tests.segments.conftest import insert_decisions

pytestmark = pytest.mark.django_db


@pytest.fixture
def segment(owner, enqueued):
    return segment_create(application=owner.application, slug="api", rule='channel == "api"')


@pytest.fixture
def dimension(owner):
    return dimension_create(application=owner.application, path="tenant", min_share=0.2)


def _endpoints(segment, dimension):
    s, d = f"/api/v1/segments/{segment.id}", f"/api/v1/dimensions/{dimension.id}"
    new_segment = {"slug": "new", "rule": "n > 1"}
    new_dimension = {"path": "channel"}
    return [
        ("get", "/api/v1/segments/", None, "read"),
        ("post", "/api/v1/segments/", new_segment, "admin"),
        ("get", s, None, "read"),
        ("put", s, {"slug": "renamed", "rule": "n > 2"}, "admin"),
        ("patch", s, {"active": False}, "admin"),
        ("delete", s, None, "admin"),
        ("post", f"{s}/backfill", None, "admin"),
        ("get", "/api/v1/dimensions/", None, "read"),
        ("post", "/api/v1/dimensions/", new_dimension, "admin"),
        ("get", d, None, "read"),
        ("put", d, {"path": "locale"}, "admin"),
        ("patch", d, {"min_share": 0.5}, "admin"),
        ("delete", d, None, "admin"),
        ("get", "/api/v1/dimensions/slices", None, "read"),
    ]


def _call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


def test_every_endpoint_refuses_a_missing_key(segment, dimension):
    for method, url, body, _ in _endpoints(segment, dimension):
        response = _call(APIClient(), method, url, body)
        assert response.status_code == 401, (method, url)
        assert response.json()["error"]["code"] == "not_authenticated"


def test_every_endpoint_refuses_another_applications_key_naming_this_one(owner, outsider, segment, dimension):
    for method, url, body, _ in _endpoints(segment, dimension):
        response = _call(
            outsider.client("ingest,read,admin"), method, f"{url}?application={owner.application.slug}", body
        )
        assert response.status_code == 403, (method, url)


def test_every_object_endpoint_hides_another_applications_objects(outsider, segment, dimension):
    for method, url, body, _ in _endpoints(segment, dimension):
        if url.rstrip("/").endswith(("segments", "dimensions", "slices")):
            continue
        response = _call(outsider.client("ingest,read,admin"), method, url, body)
        assert response.status_code == 404, (method, url)
    assert Segment.objects.filter(id=segment.id, active=True).exists()
    assert Dimension.objects.filter(id=dimension.id, min_share=0.2).exists()


def test_every_write_refuses_a_read_key_and_every_read_an_ingest_key(owner, segment, dimension):
    for method, url, body, scope in _endpoints(segment, dimension):
        wrong = "read" if scope == "admin" else "ingest"
        response = _call(owner.client(wrong), method, url, body)
        assert response.status_code == 403, (method, url)
        assert response.json()["error"]["code"] == "permission_denied"
    assert Segment.objects.get(id=segment.id).active is True


def test_every_endpoint_works_with_the_right_key(owner, segment, dimension):
    for method, url, body, scope in sorted(_endpoints(segment, dimension), key=lambda e: e[0] == "delete"):
        response = _call(owner.client(scope), method, url, body)
        assert response.status_code in (200, 201, 202, 204), (method, url, response.content)


def test_it_creates_a_segment_and_queues_its_backfill(owner, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client("admin").post(
            "/api/v1/segments",
            {
                "slug": "enterprise-api",
                "name": "Enterprise API",
                "rule": 'channel == "api" and user_tier == "enterprise"',
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    segment = Segment.objects.get(application=owner.application, slug="enterprise-api")
    assert body == {
        "id": segment.id,
        "slug": "enterprise-api",
        "name": "Enterprise API",
        "rule": 'channel == "api" and user_tier == "enterprise"',
        "active": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "backfill": {
            "status": "pending",
            "processed": 0,
            "total": None,
            "percent": None,
            "through_id": 0,
            "started_at": None,
            "finished_at": None,
            "error": "",
        },
    }
    assert enqueued == [("backfill", segment.id)]


def test_a_bad_rule_is_a_400_naming_line_and_column(owner, enqueued):
    response = owner.client("admin").post(
        "/api/v1/segments/", {"slug": "x", "rule": 'channel ==\n and tier == "a"'}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid",
        "message": "The request is invalid; see details.",
        "details": {
            "rule": [
                "Invalid rule at line 2, column 2: expected a value (a string, a number, true or false) after '==', found 'and'."
            ]
        },
    }
    assert not Segment.objects.exists()
    assert enqueued == []


def test_it_rejects_unknown_fields_and_duplicate_slugs(owner, segment):
    response = owner.client("admin").post(
        "/api/v1/segments/", {"slug": "x", "rule": "a exists", "colour": "red"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"colour": ["Unknown field."]}
    response = owner.client("admin").post("/api/v1/segments/", {"slug": "api", "rule": "a exists"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"slug": ["Already used in this application."]}


def test_a_rule_change_restarts_the_backfill_and_a_name_change_does_not(
    owner, segment, enqueued, django_capture_on_commit_callbacks
):
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client("admin").patch(f"/api/v1/segments/{segment.id}/", {"name": "API"}, format="json")
    assert response.status_code == 200 and enqueued == []
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client("admin").patch(
            f"/api/v1/segments/{segment.id}", {"rule": 'channel == "web"'}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["rule"] == 'channel == "web"'
    assert enqueued == [("backfill", segment.id)]


def test_it_lists_only_the_applications_segments(owner, outsider, segment, enqueued, django_assert_num_queries):
    segment_create(application=outsider.application, slug="theirs", rule="a exists")
    client = owner.client("read")
    response = client.get("/api/v1/segments")
    assert [item["slug"] for item in response.json()] == ["api"]


def test_dimension_validation(owner):
    client = owner.client("admin")
    response = client.post("/api/v1/dimensions/", {"path": "tenant ==", "min_share": 2}, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert details["path"] == ["Not a field or attribute path; e.g. tenant, attributes.client.name or prompt_tokens."]
    assert details["min_share"] == ["Ensure this value is less than or equal to 1.0."]
    response = client.post("/api/v1/dimensions/", {"path": "prompt_tokens", "bucket_edges": [2000, 500]}, format="json")
    assert response.json()["error"]["details"] == {"bucket_edges": ["Bucket edges must be strictly increasing."]}
    response = client.post("/api/v1/dimensions/", {"path": "routed_to", "bucket_edges": [1]}, format="json")
    assert response.json()["error"]["details"] == {
        "bucket_edges": ["'routed_to' is text; only numeric paths are bucketed."]
    }


def test_slices_through_the_api(owner, dimension):
    insert_decisions(owner.application, 300)
    response = owner.client("read").get("/api/v1/dimensions/slices?window=7d")
    assert response.status_code == 200
    [tenant] = response.json()
    assert tenant["total"] == 300
    assert [(s["label"], s["count"], s["rule"]) for s in tenant["slices"]] == [
        ('tenant = "acme"', 100, 'tenant == "acme"'),
        ('tenant = "hooli"', 100, 'tenant == "hooli"'),
        ('tenant = "initech"', 100, 'tenant == "initech"'),
    ]
    response = owner.client("read").get("/api/v1/dimensions/slices?window=7 days")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"window": ["Use a number and a unit: 30m, 24h or 7d."]}
