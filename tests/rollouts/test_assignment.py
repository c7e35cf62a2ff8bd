"""The public assignment contract: the pure function, the JSON vectors (shown in the
README) and the server's assign endpoint agree; raising a weight only moves units in."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from router_ops.rollouts.services import rollout_advance, rollout_approve, rollout_request
from routerops_client.assignment import assign, bucket

VECTORS = json.loads((Path(__file__).parent / "assignment_vectors.json").read_text())


@pytest.mark.parametrize("row", VECTORS["buckets"], ids=lambda r: f"{r['salt']}:{r['unit_id']}")
def test_bucket_matches_vectors(row):
    digest = hashlib.sha256(f"{row['salt']}:{row['unit_id']}".encode()).hexdigest()
    assert digest == row["sha256_hex"]
    assert bucket(row["salt"], row["unit_id"]) == row["bucket"]


@pytest.mark.parametrize("row", VECTORS["assignments"], ids=lambda r: f"{r['unit_id']}-{r['config']}")
def test_assign_matches_vectors(row):
    versions = VECTORS["configs"][row["config"]]
    assert bucket(row["salt"], row["unit_id"]) == row["bucket"]
    assert assign(versions, row["salt"], row["unit_id"]) == row["router_version"]
    pairs = [(v["router_version"], v["weight_bp"]) for v in versions]
    assert assign(pairs, row["salt"], row["unit_id"]) == row["router_version"]


def test_vectors_cover_both_sides_of_each_boundary():
    seen = {(r["config"], r["router_version"]) for r in VECTORS["assignments"]}
    for config in ("canary_1pct", "canary_5pct", "canary_50pct"):
        assert (config, "v13") in seen and (config, "v12") in seen


def test_bucket_edges():
    # The walk is "first running sum strictly greater than the bucket".
    assert assign([("a", 1), ("b", 9999)], "s", "x") == ("a" if bucket("s", "x") == 0 else "b")
    assert assign([("a", 0), ("b", 10000)], "s", "x") == "b"


@pytest.mark.parametrize(
    "versions,message",
    [
        ([("a", 5000)], "sum to 10000"),
        ([("a", 5000), ("b", 5001)], "sum to 10000"),
        ([("a", -1), ("b", 10001)], "non-negative"),
        ([("a", 50.0), ("b", 9950)], "non-negative integer"),
    ],
)
def test_assign_rejects_bad_weights(versions, message):
    with pytest.raises(ValueError, match=message):
        assign(versions, "s", "u")


def test_raising_weight_from_1_to_5_percent_moves_no_unit_out_of_the_candidate():
    salt = "3b5d0e7c9a1f4e2d8c6b0a9f7e5d3c1b"
    units = [f"user-{i}" for i in range(10_000)]
    at_1 = {u for u in units if assign([("v13", 100), ("v12", 9900)], salt, u) == "v13"}
    at_5 = {u for u in units if assign([("v13", 500), ("v12", 9500)], salt, u) == "v13"}
    assert at_1 <= at_5
    # And the shares are what the weights say (binomial: ±4σ).
    assert 100 - 40 <= len(at_1) <= 100 + 40
    assert 500 - 88 <= len(at_5) <= 500 + 88


@pytest.mark.django_db
def test_server_assign_agrees_with_the_vectors(owner, people, versions, evidence, clock):
    application = owner.application
    application.salt = "k9f3a1c2"
    application.save(update_fields=["salt"])
    rows = [r for r in VECTORS["assignments"] if r["salt"] == "k9f3a1c2"]
    client = owner.client("read")
    for row in (r for r in rows if r["config"] == "active_only"):
        body = client.get("/api/v1/routing-config/assign", {"unit_id": row["unit_id"]}).json()
        assert body == {"unit_id": row["unit_id"], "bucket": row["bucket"], "router_version": "v12"}
    # Take the rollout to its 1 % stage: the server's answers match the canary_1pct column.
    evidence.passing()
    plan = [
        {"weight_bp": 0},
        {"weight_bp": 100, "advance": "auto"},
        {"weight_bp": 500, "advance": "auto"},
        {"weight_bp": 10000},
    ]
    rollout = rollout_request(
        application=application, actor=people.actor("otto"), candidate=versions["v13"], stages=plan
    )
    rollout_approve(rollout=rollout, actor=people.actor("anna"), evidence_hash=rollout.evidence_hash, now=clock.now)
    rollout_advance(rollout=rollout, actor=people.actor("otto"), now=clock.tick())
    config = client.get("/api/v1/routing-config").json()
    assert config["versions"] == VECTORS["configs"]["canary_1pct"]
    for row in (r for r in rows if r["config"] == "canary_1pct"):
        body = client.get(f"/api/v1/routing-config/assign/?unit_id={row['unit_id']}").json()
        assert body == {"unit_id": row["unit_id"], "bucket": row["bucket"], "router_version": row["router_version"]}
        assert assign(config["versions"], config["salt"], row["unit_id"]) == row["router_version"]


@pytest.mark.django_db
def test_assign_requires_unit_id(owner, people, versions):
    response = owner.client("read").get("/api/v1/routing-config/assign")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "unit_id" in response.json()["error"]["details"]
