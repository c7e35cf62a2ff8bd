"""GET /api/v1/segments/stats (API.md)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.applications.access import CanRead, KeyRateThrottle, request_application
from router_ops.rollouts.models import RouterVersion
from router_ops.rollups.selectors import default_router_version, parse_window, segment_stats
from router_ops.rollups.serializers import SegmentStatsSerializer


class SegmentStatsView(APIView):
    permission_classes = [CanRead]
    throttle_classes = [KeyRateThrottle]
    throttle_scope = "read"

    @extend_schema(
        operation_id="segments_stats",
        summary="Per-segment disagreement, regret and overspend, traffic-weighted, with 95 % intervals",
        parameters=[
            OpenApiParameter("window", str, description="e.g. 24h, 7d (default 7d)"),
            OpenApiParameter("router_version", str, description="default: the active version"),
            OpenApiParameter("segment", str, description="only this segment (slug)"),
            OpenApiParameter("application", str, description="the application's slug (people with several)"),
        ],
        responses={200: SegmentStatsSerializer},
    )
    def get(self, request):
        application = request_application(request)
        window_text = request.query_params.get("window", "7d")
        try:
            window = parse_window(window_text)
        except ValueError as exc:
            raise exceptions.ValidationError({"window": [str(exc)]}) from None
        version_name = request.query_params.get("router_version")
        if version_name:
            version = RouterVersion.objects.filter(application=application, name=version_name).first()
            if version is None:
                raise exceptions.NotFound(f"No router version {version_name!r} in {application.slug}.")
        else:
            version = default_router_version(application)
        segment = request.query_params.get("segment") or None
        if segment is not None:
            from segments.models import Segment

            if not Segment.objects.filter(application=application, slug=segment).exists():
                raise exceptions.NotFound(f"No segment {segment!r} in {application.slug}.")
        body = segment_stats(application=application, router_version=version, window=window, segment_slug=segment)
        return Response({"window": window_text, **body})
