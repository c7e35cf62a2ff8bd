"""Who may act on a rollout, over the API: roles, four-eyes, evidence binding, tenancy."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from router_ops.applications.services import api_key_create
from router_ops.rollouts.models import Approval, AuditEvent, Rollout
from router_ops.rollouts.services import rollout_approve, rollout_request

pytestmark = pytest.mark.django_db

ACTIONS = ["approve", "reject", "advance", "pause", "resume", "rollback"]


@pytest.fixture
def rollout(owner, people, versions):
    return rollout_request(application=owner.application, actor=people.actor("otto"), candidate=versions["v13"])


def _body(action, rollout):
    if action == "approve":
        return {"evidence_hash": rollout.evidence_hash}
    return {"reason": "because"}


def _error(response):
    return response.json()["error"]["code"]


@pytest.mark.parametrize("action", ACTIONS)
def test_viewer_cannot_act(people, rollout, action):
    response = people.client("vera").post(
        f"/api/v1/rollouts/{rollout.pk}/{action}/", _body(action, rollout), format="json"
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(rollout=rollout).count() == 1  # only the request


def test_viewer_cannot_request(people, versions):
    response = people.client("vera").post("/api/v1/rollouts/", {"candidate": "v13"}, format="json")
    assert response.status_code == 403
    assert not Rollout.objects.exists()


def test_operator_cannot_approve(people, rollout):
    response = people.client("olga").post(
        f"/api/v1/rollouts/{rollout.pk}/approve", _body("approve", rollout), format="json"
    )
    assert response.status_code == 403
    assert _error(response) == "permission_denied"
    assert "(operator)" in response.json()["error"]["message"]
    assert not Approval.objects.exists()


def test_requester_cannot_approve_their_own_rollout(owner, people, versions):
    # ada is an admin: she may request and approve, but never both on the same rollout.
    response = people.client("ada").post("/api/v1/rollouts", {"candidate": "v13", "reason": "mine"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    response = people.client("ada").post(
        f"/api/v1/rollouts/{body['id']}/approve/", {"evidence_hash": body["evidence"]["hash"]}, format="json"
    )
    assert response.status_code == 403
    assert _error(response) == "four_eyes"
    assert not Approval.objects.exists()
    assert Rollout.objects.get().status == "requested"


def test_four_eyes_sees_through_the_requesters_key(owner, people, versions):
    _, key = api_key_create(application=owner.application, scopes=["admin"], created_by=people["ada"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = client.post("/api/v1/rollouts/", {"candidate": "v13"}, format="json").json()
    assert body["requested_by"].startswith("key:")
    response = people.client("ada").post(
        f"/api/v1/rollouts/{body['id']}/approve/", {"evidence_hash": body["evidence"]["hash"]}, format="json"
    )
    assert response.status_code == 403 and _error(response) == "four_eyes"
    response = people.client("anna").post(
        f"/api/v1/rollouts/{body['id']}/approve/", {"evidence_hash": body["evidence"]["hash"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "running"


def test_a_key_cannot_approve(owner, rollout):
    response = owner.client("ingest,read,admin").post(
        f"/api/v1/rollouts/{rollout.pk}/approve/", _body("approve", rollout), format="json"
    )
    assert response.status_code == 403
    assert _error(response) == "person_required"


def test_an_admin_key_runs_operator_actions(owner, rollout, people):
    client = owner.client("admin")
    rollout_approve(rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash)
    response = client.post(f"/api/v1/rollouts/{rollout.pk}/pause/", {"reason": "deploy freeze"}, format="json")
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.filter(rollout=rollout).latest("id")
    assert event.action == "pause" and event.actor_label.startswith("key:") and event.actor_key is not None


def test_a_read_key_cannot_act(owner, rollout):
    response = owner.client("read").post(f"/api/v1/rollouts/{rollout.pk}/pause/", {"reason": "x"}, format="json")
    assert response.status_code == 403


def test_approval_on_stale_evidence_is_refused(people, rollout, evidence):
    client = people.client("anna")
    shown = client.get(f"/api/v1/rollouts/{rollout.pk}").json()["evidence"]["hash"]
    response = client.post(f"/api/v1/rollouts/{rollout.pk}/approve/", {"evidence_hash": shown}, format="json")
    assert response.status_code == 200
    # Now running at dark: the approver looks at the gates, then the verdicts change.
    evidence.passing()
    shown = client.get(f"/api/v1/rollouts/{rollout.pk}").json()["evidence"]
    assert shown["overall"] == "pass"
    evidence.failing()
    response = client.post(f"/api/v1/rollouts/{rollout.pk}/approve/", {"evidence_hash": shown["hash"]}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "stale_evidence"
    assert "evidence changed" in error["message"]
    assert error["details"]["sent_evidence_hash"] == shown["hash"]
    assert error["details"]["current_evidence_hash"] != shown["hash"]
    assert Approval.objects.filter(rollout=rollout).count() == 1  # only the start


def test_reason_is_required(people, rollout):
    response = people.client("otto").post(f"/api/v1/rollouts/{rollout.pk}/rollback/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["details"]


def test_unknown_fields_are_named(people, rollout):
    response = people.client("otto").post(
        f"/api/v1/rollouts/{rollout.pk}/pause/", {"reason": "x", "force": True}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"force": ["Unknown field."]}


def test_another_applications_key_is_refused(outsider, rollout):
    client = outsider.client("ingest,read,admin")
    assert client.get(f"/api/v1/rollouts/{rollout.pk}/").status_code == 404
    assert client.post(f"/api/v1/rollouts/{rollout.pk}/pause/", {"reason": "x"}, format="json").status_code == 404
    assert client.get("/api/v1/rollouts/?application=support-bot").status_code == 403
    assert client.get("/api/v1/rollouts/").json() == []


def test_a_person_without_membership_is_refused(owner, rollout):
    stranger = get_user_model().objects.create_user(username="stranger", password=None)
    client = APIClient()
    client.force_login(stranger)
    assert client.get("/api/v1/rollouts/?application=support-bot").status_code == 403
    response = client.post(
        f"/api/v1/rollouts/{rollout.pk}/pause/?application=support-bot", {"reason": "x"}, format="json"
    )
    assert response.status_code == 403


def test_anonymous_is_401(rollout):
    assert APIClient().get("/api/v1/rollouts/").status_code == 401
