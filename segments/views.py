"""API of the segments app (API.md): /api/v1/segments/, /api/v1/dimensions/,
/api/v1/discoveries/, /api/v1/eval-sets/.

Reads need the `read` scope, writes `admin`. Objects of another application are 404.
"""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.api.errors import Conflict, PayloadTooLarge
from router_ops.applications.access import CanAdmin, CanRead, request_application
from segments import evalset_parse
from segments import serializers as s
from segments.discovery import (
    discovery_latest_run,
    discovery_list,
    discovery_open_run,
    discovery_promote,
    discovery_run_request,
)
from segments.evalset_parse import MAX_BYTES as MAX_EVAL_BYTES
from segments.evalset_parse import guess_format
from segments.evalsets import DimensionError, evalset_compare, evalset_create, evalset_delete, evalset_list
from segments.models import Dimension, Discovery, EvalSet, Segment
from segments.selectors import dimension_list, dimension_slices, segment_list
from segments.services import (
    dimension_create,
    dimension_delete,
    dimension_update,
    segment_backfill_request,
    segment_create,
    segment_delete,
    segment_update,
)

MAX_WINDOW = timedelta(days=366)


class ReadOrAdmin:
    """`read` for safe methods, `admin` for writes."""

    def get_permissions(self):
        if self.request.method in permissions.SAFE_METHODS:
            return [CanRead()]
        return [CanAdmin()]


def _validation_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "error_dict"):
        details = {}
        for field, errors in exc.error_dict.items():
            key = "non_field_errors" if field == "__all__" else field
            details[key] = [message for error in errors for message in error.messages]
        # The unique constraints speak in prose ("… with this Application and Slug
        # already exists"); name the field instead.
        for message in list(details.get("non_field_errors", [])):
            for field in ("slug", "path"):
                if f"and {field} already exists" in message.lower():
                    details["non_field_errors"].remove(message)
                    details.setdefault(field, []).append("Already used in this application.")
        if details.get("non_field_errors") == []:
            del details["non_field_errors"]
        return exceptions.ValidationError(details)
    return exceptions.ValidationError({"non_field_errors": exc.messages})


def _input(serializer_class, request, *, partial: bool = False):
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["Send a JSON object."]})
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _write(call):
    try:
        return call()
    except DjangoValidationError as exc:
        raise _validation_error(exc) from None
    except IntegrityError:  # a concurrent create with the same slug/path
        raise exceptions.ValidationError({"non_field_errors": ["Already used in this application."]}) from None


