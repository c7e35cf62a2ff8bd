"""/api/v1/router-versions/: reads with the read scope, writes with admin; status changes are guarded."""

from __future__ import annotations

import pytest

from router_ops.ingest.models import Decision
from router_ops.rollouts.models import AuditEvent, RouterVersion
from router_ops.rollouts.services import rollout_request

pytestmark = pytest.mark.django_db


def test_list_and_retrieve(owner, versions):
    client = owner.client("read")
    body = client.get("/api/v1/router-versions/").json()
    assert [(v["name"], v["status"]) for v in body] == [("v13", "draft"), ("v12", "active")]
    assert client.get("/api/v1/router-versions?status=active").json()[0]["name"] == "v12"
    one = client.get(f"/api/v1/router-versions/{versions['v12'].pk}").json()
    assert set(one) == {"id", "name", "status", "config", "notes", "created_at"}


def test_create_needs_admin(owner):
    payload = {"name": "v20", "config": {"threshold": 0.4}, "notes": "lower threshold"}
    assert owner.client("read").post("/api/v1/router-versions/", payload, format="json").status_code == 403
    response = owner.client("admin").post("/api/v1/router-versions", payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "draft" and response.json()["config"] == {"threshold": 0.4}
    event = AuditEvent.objects.get(action="version_create")
    assert event.subject == "router_version:v20" and event.actor_label.startswith("key:")


def test_create_refuses_active_and_duplicates_and_unknown_fields(owner, versions):
    client = owner.client("admin")
    response = client.post("/api/v1/router-versions/", {"name": "v30", "status": "active"}, format="json")
    assert response.status_code == 400
    assert (
        client.post("/api/v1/router-versions/", {"name": "v12"}, format="json").json()["error"]["code"]
        == "duplicate_name"
    )
    response = client.post("/api/v1/router-versions/", {"name": "v31", "owner": "me"}, format="json")
    assert response.json()["error"]["details"] == {"owner": ["Unknown field."]}


def test_manual_status_transitions(owner, versions):
    client = owner.client("admin")
    url = f"/api/v1/router-versions/{versions['v13'].pk}/"
    assert client.patch(url, {"status": "shadow"}, format="json").json()["status"] == "shadow"
    response = client.patch(url, {"status": "active"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_transition"
    assert client.patch(url, {"status": "canary"}, format="json").status_code == 409
    assert client.patch(url, {"notes": "n", "config": {"t": 1}}, format="json").status_code == 200
    assert RouterVersion.objects.get(pk=versions["v13"].pk).status == "shadow"


def test_a_live_versions_config_is_frozen(owner, versions):
    url = f"/api/v1/router-versions/{versions['v12'].pk}"
    response = owner.client("admin").patch(url, {"config": {"threshold": 0.9}}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "version_live"
    assert owner.client("admin").patch(url, {"notes": "still fine"}, format="json").status_code == 200


def test_an_active_version_cannot_be_deleted(owner, versions):
    response = owner.client("admin").delete(f"/api/v1/router-versions/{versions['v12'].pk}/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "version_live"
    assert RouterVersion.objects.filter(pk=versions["v12"].pk).exists()


def test_delete_an_unused_draft_but_not_a_referenced_one(owner, people, versions):
    client = owner.client("admin")
    spare = RouterVersion.objects.create(application=owner.application, name="spare")
    assert client.delete(f"/api/v1/router-versions/{spare.pk}").status_code == 204
    Decision.objects.create(
        application=owner.application,
        decision_id="d1",
        occurred_at="2026-11-24T10:00:00Z",
        router_version=versions["v13"],
        unit_id="u",
        routed_to="cheap",
    )
    response = client.delete(f"/api/v1/router-versions/{versions['v13'].pk}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "version_referenced"


def test_status_of_a_version_in_a_rollout_is_locked(owner, people, versions):
    rollout_request(application=owner.application, actor=people.actor("otto"), candidate=versions["v13"])
    response = owner.client("admin").patch(
        f"/api/v1/router-versions/{versions['v13'].pk}", {"status": "retired"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "in_rollout"


def test_activate_only_the_first_version(owner, versions):
    client = owner.client("admin")
    response = client.post(f"/api/v1/router-versions/{versions['v13'].pk}/activate/", {"reason": "r"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "active_exists"


def test_activate_first_version(owner):
    version = RouterVersion.objects.create(application=owner.application, name="v1")
    client = owner.client("admin")
    assert client.post(f"/api/v1/router-versions/{version.pk}/activate", {}, format="json").status_code == 400
    response = client.post(f"/api/v1/router-versions/{version.pk}/activate", {"reason": "launch"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "active"


def test_another_applications_key(owner, outsider, versions):
    pk = versions["v12"].pk
    client = outsider.client("ingest,read,admin")
    assert client.get(f"/api/v1/router-versions/{pk}").status_code == 404
    assert client.patch(f"/api/v1/router-versions/{pk}", {"notes": "x"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/router-versions/{pk}").status_code == 404
    assert client.get("/api/v1/router-versions?application=support-bot").status_code == 403
    assert client.get("/api/v1/router-versions").json() == []


def test_people_roles(people, versions):
    assert people.client("vera").get("/api/v1/router-versions/").status_code == 200
    assert people.client("otto").post("/api/v1/router-versions/", {"name": "x1"}, format="json").status_code == 403
    assert people.client("ada").post("/api/v1/router-versions/", {"name": "x1"}, format="json").status_code == 201
