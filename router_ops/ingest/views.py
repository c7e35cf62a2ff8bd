"""POST /api/v1/decisions and /api/v1/feedback (API.md)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.api.body import json_body
from router_ops.api.metrics import ingest_record
from router_ops.applications.access import CanIngest, KeyRateThrottle, request_application
from router_ops.ingest import serializers as s
from router_ops.ingest.services import decision_ingest_batch, feedback_ingest_batch

ERRORS = {code: OpenApiResponse(s.ErrorSerializer) for code in (400, 401, 403, 413, 415, 429)}


def _items(body: object, key: str, limit: int, *, single_allowed: bool) -> tuple[list, bool]:
    """(items, was_single) from `{key: [...]}` or, where allowed, one bare object."""
    if isinstance(body, dict) and key in body:
        extra = sorted(set(body) - {key})
        if extra:
            raise exceptions.ValidationError({field: ["Unknown field."] for field in extra})
        items = body[key]
        if not isinstance(items, list):
            raise exceptions.ValidationError({key: ["Must be a list."]})
        if not items:
            raise exceptions.ValidationError({key: ["Send at least one item."]})
        if len(items) > limit:
            raise exceptions.ValidationError({key: [f"At most {limit} items per request; got {len(items)}."]})
        return items, False
    if single_allowed and isinstance(body, dict):
        return [body], True
    raise exceptions.ValidationError(
        {
            "non_field_errors": [
                f'Send one object or {{"{key}": [ … ]}}.' if single_allowed else f'Send {{"{key}": [ … ]}}.'
            ]
        }
    )


def _respond(result, single: bool) -> Response:
    if single and result.rejected:
        raise exceptions.ValidationError(result.errors[0]["errors"])
    return Response(result.as_response(), status=207 if result.rejected else 200)


class IngestMetricsMixin:
    """Counts every ingestion request and its items for /metrics (errors included)."""

    metrics_kind = ""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        application = getattr(request, "_routerops_application", None)
        ingest_record(
            kind=self.metrics_kind,
            status=response.status_code,
            application_id=application.id if application is not None else None,
            accepted=data.get("accepted", 0),
            duplicates=data.get("duplicates", 0),
            rejected=data.get("rejected", 0),
        )
        return response


class DecisionIngestView(IngestMetricsMixin, APIView):
    metrics_kind = "decisions"
    # The body is read by json_body (JSON only, else 415); declared here so the schema says so.
    parser_classes = [JSONParser]
    permission_classes = [CanIngest]
    throttle_classes = [KeyRateThrottle]
    throttle_scope = "ingest"

    @extend_schema(
        operation_id="decisions_ingest",
        summary="Ingest routing decisions (one, or a batch of up to 1000)",
        request=PolymorphicProxySerializer(
            component_name="DecisionIngestRequest",
            serializers=[s.DecisionInSerializer, s.DecisionBatchInSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: s.IngestResultSerializer,
            207: OpenApiResponse(
                s.IngestResultSerializer, description="Some items were rejected; the rest are stored."
            ),
            **ERRORS,
        },
    )
    def post(self, request):
        application = request_application(request)
        items, single = _items(json_body(request), "decisions", settings.INGEST_MAX_BATCH, single_allowed=True)
        return _respond(decision_ingest_batch(application=application, items=items), single)


class FeedbackIngestView(IngestMetricsMixin, APIView):
    metrics_kind = "feedback"
    # The body is read by json_body (JSON only, else 415); declared here so the schema says so.
    parser_classes = [JSONParser]
    permission_classes = [CanIngest]
    throttle_classes = [KeyRateThrottle]
    throttle_scope = "ingest"

    @extend_schema(
        operation_id="feedback_ingest",
        summary="Ingest late feedback on decisions",
        request=s.FeedbackBatchInSerializer,
        responses={
            200: s.IngestResultSerializer,
            207: OpenApiResponse(
                s.IngestResultSerializer, description="Some items were rejected; the rest are stored."
            ),
            **ERRORS,
        },
    )
    def post(self, request):
        application = request_application(request)
        items, single = _items(json_body(request), "feedback", settings.INGEST_MAX_BATCH, single_allowed=False)
        return _respond(feedback_ingest_batch(application=application, items=items), single)
