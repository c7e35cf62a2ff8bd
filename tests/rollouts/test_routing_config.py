"""GET /api/v1/routing-config: API.md's exact shape, the candidate first, ETag/304."""

from __future__ import annotations

import pytest

from router_ops.rollouts.models import RouterVersion
from router_ops.rollouts.services import rollout_advance, rollout_approve, rollout_request, router_version_update

pytestmark = pytest.mark.django_db


def _get(owner, **headers):
    return owner.client("read").get("/api/v1/routing-config", **headers)


def test_active_version_only(owner, versions):
    response = _get(owner)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["application", "salt", "etag", "versions", "shadow_versions"]
    assert body == {
        "application": "support-bot",
        "salt": owner.application.salt,
        "etag": body["etag"],
        "versions": [{"router_version": "v12", "weight_bp": 10000}],
        "shadow_versions": [],
    }
    assert response["ETag"] == f'"{body["etag"]}"'
    assert owner.client("read").get("/api/v1/routing-config/").json() == body  # both slash forms


def test_etag_and_304(owner, people, versions):
    first = _get(owner)
    etag = first["ETag"]
    again = _get(owner, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert _get(owner, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304
    assert _get(owner, HTTP_IF_NONE_MATCH='"stale"').status_code == 200
    # A change of the config changes the ETag.
    router_version_update(version=versions["v13"], actor=people.actor("ada"), status="shadow")
    changed = _get(owner, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["shadow_versions"] == ["v13"] and changed["ETag"] != etag


def test_candidate_listed_first_with_its_stage_weight(owner, people, versions, evidence, clock):
    evidence.passing()
    rollout = rollout_request(
        application=owner.application,
        actor=people.actor("otto"),
        candidate=versions["v13"],
        stages=[{"weight_bp": 0}, {"weight_bp": 2500, "advance": "auto"}, {"weight_bp": 10000}],
    )
    assert _get(owner).json()["versions"] == [{"router_version": "v12", "weight_bp": 10000}]
    rollout_approve(rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, now=clock.now)
    dark = _get(owner).json()
    assert dark["versions"] == [{"router_version": "v12", "weight_bp": 10000}]
    assert dark["shadow_versions"] == ["v13"]
    rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    body = _get(owner).json()
    assert body["versions"] == [
        {"router_version": "v13", "weight_bp": 2500},
        {"router_version": "v12", "weight_bp": 7500},
    ]
    assert body["shadow_versions"] == []
    assert sum(v["weight_bp"] for v in body["versions"]) == 10000


def test_no_active_version_serves_the_oldest_registered(owner):
    RouterVersion.objects.create(application=owner.application, name="v1")
    RouterVersion.objects.create(application=owner.application, name="v2")
    RouterVersion.objects.create(application=owner.application, name="s1", status="shadow")
    body = _get(owner).json()
    assert body["versions"] == [{"router_version": "v1", "weight_bp": 10000}]
    assert body["shadow_versions"] == ["s1"]


def test_no_version_at_all_is_404(owner):
    response = _get(owner)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_router_version"


def test_scope_and_tenancy(owner, outsider, versions):
    assert owner.client("ingest").get("/api/v1/routing-config").status_code == 403
    assert outsider.client("read").get("/api/v1/routing-config?application=support-bot").status_code == 403
    # The outsider's key gets its own application's config (none yet), never the owner's.
    assert outsider.client("read").get("/api/v1/routing-config").status_code == 404
    assert outsider.client("read").get("/api/v1/routing-config/assign?unit_id=u1").status_code == 404


def test_query_count(owner, versions, django_assert_num_queries):
    client = owner.client("read")
    assert client.get("/api/v1/routing-config").status_code == 200  # opens the key's throttle window
    # key lookup · throttle count · live rollout · shadow versions · active version
    with django_assert_num_queries(5):
        assert client.get("/api/v1/routing-config").status_code == 200
