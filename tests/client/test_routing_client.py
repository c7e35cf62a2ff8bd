"""The client's routing_config() (ETag-cached) and assign() against the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_ops.rollouts.actors import Actor
from router_ops.rollouts.services import router_version_activate_initial, router_version_create
from routerops_client import RouterOpsClient
from routerops_client.assignment import bucket

pytestmark = pytest.mark.django_db(transaction=True)

VECTORS = json.loads((Path(__file__).parents[1] / "rollouts" / "assignment_vectors.json").read_text())


@pytest.fixture
def client(live_server, owner):
    version = router_version_create(application=owner.application, actor=Actor.system(), name="v12")
    router_version_activate_initial(version=version, actor=Actor.system(), reason="first version")
    with RouterOpsClient(live_server.url, owner.keys["read"]) as c:
        yield c


def test_routing_config_is_cached_by_etag(client, owner):
    first = client.routing_config()
    assert first["application"] == owner.application.slug
    assert first["versions"] == [{"router_version": "v12", "weight_bp": 10000}]
    # A second call revalidates with If-None-Match; a 304 returns the very same cached object.
    assert client.routing_config() is first


def test_assign_agrees_with_the_server_endpoint(client, owner):
    for unit in ("u_1", "u_2", "tenant:acme", "ünïcödé"):
        assert client.assign(unit) == "v12"
        server = client._http.get("/api/v1/routing-config/assign", params={"unit_id": unit}).json()
        assert server["router_version"] == "v12"
        assert server["bucket"] == bucket(owner.application.salt, unit)


def test_bucket_matches_the_published_vectors():
    vectors = VECTORS["buckets"]
    assert len(vectors) >= 10
    for vector in vectors:
        assert bucket(vector["salt"], vector["unit_id"]) == vector["bucket"]
