"""The authorization matrix: every API operation × every kind of caller → the expected status.

Operations come from the OpenAPI schema, so a new endpoint fails
`test_the_matrix_covers_every_operation` until it is given a policy below.

Callers (columns): no credentials, a malformed key, the owner application's
ingest / read / admin keys, another application's key with every scope, and
session users of the owner application with each role, plus an anonymous session.

Cells: an exact status where the request must be refused (401, 403, 404), and
ALLOWED where authorization must let it through: the answer is then whatever
the operation says about the (empty) body or the object's state, but never
401/403 and never a 5xx. Each call runs in a savepoint that is rolled back, so
a DELETE by one caller leaves the object for the next.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from router_ops.applications.models import ModelEndpoint
from router_ops.applications.services import membership_set
from router_ops.judging.models import Judge
from router_ops.rollouts.actors import Actor
from router_ops.rollouts.services import rollout_request, router_version_activate_initial, router_version_create
from segments.models import Dimension, Segment

pytestmark = pytest.mark.django_db

ALLOWED = "allowed"
CALLERS = (
    "no_key",
    "bad_key",
    "ingest_key",
    "read_key",
    "admin_key",
    "other_app_key",
    "viewer",
    "operator",
    "approver",
    "admin_user",
    "anonymous_session",
)

# Policies: the expected cell per caller. "other_app_key" is a key with every scope of
# another application: it acts on its own application (collections) and must not see
# the owner's objects (404 on the owner's ids).
_UNAUTHENTICATED = {"no_key": 401, "bad_key": 401, "anonymous_session": 401}
INGEST = {
    **_UNAUTHENTICATED,
    "ingest_key": ALLOWED,
    "read_key": 403,
    "admin_key": 403,
    "other_app_key": ALLOWED,
    "viewer": 403,
    "operator": ALLOWED,
    "approver": 403,
    "admin_user": ALLOWED,
}
READ = {
    **_UNAUTHENTICATED,
    "ingest_key": 403,
    "read_key": ALLOWED,
    "admin_key": 403,
    "other_app_key": ALLOWED,
    "viewer": ALLOWED,
    "operator": ALLOWED,
    "approver": ALLOWED,
    "admin_user": ALLOWED,
}
ADMIN = {
    **_UNAUTHENTICATED,
    "ingest_key": 403,
    "read_key": 403,
    "admin_key": ALLOWED,
    "other_app_key": ALLOWED,
    "viewer": 403,
    "operator": 403,
    "approver": 403,
    "admin_user": ALLOWED,
}
# Requesting a rollout: the body is validated before the service's role check, so an
# empty body only proves that every member passes the view (see the report).
MEMBER = {
    **_UNAUTHENTICATED,
    **{caller: ALLOWED for caller in CALLERS if caller not in _UNAUTHENTICATED},
}
# Deciding on a rollout is for people with the approver or admin role (four-eyes: never a key).
DECIDE = {
    **_UNAUTHENTICATED,
    "ingest_key": 403,
    "read_key": 403,
    "admin_key": 403,
    "other_app_key": ALLOWED,
    "viewer": 403,
    "operator": 403,
    "approver": ALLOWED,
    "admin_user": ALLOWED,
}
# Operating a running rollout: the admin scope, operators and admins.
OPERATE = {
    **_UNAUTHENTICATED,
    "ingest_key": 403,
    "read_key": 403,
    "admin_key": ALLOWED,
    "other_app_key": ALLOWED,
    "viewer": 403,
    "operator": ALLOWED,
    "approver": 403,
    "admin_user": ALLOWED,
}


def on_owner_object(policy: dict) -> dict:
    """The same policy on one of the owner's objects: another application's key gets 404."""
    return {**policy, "other_app_key": 404}


MATRIX: dict[tuple[str, str], dict] = {
    ("POST", "/api/v1/decisions/"): INGEST,
    ("POST", "/api/v1/feedback/"): INGEST,
    ("GET", "/api/v1/segments/stats/"): READ,
    ("GET", "/api/v1/routing-config/"): READ,
    ("GET", "/api/v1/routing-config/assign/"): READ,
    ("GET", "/api/v1/sampling-policy/"): READ,
    ("PUT", "/api/v1/sampling-policy/"): ADMIN,
    ("GET", "/api/v1/models/"): ADMIN,
    ("POST", "/api/v1/models/"): ADMIN,
    ("GET", "/api/v1/models/{id}/"): on_owner_object(ADMIN),
    ("PUT", "/api/v1/models/{id}/"): on_owner_object(ADMIN),
    ("PATCH", "/api/v1/models/{id}/"): on_owner_object(ADMIN),
    ("DELETE", "/api/v1/models/{id}/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/judges/"): READ,
    ("POST", "/api/v1/judges/"): ADMIN,
    ("GET", "/api/v1/judges/{id}/"): on_owner_object(READ),
    ("PUT", "/api/v1/judges/{id}/"): on_owner_object(ADMIN),
    ("PATCH", "/api/v1/judges/{id}/"): on_owner_object(ADMIN),
    ("DELETE", "/api/v1/judges/{id}/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/segments/"): READ,
    ("POST", "/api/v1/segments/"): ADMIN,
    ("GET", "/api/v1/segments/{id}/"): on_owner_object(READ),
    ("PUT", "/api/v1/segments/{id}/"): on_owner_object(ADMIN),
    ("PATCH", "/api/v1/segments/{id}/"): on_owner_object(ADMIN),
    ("DELETE", "/api/v1/segments/{id}/"): on_owner_object(ADMIN),
    ("POST", "/api/v1/segments/{id}/backfill/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/dimensions/"): READ,
    ("POST", "/api/v1/dimensions/"): ADMIN,
    ("GET", "/api/v1/dimensions/slices/"): READ,
    ("GET", "/api/v1/dimensions/{id}/"): on_owner_object(READ),
    ("PUT", "/api/v1/dimensions/{id}/"): on_owner_object(ADMIN),
    ("PATCH", "/api/v1/dimensions/{id}/"): on_owner_object(ADMIN),
    ("DELETE", "/api/v1/dimensions/{id}/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/discoveries/"): READ,
    ("POST", "/api/v1/discoveries/run/"): ADMIN,
    ("GET", "/api/v1/discoveries/{id}/"): on_owner_object(READ),
    ("POST", "/api/v1/discoveries/{id}/promote/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/eval-sets/"): READ,
    ("POST", "/api/v1/eval-sets/"): ADMIN,
    ("GET", "/api/v1/eval-sets/{id}/"): on_owner_object(READ),
    ("DELETE", "/api/v1/eval-sets/{id}/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/eval-sets/{id}/compare/"): on_owner_object(READ),
    ("GET", "/api/v1/router-versions/"): READ,
    ("POST", "/api/v1/router-versions/"): ADMIN,
    ("GET", "/api/v1/router-versions/{id}/"): on_owner_object(READ),
    ("PUT", "/api/v1/router-versions/{id}/"): on_owner_object(ADMIN),
    ("PATCH", "/api/v1/router-versions/{id}/"): on_owner_object(ADMIN),
    ("DELETE", "/api/v1/router-versions/{id}/"): on_owner_object(ADMIN),
    ("POST", "/api/v1/router-versions/{id}/activate/"): on_owner_object(ADMIN),
    ("GET", "/api/v1/rollouts/"): READ,
    ("GET", "/api/v1/review/"): READ,
    # Labels come from people with the read role; every key is refused, before any lookup.
    ("POST", "/api/v1/review/{item_id}/label/"): {**READ, "read_key": 403, "other_app_key": 403},
    ("POST", "/api/v1/rollouts/"): MEMBER,
    ("GET", "/api/v1/rollouts/{id}/"): on_owner_object(READ),
    ("POST", "/api/v1/rollouts/{id}/approve/"): on_owner_object(DECIDE),
    ("POST", "/api/v1/rollouts/{id}/reject/"): on_owner_object(DECIDE),
    **{
        ("POST", f"/api/v1/rollouts/{{id}}/{action}/"): on_owner_object(OPERATE)
        for action in ("advance", "pause", "resume", "rollback")
    },
}


def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_the_matrix_covers_every_operation():
    operations = schema_operations()
    assert sorted(operations - MATRIX.keys()) == [], "new operations: give each a policy in MATRIX"
    assert sorted(MATRIX.keys() - operations) == [], "operations gone from the schema: drop them from MATRIX"


class World:
    """The owner's objects that the {id} of each path names, and a client per caller."""

    def __init__(self, owner, outsider):
        self.owner, self.outsider = owner, outsider
        app = owner.application
        self.people = {}
        for role in ("viewer", "operator", "approver", "admin"):
            user = get_user_model().objects.create_user(username=f"{role}-person", password=None)
            membership_set(user=user, application=app, role=role)
            self.people[role] = user
        actor = Actor(user=self.people["admin"])
        v12 = router_version_create(application=app, actor=actor, name="v12")
        router_version_activate_initial(version=v12, actor=actor, reason="first")
        v13 = router_version_create(application=app, actor=actor, name="v13")
        rollout = rollout_request(
            application=app, actor=Actor(user=self.people["operator"]), candidate=v13, reason="try it"
        )
        self.ids = {
            "models": ModelEndpoint.objects.create(
                application=app, name="small", tier="cheap", base_url="http://127.0.0.1:9/v1", model="small-1"
            ).pk,
            "judges": Judge.objects.create(application=app, name="exact", kind="exact_match").pk,
            "segments": Segment.objects.create(application=app, slug="api", name="API", rule='channel == "api"').pk,
            "dimensions": Dimension.objects.create(application=app, path="channel").pk,
            "router-versions": v13.pk,
            "rollouts": rollout.pk,
            # No fixture objects: authorization is checked before the lookup, so allowed
            # callers get 404 and refused ones 401/403 (the other application's key: 404).
            "discoveries": 999_999,
            "eval-sets": 999_999,
        }

    def path(self, template: str) -> str:
        template = template.replace("{item_id}", "999999")
        if "{id}" not in template:
            return template
        collection = template.split("/")[3]
        return template.replace("{id}", str(self.ids[collection]))

    def client(self, caller: str) -> APIClient:
        client = APIClient()
        keys = {"ingest_key": "ingest", "read_key": "read", "admin_key": "admin"}
        if caller in keys:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.owner.keys[keys[caller]]}")
        elif caller == "other_app_key":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.outsider.keys['ingest,read,admin']}")
        elif caller == "bad_key":
            client.credentials(HTTP_AUTHORIZATION="Bearer ro_deadbeef_not-a-real-key-at-all-000000000000")
        elif caller == "anonymous_session":
            client.get("/accounts/login/")  # a session cookie, nobody logged in
        elif caller != "no_key":
            client.force_login(self.people[caller.removesuffix("_user")])
        return client


