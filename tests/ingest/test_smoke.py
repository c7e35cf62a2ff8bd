import pytest

from router_ops.ingest.models import Decision

D = {"decision_id": "d-1", "occurred_at": "2026-11-24T10:15:00Z", "router_version": "v1", "unit_id": "u-1", "routed_to": "cheap"}


@pytest.mark.django_db
def test_smoke(owner):
    r = owner.client().post("/api/v1/decisions", D, format="json")
    assert r.status_code == 200, r.content
    assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    assert Decision.objects.count() == 1
