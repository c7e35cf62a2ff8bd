"""Request bodies and helpers shared by the ingestion and API tests."""

from __future__ import annotations

OCCURRED_AT = "2026-11-24T10:15:00Z"


def decision(decision_id: str = "d-1", **fields) -> dict:
    """A minimal valid decision (the five required fields), with overrides."""
    body = {
        "decision_id": decision_id,
        "occurred_at": OCCURRED_AT,
        "router_version": "v12",
        "unit_id": "u-1",
        "routed_to": "cheap",
    }
    body.update(fields)
    return body


def without(body: dict, field: str) -> dict:
    return {k: v for k, v in body.items() if k != field}


def error(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


def invalid(details: dict) -> dict:
    """The 400 body of a single decision (or a body shape) that failed validation."""
    return error("invalid", "The request is invalid; see details.", details)
