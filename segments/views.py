"""API of the segments app (API.md): /api/v1/segments/, /api/v1/dimensions/.

Reads need the `read` scope, writes `admin`. Objects of another application are 404.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.applications.access import CanAdmin, CanRead, request_application
from segments import serializers as s
from segments.models import Dimension, Segment
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

    @extend_schema(operation_id="segments_create", request=s.SegmentInSerializer, responses={201: s.SegmentOutSerializer})
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

    @extend_schema(operation_id="segments_partial_update", request=s.SegmentInSerializer, responses=s.SegmentOutSerializer)
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

    @extend_schema(operation_id="dimensions_create", request=s.DimensionInSerializer, responses={201: s.DimensionOutSerializer})
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

    @extend_schema(operation_id="dimensions_update", request=s.DimensionInSerializer, responses=s.DimensionOutSerializer)
    def put(self, request, pk: int):
        return self._update(request, pk, partial=False)

    @extend_schema(operation_id="dimensions_partial_update", request=s.DimensionInSerializer, responses=s.DimensionOutSerializer)
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