class SegmentListView(ReadOrAdmin, APIView):
    @extend_schema(operation_id="segments_list", responses=s.SegmentOutSerializer(many=True))
    def get(self, request):
        application = request_application(request)
        return Response(s.SegmentOutSerializer(segment_list(application=application), many=True).data)

    @extend_schema(
        operation_id="segments_create", request=s.SegmentInSerializer, responses={201: s.SegmentOutSerializer}
    )
    def post(self, request):
        application = request_application(request)
        data = _input(s.SegmentInSerializer, request)
        segment = _write(lambda: segment_create(application=application, **data))
        return Response(s.SegmentOutSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(ReadOrAdmin, APIView):
    def _segment(self, request, pk: int) -> Segment:
        return get_object_or_404(Segment, pk=pk, application=request_application(request))

    @extend_schema(operation_id="segments_retrieve", responses=s.SegmentOutSerializer)
    def get(self, request, pk: int):
        return Response(s.SegmentOutSerializer(self._segment(request, pk)).data)

    @extend_schema(operation_id="segments_update", request=s.SegmentInSerializer, responses=s.SegmentOutSerializer)
    def put(self, request, pk: int):
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="segments_partial_update", request=s.SegmentInSerializer, responses=s.SegmentOutSerializer
    )
    def patch(self, request, pk: int):
        return self._update(request, pk, partial=True)

    def _update(self, request, pk: int, *, partial: bool):
        segment = self._segment(request, pk)
        data = _input(s.SegmentInSerializer, request, partial=partial)
        segment = _write(lambda: segment_update(segment=segment, **data))
        return Response(s.SegmentOutSerializer(segment).data)

    @extend_schema(operation_id="segments_destroy", responses={204: None})
    def delete(self, request, pk: int):
        segment_delete(segment=self._segment(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentBackfillView(APIView):
    permission_classes = [CanAdmin]

    @extend_schema(operation_id="segments_backfill", request=None, responses={202: s.SegmentOutSerializer})
    def post(self, request, pk: int):
        segment = get_object_or_404(Segment, pk=pk, application=request_application(request))
        return Response(s.SegmentOutSerializer(segment_backfill_request(segment=segment)).data, status=202)


class DimensionListView(ReadOrAdmin, APIView):
    @extend_schema(operation_id="dimensions_list", responses=s.DimensionOutSerializer(many=True))
    def get(self, request):
        application = request_application(request)
        return Response(s.DimensionOutSerializer(dimension_list(application=application), many=True).data)

    @extend_schema(
        operation_id="dimensions_create", request=s.DimensionInSerializer, responses={201: s.DimensionOutSerializer}
    )
    def post(self, request):
        application = request_application(request)
        data = _input(s.DimensionInSerializer, request)
        dimension = _write(lambda: dimension_create(application=application, **data))
        return Response(s.DimensionOutSerializer(dimension).data, status=status.HTTP_201_CREATED)


class DimensionDetailView(ReadOrAdmin, APIView):
    def _dimension(self, request, pk: int) -> Dimension:
        return get_object_or_404(Dimension, pk=pk, application=request_application(request))

    @extend_schema(operation_id="dimensions_retrieve", responses=s.DimensionOutSerializer)
    def get(self, request, pk: int):
        return Response(s.DimensionOutSerializer(self._dimension(request, pk)).data)

    @extend_schema(
        operation_id="dimensions_update", request=s.DimensionInSerializer, responses=s.DimensionOutSerializer
    )
    def put(self, request, pk: int):
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="dimensions_partial_update", request=s.DimensionInSerializer, responses=s.DimensionOutSerializer
    )
    def patch(self, request, pk: int):
        return self._update(request, pk, partial=True)

    def _update(self, request, pk: int, *, partial: bool):
        dimension = self._dimension(request, pk)
        data = _input(s.DimensionInSerializer, request, partial=partial)
        dimension = _write(lambda: dimension_update(dimension=dimension, **data))
        return Response(s.DimensionOutSerializer(dimension).data)

    @extend_schema(operation_id="dimensions_destroy", responses={204: None})
    def delete(self, request, pk: int):
        dimension_delete(dimension=self._dimension(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


_WINDOW = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    match = _WINDOW.match(text or "")
    if not match:
        raise exceptions.ValidationError({"window": ["Use a number and a unit: 30m, 24h or 7d."]})
    window = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if window > MAX_WINDOW:
        raise exceptions.ValidationError({"window": ["At most 366d."]})
    return window


class DimensionSlicesView(APIView):
    permission_classes = [CanRead]

    @extend_schema(
        operation_id="dimensions_slices",
        parameters=[OpenApiParameter("window", str, description="e.g. 24h, 7d (default 7d)")],
        responses=s.DimensionSlicesSerializer(many=True),
    )
    def get(self, request):
        application = request_application(request)
        window = parse_window(request.query_params.get("window", "7d"))
        results = dimension_slices(application=application, window=window)
        return Response(s.DimensionSlicesSerializer(results, many=True).data)


# --- discovery (/api/v1/discoveries/) ---------------------------------------------------------


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def _query_flag(request, name: str) -> bool:
    """A yes/no query parameter; anything else is a 400 naming it (not silently "no")."""
    values = request.query_params.getlist(name)
    if not values:
        return False
    if len(values) == 1 and values[0].lower() in _TRUE | _FALSE:
        return values[0].lower() in _TRUE
    raise exceptions.ValidationError({name: ["Use true or false (once)."]})


class DiscoveryListView(APIView):
    """The latest finished discovery run and its ranked findings (`?all=1`: every tested slice)."""

    permission_classes = [CanRead]

    @extend_schema(
        operation_id="discoveries_list",
        parameters=[OpenApiParameter("all", bool, description="Include slices that were tested but not significant")],
        responses=s.DiscoveryListOutSerializer,
    )
    def get(self, request):
        application = request_application(request)
        include_all = _query_flag(request, "all")
        run = discovery_latest_run(application=application)
        findings = list(discovery_list(run=run, include_all=include_all)) if run else []
        body = {"run": run, "open_run": discovery_open_run(application=application), "findings": findings}
        return Response(s.DiscoveryListOutSerializer(body).data)


class DiscoveryRunView(APIView):
    """Queue a discovery run now (202), or return the one already queued or running (200)."""

    permission_classes = [CanAdmin]

    @extend_schema(
        operation_id="discoveries_run",
        request=s.DiscoveryRunInSerializer,
        responses={202: s.DiscoveryRunOutSerializer, 200: s.DiscoveryRunOutSerializer},
    )
    def post(self, request):
        application = request_application(request)
        data = dict(_input(s.DiscoveryRunInSerializer, request))
        if "window" in data:
            data["window"] = parse_window(data["window"])
        run, created = discovery_run_request(application=application, trigger="api", **data)
        return Response(s.DiscoveryRunOutSerializer(run).data, status=202 if created else 200)


def _discovery(request, pk: int) -> Discovery:
    return get_object_or_404(
        Discovery.objects.select_related("promoted_segment", "application"),
        pk=pk,
        application=request_application(request),
    )


class DiscoveryDetailView(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="discoveries_retrieve", responses=s.DiscoveryOutSerializer)
    def get(self, request, pk: int):
        return Response(s.DiscoveryOutSerializer(_discovery(request, pk)).data)


class DiscoveryPromoteView(APIView):
    """ "Make this a segment": a segment with the finding's rule, backfilled."""

    permission_classes = [CanAdmin]

    @extend_schema(
        operation_id="discoveries_promote",
        request=s.DiscoveryPromoteInSerializer,
        responses={201: s.SegmentOutSerializer},
    )
    def post(self, request, pk: int):
        discovery = _discovery(request, pk)
        data = _input(s.DiscoveryPromoteInSerializer, request)
        if discovery.promoted_segment_id:
            raise Conflict(f"Already made into the segment {discovery.promoted_segment.slug!r}.")
        segment = _write(lambda: discovery_promote(discovery=discovery, **data))
        return Response(s.SegmentOutSerializer(segment).data, status=status.HTTP_201_CREATED)


# --- eval sets (/api/v1/eval-sets/) -------------------------------------------------------------


class _NoFormatOverride(DefaultContentNegotiation):
    """`?format=csv` names the upload's format here, not a response renderer."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


def _upload(request) -> tuple[bytes, str, str, str]:
    """(data, format, filename, name) from a multipart `file` or a raw body."""
    content_type = request.META.get("CONTENT_TYPE", "")
    params = request.query_params
    if content_type.startswith("multipart/form-data"):
        upload = request.FILES.get("file")
        if upload is None:
            raise exceptions.ValidationError({"file": ["Attach the eval set as the multipart field 'file'."]})
        if upload.size > MAX_EVAL_BYTES:
            raise PayloadTooLarge(f"The file has {upload.size} bytes; the limit is {MAX_EVAL_BYTES}.")
        fmt = request.data.get("format") or params.get("format") or guess_format(upload.name, upload.content_type)
        return upload.read(), fmt, upload.name, request.data.get("name") or params.get("name") or upload.name
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_EVAL_BYTES:
        raise PayloadTooLarge(f"Body of {declared} bytes exceeds the limit of {MAX_EVAL_BYTES} bytes.")
    try:
        data = request._request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(f"Body exceeds the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.") from None
    fmt = params.get("format") or guess_format(content_type=content_type)
    return data, fmt, "", params.get("name", "")


class EvalSetListView(ReadOrAdmin, APIView):
    parser_classes = [MultiPartParser, FormParser]
    content_negotiation_class = _NoFormatOverride

    @extend_schema(operation_id="eval_sets_list", responses=s.EvalSetOutSerializer(many=True))
    def get(self, request):
        return Response(s.EvalSetOutSerializer(evalset_list(application=request_application(request)), many=True).data)

    @extend_schema(
        operation_id="eval_sets_create",
        description=evalset_parse.__doc__,
        parameters=[
            OpenApiParameter("format", str, description="jsonl or csv (or from the file name / Content-Type)"),
            OpenApiParameter("name", str, description="A name for the eval set (default: the file name)"),
        ],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "format": {"type": "string"},
                    "name": {"type": "string"},
                },
            },
            "text/csv": {"type": "string"},
            "application/x-ndjson": {"type": "string"},
        },
        responses={201: s.EvalSetOutSerializer},
    )
    def post(self, request):
        application = request_application(request)
        data, fmt, filename, name = _upload(request)
        if fmt not in evalset_parse.FORMATS:
            raise exceptions.ValidationError(
                {
                    "format": [
                        f"Say which format: format=jsonl or format=csv (got {fmt!r})."
                        if fmt
                        else "Say which format: format=jsonl or format=csv."
                    ]
                }
            )
        if len(name) > 200:
            raise exceptions.ValidationError({"name": ["At most 200 characters."]})
        try:
            eval_set, report = evalset_create(
                application=application, name=name, data=data, fmt=fmt, filename=filename, created_by=request.user
            )
        except evalset_parse.EvalFileError as exc:
            if exc.code == "too_large":
                raise PayloadTooLarge(str(exc)) from None
            raise exceptions.ValidationError({"file": [str(exc)]}) from None
        if eval_set is None:
            raise exceptions.ValidationError(
                {"file": [f"No valid row; {report.rejected} rejected."], "rows": [str(e) for e in report.errors]}
            )
        return Response(s.EvalSetOutSerializer(eval_set).data, status=status.HTTP_201_CREATED)


def _eval_set(request, pk: int) -> EvalSet:
    return get_object_or_404(
        EvalSet.objects.select_related("application"), pk=pk, application=request_application(request)
    )


class EvalSetDetailView(ReadOrAdmin, APIView):
    @extend_schema(operation_id="eval_sets_retrieve", responses=s.EvalSetOutSerializer)
    def get(self, request, pk: int):
        return Response(s.EvalSetOutSerializer(_eval_set(request, pk)).data)

    @extend_schema(operation_id="eval_sets_destroy", responses={204: None})
    def delete(self, request, pk: int):
        evalset_delete(eval_set=_eval_set(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EvalSetCompareView(APIView):
    permission_classes = [CanRead]

    @extend_schema(
        operation_id="eval_sets_compare",
        parameters=[
            OpenApiParameter("window", str, description="Traffic window, e.g. 24h, 7d (default 7d)"),
            OpenApiParameter("dimension", str, description="An attribute path to compare by, e.g. channel"),
        ],
        responses=s.EvalSetComparisonSerializer,
    )
    def get(self, request, pk: int):
        eval_set = _eval_set(request, pk)
        window = parse_window(request.query_params.get("window", "7d"))
        dimension = request.query_params.get("dimension") or None
        try:
            comparison = evalset_compare(eval_set=eval_set, window=window, dimension=dimension)
        except DimensionError as exc:
            raise exceptions.ValidationError({"dimension": [str(exc)]}) from None
        return Response(s.EvalSetComparisonSerializer(comparison).data)
