"""POST /api/v1/decisions (API.md): storage, batches, idempotency, body shape, keys."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from router_ops.applications.models import ApiKey, Membership, ModelEndpoint
from router_ops.applications.services import api_key_revoke, membership_set
from router_ops.ingest.models import Decision
from router_ops.rollouts.models import RouterVersion
from tests.ingest.payloads import decision, error, invalid

URL = "/api/v1/decisions"


def post(persona, body, scopes="ingest", url=URL):
    return persona.client(scopes).post(url, body, format="json")


def result(accepted=0, duplicates=0, rejected=0, errors=()):
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "errors": list(errors)}


def stored(persona, **filters):
    return Decision.objects.filter(application=persona.application, **filters)


# --- one decision --------------------------------------------------------------------------


def test_it_stores_every_field(owner):
    body = decision(
        "3f0c-1",
        occurred_at="2026-11-24T10:15:00Z",
        router_version="v12",
        unit_id="u_83a1",
        routed_to="cheap",
        model="small-1",
        router_score=0.31,
        messages=[{"role": "user", "content": "Reset my password"}],
        response="Sure.",
        prompt_tokens=120,
        completion_tokens=310,
        latency_ms=840,
        cost_usd=0.00021,
        attributes={"tenant": "acme", "user_tier": "enterprise", "channel": "api", "client": "python-requests/2.32"},
        shadow_decisions=[
            {"router_version": "v13", "routed_to": "strong", "router_score": 0.72},
            {"router_version": "v14", "routed_to": "cheap"},
        ],
    )
    response = post(owner, body)
    assert response.status_code == 200, response.content
    assert response.json() == result(accepted=1)

    row = Decision.objects.get()
    assert row.application_id == owner.application.id
    assert row.decision_id == "3f0c-1"
    assert row.occurred_at == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert row.received_at is not None
    assert row.router_version.name == "v12"
    assert (row.unit_id, row.routed_to, row.model, row.router_score) == ("u_83a1", "cheap", "small-1", 0.31)
    assert row.prompt is None
    assert row.messages == [{"role": "user", "content": "Reset my password"}]
    assert row.response == "Sure."
    assert (row.prompt_tokens, row.completion_tokens, row.latency_ms) == (120, 310, 840.0)
    assert row.cost_usd == Decimal("0.00021000")
    assert row.attributes == body["attributes"]
    assert row.segment_ids == []
    assert row.shadow_decisions == [
        {"router_version": "v13", "routed_to": "strong", "router_score": 0.72},
        {"router_version": "v14", "routed_to": "cheap"},
    ]


def test_it_stores_a_prompt(owner):
    assert post(owner, decision(prompt="What is 2+2?")).status_code == 200
    row = Decision.objects.get()
    assert (row.prompt, row.messages) == ("What is 2+2?", None)


@pytest.mark.parametrize("url", ["/api/v1/decisions", "/api/v1/decisions/"])
def test_it_answers_with_and_without_trailing_slash(owner, url):
    response = post(owner, decision(), url=url)
    assert response.status_code == 200, response.content
    assert stored(owner).count() == 1


def test_it_creates_an_unknown_router_version_as_draft(owner):
    assert post(owner, decision(router_version="v99")).status_code == 200
    version = RouterVersion.objects.get(application=owner.application)
    assert (version.name, version.status) == ("v99", RouterVersion.STATUS_DRAFT)
    assert Decision.objects.get().router_version_id == version.id


def test_it_reuses_a_known_router_version(owner, outsider):
    active = RouterVersion.objects.create(application=owner.application, name="v12", status=RouterVersion.STATUS_ACTIVE)
    body = {"decisions": [decision("d-1"), decision("d-2", router_version="v13")]}
    assert post(owner, body).status_code == 200
    assert post(outsider, decision("d-1")).status_code == 200

    assert stored(owner, decision_id="d-1").get().router_version_id == active.id
    active.refresh_from_db()
    assert active.status == RouterVersion.STATUS_ACTIVE  # not touched by ingestion
    assert sorted(RouterVersion.objects.filter(application=owner.application).values_list("name", "status")) == [
        ("v12", "active"),
        ("v13", "draft"),
    ]
    # The outsider's "v12" is its own draft, not the owner's active version.
    outsider_row = stored(outsider).get()
    assert outsider_row.router_version.application_id == outsider.application.id
    assert outsider_row.router_version.status == RouterVersion.STATUS_DRAFT


def test_shadow_decisions_do_not_create_router_versions(owner):
    body = decision(shadow_decisions=[{"router_version": "v13", "routed_to": "strong"}])
    assert post(owner, body).status_code == 200
    assert list(RouterVersion.objects.values_list("name", flat=True)) == ["v12"]
    assert Decision.objects.get().shadow_decisions == [{"router_version": "v13", "routed_to": "strong"}]


# --- cost ----------------------------------------------------------------------------------


@pytest.fixture
def priced(owner):
    ModelEndpoint.objects.create(
        application=owner.application,
        name="small",
        tier="cheap",
        base_url="http://llm.local/v1",
        model="small-1",
        input_price_per_mtok=Decimal("0.15"),
        output_price_per_mtok=Decimal("0.60"),
    )
    ModelEndpoint.objects.create(
        application=owner.application,
        name="big",
        tier="strong",
        base_url="http://llm.local/v1",
        model="big-1",
        input_price_per_mtok=Decimal("2.50"),
        output_price_per_mtok=Decimal("10.00"),
    )
    return owner


def test_it_computes_cost_from_the_model_prices_when_absent(priced):
    assert post(priced, decision(model="small-1", prompt_tokens=120, completion_tokens=310)).status_code == 200
    # (120 × 0.15 + 310 × 0.60) / 1e6
    assert Decision.objects.get().cost_usd == Decimal("0.00020400")


def test_it_finds_prices_by_endpoint_name(priced):
    assert (
        post(priced, decision(routed_to="cheap", model="big", prompt_tokens=1000, completion_tokens=2000)).status_code
        == 200
    )
    # (1000 × 2.50 + 2000 × 10.00) / 1e6
    assert Decision.objects.get().cost_usd == Decimal("0.02250000")


def test_it_falls_back_to_the_tier_prices_for_an_unknown_model(priced):
    body = decision(routed_to="strong", model="mystery", prompt_tokens=1000, completion_tokens=2000)
    assert post(priced, body).status_code == 200
    assert Decision.objects.get().cost_usd == Decimal("0.02250000")


def test_it_counts_missing_token_counts_as_zero(priced):
    assert post(priced, decision(model="small-1", completion_tokens=1000)).status_code == 200
    assert Decision.objects.get().cost_usd == Decimal("0.00060000")


def test_it_keeps_a_given_cost(priced):
    body = decision(model="small-1", prompt_tokens=120, completion_tokens=310, cost_usd=0.00021)
    assert post(priced, body).status_code == 200
    assert Decision.objects.get().cost_usd == Decimal("0.00021000")


def test_it_leaves_cost_empty_without_tokens_or_prices(priced, outsider):
    assert post(priced, decision(model="small-1")).status_code == 200
    # The outsider has no prices configured: the owner's do not apply.
    assert post(outsider, decision(model="small-1", prompt_tokens=120, completion_tokens=310)).status_code == 200
    assert list(Decision.objects.values_list("cost_usd", flat=True)) == [None, None]


# --- batches -------------------------------------------------------------------------------


def test_it_accepts_a_whole_batch(owner):
    body = {"decisions": [decision(f"d-{i}", unit_id=f"u-{i}") for i in range(3)]}
    response = post(owner, body)
    assert response.status_code == 200
    assert response.json() == result(accepted=3)
    assert sorted(stored(owner).values_list("decision_id", "unit_id")) == [
        ("d-0", "u-0"),
        ("d-1", "u-1"),
        ("d-2", "u-2"),
    ]


def test_it_accepts_1000_decisions(owner):
    body = {"decisions": [decision(f"d-{i}") for i in range(1000)]}
    response = post(owner, body)
    assert response.status_code == 200
    assert response.json() == result(accepted=1000)
    assert stored(owner).count() == 1000


def test_it_keeps_the_good_items_of_a_partial_batch(owner):
    body = {
        "decisions": [
            decision("d-0"),
            decision("d-1", occurred_at="2026-11-24"),
            decision("d-2", routed_to="strong"),
            decision("d-3", colour="blue"),
            "not an object",
            decision(None),
            decision("d-6"),
        ]
    }
    response = post(owner, body)
    assert response.status_code == 207
    assert response.json() == result(
        accepted=3,
        rejected=4,
        errors=[
            {
                "index": 1,
                "decision_id": "d-1",
                "errors": {
                    "occurred_at": ["Must be an RFC 3339 timestamp with date and time, e.g. 2026-11-24T10:15:00Z."]
                },
            },
            {"index": 3, "decision_id": "d-3", "errors": {"colour": ["Unknown field."]}},
            {"index": 4, "decision_id": None, "errors": {"non_field_errors": ["Each decision must be a JSON object."]}},
            {"index": 5, "decision_id": None, "errors": {"decision_id": ["This field may not be null."]}},
        ],
    )
    assert sorted(stored(owner).values_list("decision_id", "routed_to")) == [
        ("d-0", "cheap"),
        ("d-2", "strong"),
        ("d-6", "cheap"),
    ]


def test_a_batch_of_only_bad_items_stores_nothing(owner):
    body = {"decisions": [decision("d-0", unit_id=""), decision("d-1", prompt_tokens=-1)]}
    response = post(owner, body)
    assert response.status_code == 207
    assert response.json() == result(
        rejected=2,
        errors=[
            {"index": 0, "decision_id": "d-0", "errors": {"unit_id": ["May not be blank."]}},
            {"index": 1, "decision_id": "d-1", "errors": {"prompt_tokens": ["Must be greater than or equal to 0."]}},
        ],
    )
    assert Decision.objects.count() == 0
    assert RouterVersion.objects.count() == 0


# --- idempotency ---------------------------------------------------------------------------


def test_it_stores_a_repeated_id_in_one_batch_once(owner):
    body = {"decisions": [decision("d-1", unit_id="first"), decision("d-2"), decision("d-1", unit_id="second")]}
    response = post(owner, body)
    assert response.status_code == 200
    assert response.json() == result(accepted=2, duplicates=1)
    assert stored(owner).count() == 2
    assert stored(owner, decision_id="d-1").get().unit_id == "first"


def test_a_resent_decision_is_a_duplicate_that_changes_nothing(owner):
    first = decision("d-1", unit_id="first", routed_to="cheap", prompt_tokens=10, attributes={"tenant": "acme"})
    assert post(owner, first).json() == result(accepted=1)
    before = stored(owner).values().get()

    changed = decision("d-1", unit_id="second", routed_to="strong", router_version="v13", prompt_tokens=99)
    response = post(owner, changed)
    assert response.status_code == 200
    assert response.json() == result(duplicates=1)
    assert stored(owner).values().get() == before
    # The resend's unknown router version is still registered (a draft costs nothing, and
    # the insert runs in the same transaction); the row keeps pointing at v12.
    assert stored(owner).get().router_version.name == "v12"


def test_it_counts_duplicates_across_batches(owner):
    assert post(owner, {"decisions": [decision("d-1"), decision("d-2")]}).json() == result(accepted=2)
    response = post(
        owner, {"decisions": [decision("d-2", unit_id="x"), decision("d-3"), decision("d-1"), decision("d-3")]}
    )
    assert response.status_code == 200
    assert response.json() == result(accepted=1, duplicates=3)
    assert sorted(stored(owner).values_list("decision_id", "unit_id")) == [
        ("d-1", "u-1"),
        ("d-2", "u-1"),
        ("d-3", "u-1"),
    ]


def test_an_invalid_repeat_is_rejected_not_counted_as_duplicate(owner):
    body = {"decisions": [decision("d-1"), decision("d-1", routed_to="medium")]}
    response = post(owner, body)
    assert response.status_code == 207
    assert response.json() == result(
        accepted=1,
        rejected=1,
        errors=[
            {
                "index": 1,
                "decision_id": "d-1",
                "errors": {"routed_to": ["Unknown tier 'medium'; expected one of: cheap, strong."]},
            }
        ],
    )
    assert stored(owner).get().routed_to == "cheap"


def test_decision_ids_are_unique_per_application_only(owner, outsider):
    assert post(owner, decision("d-1", unit_id="owner")).json() == result(accepted=1)
    assert post(outsider, decision("d-1", unit_id="outsider")).json() == result(accepted=1)
    assert stored(owner).get().unit_id == "owner"
    assert stored(outsider).get().unit_id == "outsider"


# --- body shape ----------------------------------------------------------------------------


def raw_post(persona, raw, content_type="application/json"):
    # Django's own client sends the bytes as they are, whatever the content type.
    client = Client(headers={"Authorization": f"Bearer {persona.keys['ingest']}"})
    # CONTENT_TYPE explicitly: the test client leaves it out when the body is empty.
    return client.post(URL, raw, content_type=content_type, CONTENT_TYPE=content_type)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"decision_id": ', "Malformed JSON: unexpected end of data: line 1 column 17 (char 16)"),
        ("decision_id=d-1", "Malformed JSON: unexpected character, expected a JSON value: line 1 column 1 (char 0)"),
        ('{"decision_id": "\\ud800"}', "Malformed JSON: no low surrogate in string: line 1 column 18 (char 17)"),
    ],
)
def test_it_refuses_malformed_json(owner, raw, message):
    response = raw_post(owner, raw)
    assert response.status_code == 400
    assert response.json() == error("parse_error", message)
    assert Decision.objects.count() == 0


def test_it_refuses_an_empty_body(owner):
    response = raw_post(owner, "")
    assert response.status_code == 400
    assert response.json() == error("parse_error", "The body is empty; send a JSON object.")


@pytest.mark.parametrize("body", [[decision()], "d-1", 1, None])
def test_it_refuses_a_body_that_is_not_an_object(owner, body):
    response = raw_post(owner, orjson.dumps(body))
    assert response.status_code == 400
    assert response.json() == invalid({"non_field_errors": ['Send one object or {"decisions": [ … ]}.']})
    assert Decision.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"decisions": []}, {"decisions": ["Send at least one item."]}),
        ({"decisions": "x"}, {"decisions": ["Must be a list."]}),
        ({"decisions": {"decision_id": "d-1"}}, {"decisions": ["Must be a list."]}),
        ({"decisions": None}, {"decisions": ["Must be a list."]}),
        (
            {"decisions": [decision()], "dry_run": True, "app": "x"},
            {"app": ["Unknown field."], "dry_run": ["Unknown field."]},
        ),
    ],
)
def test_it_refuses_a_bad_batch_envelope(owner, body, details):
    response = post(owner, body)
    assert response.status_code == 400
    assert response.json() == invalid(details)
    assert Decision.objects.count() == 0


def test_it_refuses_more_than_1000_decisions(owner):
    response = post(owner, {"decisions": [decision(f"d-{i}") for i in range(1001)]})
    assert response.status_code == 400
    assert response.json() == invalid({"decisions": ["At most 1000 items per request; got 1001."]})
    assert Decision.objects.count() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""])
def test_it_refuses_other_content_types(owner, content_type):
    response = raw_post(owner, orjson.dumps(decision()), content_type=content_type)
    assert response.status_code == 415
    assert response.json() == error("unsupported_media_type", "Send the body as application/json.")
    assert Decision.objects.count() == 0


def test_it_accepts_json_with_a_charset(owner):
    response = raw_post(owner, orjson.dumps(decision()), content_type="application/json; charset=utf-8")
    assert response.status_code == 200
    assert Decision.objects.count() == 1


def test_it_refuses_other_methods(owner):
    response = owner.client().get(URL)
    assert response.status_code == 405
    assert response.json() == error("method_not_allowed", 'Method "GET" not allowed.')


# --- keys ----------------------------------------------------------------------------------


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def anonymous_post(client, body=None):
    return client.post(URL, body or decision(), format="json")


def test_it_refuses_a_request_without_key(owner, client):
    response = anonymous_post(client)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == error("not_authenticated", "Authentication credentials were not provided.")
    assert Decision.objects.count() == 0


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer not-a-key", "Bearer ro_short_secret", "Bearer ro_0123abcd_", "bearer ro_0123abcd"],
)
def test_it_refuses_a_malformed_key(owner, client, header):
    client.credentials(HTTP_AUTHORIZATION=header)
    response = anonymous_post(client)
    assert response.status_code == 401
    assert response.json() == error("authentication_failed", "Malformed API key.")
    assert Decision.objects.count() == 0


def test_it_refuses_another_auth_scheme(owner, client):
    client.credentials(HTTP_AUTHORIZATION=f"Token {owner.keys['ingest']}")
    response = anonymous_post(client)
    assert response.status_code == 401
    assert response.json() == error("not_authenticated", "Authentication credentials were not provided.")


def test_it_refuses_a_wrong_secret_for_an_existing_prefix(owner, client):
    key = owner.keys["ingest"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    response = anonymous_post(client)
    assert response.status_code == 401
    assert response.json() == error("authentication_failed", "Invalid API key.")
    assert Decision.objects.count() == 0


def test_it_refuses_an_unknown_prefix(owner, client):
    client.credentials(HTTP_AUTHORIZATION="Bearer ro_00000000_" + "x" * 40)
    response = anonymous_post(client)
    assert response.status_code == 401
    assert response.json() == error("authentication_failed", "Invalid API key.")


def test_it_refuses_a_revoked_key(owner):
    api_key = ApiKey.objects.get(prefix=owner.keys["ingest"][3:11])
    api_key_revoke(api_key=api_key)
    response = post(owner, decision())
    assert response.status_code == 401
    assert response.json() == error("authentication_failed", "This API key has been revoked.")
    assert Decision.objects.count() == 0


@pytest.mark.parametrize("scopes", ["read", "admin"])
def test_it_refuses_a_key_without_the_ingest_scope(owner, scopes):
    response = post(owner, decision(), scopes=scopes)
    assert response.status_code == 403
    assert response.json() == error("permission_denied", "This API key lacks the 'ingest' scope.")
    assert Decision.objects.count() == 0
    assert RouterVersion.objects.count() == 0


def test_it_accepts_a_key_with_several_scopes(owner):
    assert post(owner, decision(), scopes="ingest,read,admin").status_code == 200
    assert stored(owner).count() == 1


def test_it_refuses_a_key_used_for_another_application(owner, outsider):
    response = post(owner, decision(), url=f"{URL}?application={outsider.application.slug}")
    assert response.status_code == 403
    assert response.json() == error("permission_denied", "This API key belongs to another application.")
    assert Decision.objects.count() == 0


def test_it_accepts_a_key_naming_its_own_application(owner):
    response = post(owner, decision(), url=f"{URL}?application={owner.application.slug}")
    assert response.status_code == 200
    assert stored(owner).count() == 1


def test_a_key_writes_to_its_own_application_only(owner, outsider):
    assert post(outsider, decision("d-1")).status_code == 200
    assert stored(outsider).count() == 1
    assert stored(owner).count() == 0


# --- people (session login) ------------------------------------------------------------------


@pytest.fixture
def person(django_user_model):
    return django_user_model.objects.create_user("ana", password="pw-123-long")


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_an_operator_may_ingest_through_the_session(owner, person):
    membership_set(user=person, application=owner.application, role=Membership.ROLE_OPERATOR)
    response = session_client(person).post(URL, decision(), format="json")
    assert response.status_code == 200
    assert stored(owner).count() == 1


def test_a_viewer_may_not_ingest(owner, person):
    membership_set(user=person, application=owner.application, role=Membership.ROLE_VIEWER)
    response = session_client(person).post(URL, decision(), format="json")
    assert response.status_code == 403
    assert response.json() == error("permission_denied", "Your role in support-bot does not allow 'ingest'.")
    assert Decision.objects.count() == 0


def test_a_person_may_not_ingest_into_an_application_they_are_not_a_member_of(owner, outsider, person):
    membership_set(user=person, application=owner.application, role=Membership.ROLE_ADMIN)
    response = session_client(person).post(f"{URL}?application={outsider.application.slug}", decision(), format="json")
    assert response.status_code == 403
    assert response.json() == error("permission_denied", "Your role in other-app does not allow 'ingest'.")
    assert Decision.objects.count() == 0


# --- queries -----------------------------------------------------------------------------------


def test_a_batch_costs_the_same_queries_whatever_its_size(owner):
    """Django-visible queries only (the INSERT … ON CONFLICT and the feedback UPDATE run on
    the raw psycopg cursor). Compared rather than pinned: the pipeline after ingestion is
    still growing, but nothing in it may grow with the number of decisions."""
    post(owner, decision("warm-up"))  # creates v12
    client = owner.client()
    counts = []
    for size in (10, 500):
        body = {"decisions": [decision(f"d-{size}-{i}", attributes={"tenant": f"t{i % 7}"}) for i in range(size)]}
        with CaptureQueriesContext(connection) as queries:
            assert client.post(URL, body, format="json").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[0] <= 12
    assert stored(owner).count() == 511
