"""The OpenAPI schema validates and agrees with API.md for ingestion and feedback."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

DECISION_FIELDS = [
    "decision_id",
    "occurred_at",
    "router_version",
    "unit_id",
    "routed_to",
    "model",
    "router_score",
    "prompt",
    "messages",
    "response",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "cost_usd",
    "attributes",
    "shadow_decisions",
]
INGEST_RESPONSES = ["200", "207", "400", "401", "403", "413", "415", "429"]


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    with django_db_blocker.unblock():
        # --fail-on-warn: an unresolvable serializer or authenticator fails the build.
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def resolve(schema, ref_or_schema):
    ref = ref_or_schema.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def request_schema(schema, path):
    content = schema["paths"][path]["post"]["requestBody"]["content"]
    assert list(content) == ["application/json"]  # anything else is answered 415
    return resolve(schema, content["application/json"]["schema"])


def test_decisions_accept_one_decision_or_a_batch(schema):
    body = request_schema(schema, "/api/v1/decisions/")
    single, batch = (resolve(schema, s) for s in body["oneOf"])
    assert list(single["properties"]) == DECISION_FIELDS
    assert sorted(single["required"]) == sorted(
        ["decision_id", "occurred_at", "router_version", "unit_id", "routed_to"]
    )
    assert single["properties"]["decision_id"]["maxLength"] == 128
    assert single["properties"]["occurred_at"]["format"] == "date-time"
    assert single["properties"]["prompt_tokens"]["minimum"] == 0
    shadow = resolve(schema, single["properties"]["shadow_decisions"]["items"])
    assert list(shadow["properties"]) == ["router_version", "routed_to", "router_score"]
    assert batch["required"] == ["decisions"]
    assert resolve(schema, batch["properties"]["decisions"]["items"]) == single


@pytest.mark.parametrize("path", ["/api/v1/decisions/", "/api/v1/feedback/"])
def test_ingestion_documents_its_responses(schema, path):
    operation = schema["paths"][path]["post"]
    assert sorted(operation["responses"]) == INGEST_RESPONSES
    result = resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert operation["responses"]["207"]["content"]["application/json"]["schema"]["$ref"].endswith("/IngestResult")
    assert list(result["properties"]) == ["accepted", "duplicates", "rejected", "errors"]
    item_error = resolve(schema, result["properties"]["errors"]["items"])
    assert list(item_error["properties"]) == ["index", "decision_id", "errors"]
    for code in INGEST_RESPONSES[2:]:
        error = resolve(schema, operation["responses"][code]["content"]["application/json"]["schema"])
        assert list(resolve(schema, error["properties"]["error"])["properties"]) == ["code", "message", "details"]
    assert operation["security"][0] == {"apiKey": []}


def test_the_key_is_documented_as_a_bearer_token(schema):
    assert schema["components"]["securitySchemes"]["apiKey"]["type"] == "http"
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_feedback_takes_a_list(schema):
    body = request_schema(schema, "/api/v1/feedback/")
    assert body["required"] == ["feedback"]
    item = resolve(schema, body["properties"]["feedback"]["items"])
    assert list(item["properties"]) == ["decision_id", "kind", "value", "occurred_at", "feedback_id"]
    assert item["required"] == ["decision_id", "kind"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/schema"])
def test_the_schema_is_public(path):
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    served = yaml.safe_load(response.content)
    assert "/api/v1/decisions/" in served["paths"]
    assert "/api/v1/feedback/" in served["paths"]


@pytest.mark.django_db
def test_the_schema_is_served_as_json_on_request():
    response = APIClient().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "RouterOps API"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/docs"])
def test_the_docs_page_is_public(path):
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger-ui" in response.content
    assert b"/api/v1/schema" in response.content
