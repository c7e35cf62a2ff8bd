"""Judges over HTTP (API.md `/api/v1/judges/`). Thin: parse, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.api.errors import Conflict
from router_ops.applications.access import request_application
from router_ops.judging import selectors, services
from router_ops.judging import serializers as s
from router_ops.shadow.views import ReadOrAdmin, _errors, _valid


class JudgeListView(APIView):
    permission_classes = [ReadOrAdmin]

    @extend_schema(operation_id="judges_list", responses={200: s.JudgeOut(many=True), **_errors(401, 403)})
    def get(self, request):
        return Response(s.JudgeOut(selectors.judges_list(application=request_application(request)), many=True).data)

    @extend_schema(
        operation_id="judges_create", request=s.JudgeIn, responses={201: s.JudgeOut, **_errors(400, 401, 403)}
    )
    def post(self, request):
        judge = services.judge_create(application=request_application(request), **_valid(s.JudgeIn, request))
        return Response(s.JudgeOut(judge).data, status=201)


class JudgeDetailView(APIView):
    permission_classes = [ReadOrAdmin]

    def _judge(self, request, pk):
        return selectors.judge_get(application=request_application(request), pk=int(pk))

    @extend_schema(operation_id="judges_retrieve", responses={200: s.JudgeOut, **_errors(401, 403, 404)})
    def get(self, request, pk):
        return Response(s.JudgeOut(self._judge(request, pk)).data)

    @extend_schema(
        operation_id="judges_update", request=s.JudgeIn, responses={200: s.JudgeOut, **_errors(400, 401, 403, 404)}
    )
    def put(self, request, pk):
        judge = services.judge_update(judge=self._judge(request, pk), **_valid(s.JudgeIn, request))
        return Response(s.JudgeOut(judge).data)

    @extend_schema(
        operation_id="judges_partial_update",
        request=s.JudgeIn,
        responses={200: s.JudgeOut, **_errors(400, 401, 403, 404)},
    )
    def patch(self, request, pk):
        judge = services.judge_update(judge=self._judge(request, pk), **_valid(s.JudgeIn, request, partial=True))
        return Response(s.JudgeOut(judge).data)

    @extend_schema(operation_id="judges_destroy", responses={204: None, **_errors(401, 403, 404, 409)})
    def delete(self, request, pk):
        try:
            services.judge_delete(judge=self._judge(request, pk))
        except services.JudgeInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=204)
