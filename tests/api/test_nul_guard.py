"""NUL characters never reach PostgreSQL as a 500 (found by fuzzing)."""

import pytest

from router_ops.judging.models import Judge

pytestmark = pytest.mark.django_db


def test_a_nul_in_the_query_string_is_a_400(owner):
    r = owner.client("read").get("/api/v1/rollouts/?status=%22%00x")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid"


def test_a_nul_in_a_json_body_is_a_400_and_nothing_is_stored(owner):
    body = {"kind": "exact_match", "name": "j", "config": {"a\u0000b": []}}
    r = owner.client("admin").post("/api/v1/judges/", body, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "parse_error"
    assert not Judge.objects.filter(name="j").exists()
