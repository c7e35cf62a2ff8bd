"""One error shape for the whole API (API.md):

{"error": {"code": "<slug>", "message": "<human text>", "details": …}}
"""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A dependency is unavailable; retry later."
    default_code = "service_unavailable"
    retry_after = 5


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


def _message_and_details(exc: exceptions.APIException) -> tuple[str, object]:
    detail = exc.detail
    if isinstance(detail, (dict, list)):
        if isinstance(exc, exceptions.ValidationError):
            return "The request is invalid; see details.", detail
        return str(exc.default_detail), detail
    return str(detail), None


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        if isinstance(exc, exceptions.ValidationError):
            code = "invalid"
        message, details = _message_and_details(exc)
    else:  # Http404 / PermissionDenied from Django, translated by DRF
        code = "not_found" if response.status_code == 404 else "permission_denied"
        message, details = str(response.data.get("detail", "")), None
    body = error_body(code, message, details)
    headers = {k: v for k, v in response.items()}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(body, status=response.status_code, headers=headers)


def json_error(status_code: int, code: str, message: str, details=None, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse(error_body(code, message, details), status=status_code)
    for key, value in (headers or {}).items():
        response[key] = value
    return response