@pytest.fixture
def world(owner, outsider) -> World:
    return World(owner, outsider)


# Valid bodies where an empty one would stop the request at validation, before the
# service's role checks; everything else gets {}.
BODIES = {
    "approve": {"evidence_hash": "0" * 64, "reason": "looks good"},
    "reject": {"reason": "not now"},
    "rollback": {"reason": "not now"},
    "pause": {"reason": "hold on"},
    "resume": {"reason": "go on"},
    "advance": {"reason": "next"},
}


def _call(client: APIClient, method: str, path: str):
    if method in ("POST", "PUT", "PATCH"):
        body = BODIES.get(path.rstrip("/").rsplit("/", 1)[-1], {}) if "/rollouts/" in path else {}
        return getattr(client, method.lower())(path, body, format="json")
    return getattr(client, method.lower())(path)


@pytest.mark.parametrize(("method", "template"), sorted(MATRIX))
def test_authorization(world, method, template):
    policy = MATRIX[(method, template)]
    path = world.path(template)
    wrong = []
    for caller in CALLERS:
        with transaction.atomic():
            response = _call(world.client(caller), method, path)
            transaction.set_rollback(True)
        expected = policy[caller]
        if expected == ALLOWED:
            ok = response.status_code not in (401, 403) and response.status_code < 500
        else:
            ok = response.status_code == expected
        if not ok:
            wrong.append(f"{caller}: expected {expected}, got {response.status_code} {response.content[:160]!r}")
        if response.status_code in (401, 403, 404) and path.startswith("/api/"):
            # One error shape everywhere (API.md).
            assert set(response.json()) == {"error"}, (caller, response.content)
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("method", "template"), sorted(k for k in MATRIX if MATRIX[k] is not MEMBER))
def test_a_key_naming_another_application_is_refused(world, method, template):
    """`?application=<other>` with a key: 403 whatever the operation (tenancy in one place)."""
    client = world.client("other_app_key")
    separator = "&" if "?" in template else "?"
    with transaction.atomic():
        response = _call(client, method, f"{world.path(template)}{separator}application=support-bot")
        transaction.set_rollback(True)
    assert response.status_code in (403, 404), response.content
