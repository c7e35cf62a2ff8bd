"""The sampling-policy and models APIs: scopes, tenancy, validation."""

from __future__ import annotations

import pytest

from router_ops.applications.models import ModelEndpoint
from router_ops.judging.models import Judge
from router_ops.shadow.models import SamplingPolicy
from segments.models import Segment

MODEL = {
    "name": "gpt-small",
    "tier": "cheap",
    "base_url": "https://api.openai.com/v1/",
    "model": "small-1",
    "api_key_env": "EXAMPLE_API_KEY",
    "input_price_per_mtok": "0.5",
    "output_price_per_mtok": "1.5",
    "timeout_s": 20,
    "max_concurrency": 16,
}


@pytest.mark.django_db
class TestSamplingPolicy:
    def test_it_returns_defaults(self, owner):
        r = owner.client("read").get("/api/v1/sampling-policy/")
        assert r.status_code == 200, r.content
        body = r.json()
        assert body["base_rate"] == 0.02
        assert body["min_judged_per_segment"] == 50
        assert body["opt_out_segments"] == []

    def test_it_updates_with_admin_scope_without_slash(self, owner):
        Segment.objects.create(application=owner.application, slug="acme", rule='tenant == "acme"')
        r = owner.client("admin").put(
            "/api/v1/sampling-policy",
            {"base_rate": 0.1, "daily_budget_usd": "25.5", "opt_out_segments": ["acme"]},
            format="json",
        )
        assert r.status_code == 200, r.content
        policy = SamplingPolicy.objects.get(application=owner.application)
        assert (policy.base_rate, str(policy.daily_budget_usd), policy.opt_out_segments) == (0.1, "25.5000", ["acme"])

    def test_it_rejects_rates_outside_0_1_and_unknown_fields(self, owner):
        r = owner.client("admin").put("/api/v1/sampling-policy/", {"base_rate": 1.5, "colour": "red"}, format="json")
        assert r.status_code == 400
        assert r.json()["error"]["details"] == {"colour": ["Unknown field."]}
        r = owner.client("admin").put("/api/v1/sampling-policy/", {"base_rate": 1.5}, format="json")
        assert r.status_code == 400
        assert "base_rate" in r.json()["error"]["details"]

    def test_it_rejects_unknown_opt_out_segment(self, owner):
        r = owner.client("admin").put("/api/v1/sampling-policy/", {"opt_out_segments": ["nope"]}, format="json")
        assert r.status_code == 400
        assert r.json()["error"]["details"] == {"opt_out_segments": ["Unknown segment(s): nope."]}
        assert not SamplingPolicy.objects.filter(application=owner.application, opt_out_segments=["nope"]).exists()

    def test_it_requires_admin_scope_to_write(self, owner):
        r = owner.client("read").put("/api/v1/sampling-policy/", {"base_rate": 0.5}, format="json")
        assert r.status_code == 403
        assert not SamplingPolicy.objects.filter(base_rate=0.5).exists()

    def test_it_requires_a_key(self, client):
        assert client.get("/api/v1/sampling-policy/").status_code == 401

    def test_it_refuses_another_applications_key(self, owner, outsider):
        r = outsider.client("ingest,read,admin").get("/api/v1/sampling-policy/?application=support-bot")
        assert r.status_code == 403


@pytest.mark.django_db
class TestModels:
    def test_it_creates_lists_updates_deletes(self, owner):
        c = owner.client("admin")
        r = c.post("/api/v1/models/", MODEL, format="json")
        assert r.status_code == 201, r.content
        pk = r.json()["id"]
        assert r.json()["base_url"] == "https://api.openai.com/v1"
        assert [m["name"] for m in c.get("/api/v1/models").json()] == ["gpt-small"]
        r = c.patch(f"/api/v1/models/{pk}", {"max_concurrency": 4}, format="json")
        assert r.status_code == 200 and r.json()["max_concurrency"] == 4
        r = c.put(f"/api/v1/models/{pk}/", {**MODEL, "tier": "strong"}, format="json")
        assert r.status_code == 200 and r.json()["tier"] == "strong"
        assert c.delete(f"/api/v1/models/{pk}/").status_code == 204
        assert not ModelEndpoint.objects.exists()

    def test_it_rejects_a_secret_as_api_key_env(self, owner):
        r = owner.client("admin").post("/api/v1/models/", {**MODEL, "api_key_env": "sk-abc123-secret"}, format="json")
        assert r.status_code == 400
        assert "api_key_env" in r.json()["error"]["details"]
        assert not ModelEndpoint.objects.exists()

    def test_it_rejects_bad_base_url(self, owner):
        for url in ("ftp://x.example/v1", "not a url", "https://user:pw@api.example.com/v1"):
            r = owner.client("admin").post("/api/v1/models/", {**MODEL, "base_url": url}, format="json")
            assert r.status_code == 400, url
            assert "base_url" in r.json()["error"]["details"]

    def test_it_rejects_duplicate_name(self, owner):
        owner.client("admin").post("/api/v1/models/", MODEL, format="json")
        r = owner.client("admin").post("/api/v1/models/", MODEL, format="json")
        assert r.status_code == 400
        assert r.json()["error"]["details"]["name"]

    def test_it_refuses_deleting_a_model_an_active_judge_uses(self, owner):
        pk = owner.client("admin").post("/api/v1/models/", MODEL, format="json").json()["id"]
        Judge.objects.create(
            application=owner.application,
            name="j",
            kind="pairwise_llm",
            model="gpt-small",
            prompt_version="pairwise-v1",
        )
        r = owner.client("admin").delete(f"/api/v1/models/{pk}")
        assert r.status_code == 409
        assert ModelEndpoint.objects.filter(pk=pk).exists()

    def test_it_requires_admin_scope(self, owner):
        assert owner.client("read").get("/api/v1/models/").status_code == 403
        assert owner.client("ingest").post("/api/v1/models/", MODEL, format="json").status_code == 403
        assert not ModelEndpoint.objects.exists()

    def test_it_requires_a_key(self, client):
        assert client.get("/api/v1/models/").status_code == 401

    def test_it_hides_another_applications_models(self, owner, outsider):
        pk = owner.client("admin").post("/api/v1/models/", MODEL, format="json").json()["id"]
        assert outsider.client("ingest,read,admin").get(f"/api/v1/models/{pk}").status_code == 404
        assert outsider.client("ingest,read,admin").delete(f"/api/v1/models/{pk}").status_code == 404
        assert outsider.client("ingest,read,admin").get("/api/v1/models/").json() == []
        assert ModelEndpoint.objects.filter(pk=pk).exists()
