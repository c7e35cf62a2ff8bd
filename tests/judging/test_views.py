"""The judges API: scopes, tenancy, validation, and retiring instead of deleting history."""

from __future__ import annotations

import pytest

from router_ops.applications.models import ModelEndpoint
from router_ops.judging.models import Judge


@pytest.fixture
def judge_model(owner):
    return ModelEndpoint.objects.create(
        application=owner.application, name="judge-1", tier="judge", base_url="http://127.0.0.1:9/v1", model="sim-judge"
    )


@pytest.mark.django_db
class TestJudges:
    def test_it_creates_a_pairwise_judge_with_the_default_prompt(self, owner, judge_model):
        r = owner.client("admin").post(
            "/api/v1/judges", {"name": "llm", "kind": "pairwise_llm", "model": "judge-1"}, format="json"
        )
        assert r.status_code == 201, r.content
        assert r.json()["prompt_version"] == "pairwise-v1"
        assert r.json()["active"] is True

    def test_it_rejects_an_llm_judge_without_a_known_model(self, owner):
        r = owner.client("admin").post(
            "/api/v1/judges/", {"name": "llm", "kind": "pairwise_llm", "model": "nope"}, format="json"
        )
        assert r.status_code == 400
        assert r.json()["error"]["details"]["model"] == [
            "No model named 'nope' in this application (see /api/v1/models/)."
        ]
        assert not Judge.objects.exists()

    def test_it_rejects_unknown_prompt_version_and_kind(self, owner, judge_model):
        c = owner.client("admin")
        r = c.post(
            "/api/v1/judges/",
            {"name": "llm", "kind": "pairwise_llm", "model": "judge-1", "prompt_version": "v9"},
            format="json",
        )
        assert r.status_code == 400 and "prompt_version" in r.json()["error"]["details"]
        r = c.post("/api/v1/judges/", {"name": "x", "kind": "coin_flip"}, format="json")
        assert r.status_code == 400 and "kind" in r.json()["error"]["details"]

    def test_it_rejects_a_recorded_judge_without_source(self, owner):
        r = owner.client("admin").post("/api/v1/judges/", {"name": "rec", "kind": "recorded"}, format="json")
        assert r.status_code == 400 and "config" in r.json()["error"]["details"]

    def test_it_lists_updates_and_deletes(self, owner):
        c = owner.client("admin")
        pk = c.post("/api/v1/judges/", {"name": "norm", "kind": "normalised_match"}, format="json").json()["id"]
        assert [j["name"] for j in owner.client("read").get("/api/v1/judges/").json()] == ["norm"]
        r = c.patch(f"/api/v1/judges/{pk}/", {"active": False}, format="json")
        assert r.status_code == 200 and r.json()["active"] is False
        assert c.delete(f"/api/v1/judges/{pk}").status_code == 204
        assert not Judge.objects.exists()

    def test_it_rejects_a_duplicate_name(self, owner):
        c = owner.client("admin")
        c.post("/api/v1/judges/", {"name": "norm", "kind": "normalised_match"}, format="json")
        r = c.post("/api/v1/judges/", {"name": "norm", "kind": "exact_match"}, format="json")
        assert r.status_code == 400 and "name" in r.json()["error"]["details"]

    def test_it_requires_admin_scope_to_write(self, owner):
        r = owner.client("read").post("/api/v1/judges/", {"name": "norm", "kind": "normalised_match"}, format="json")
        assert r.status_code == 403
        assert not Judge.objects.exists()

    def test_it_requires_a_key(self, client):
        assert client.get("/api/v1/judges/").status_code == 401

    def test_it_hides_another_applications_judges(self, owner, outsider):
        pk = (
            owner.client("admin")
            .post("/api/v1/judges/", {"name": "norm", "kind": "normalised_match"}, format="json")
            .json()["id"]
        )
        assert outsider.client("ingest,read,admin").get(f"/api/v1/judges/{pk}").status_code == 404
        assert (
            outsider.client("ingest,read,admin")
            .patch(f"/api/v1/judges/{pk}", {"active": False}, format="json")
            .status_code
            == 404
        )
        assert Judge.objects.get(pk=pk).active is True
