"""OpenAPI post-processing: every operation documents the API's error responses.

Any endpoint can answer 400 (bad input), 401 (no or bad key), 403 (scope,
role or another application), 404 (unknown object), 429 (throttled), all in
the one error shape of router_ops/api/errors.py; writes can also answer 409,
413 and 415. Views only list what is specific to them.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"nullable": True},
            },
            "required": ["code", "message", "details"],
        }
    },
    "required": ["error"],
}
COMMON = {
    "400": "Invalid input; `details` names the fields.",
    "401": "Missing, malformed, revoked or unknown API key.",
    "403": "The key lacks the scope, the person lacks the role, or the key belongs to another application.",
    "404": "No such object in this application.",
    "429": "Throttled; retry after `Retry-After` seconds.",
}
WRITES = {
    "409": "Conflicts with the current state (e.g. a duplicate, or stale evidence).",
    "413": "Body over the size limit.",
    "415": "Body is not application/json (or a supported upload type).",
}


# Ingestion names no object and changes none: it cannot answer 404 or 409.
NO_OBJECT_PATHS = ("/api/v1/decisions/", "/api/v1/feedback/")


def add_error_responses(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/") or path.startswith(("/api/v1/schema", "/api/v1/docs")):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            codes = dict(COMMON)
            if method != "get":
                codes.update(WRITES)
            if path in NO_OBJECT_PATHS:
                codes.pop("404")
                codes.pop("409", None)
            for code, description in codes.items():
                responses.setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": reference}}}
                )
    return result
