"""Sampling policy and model endpoints over HTTP (API.md). Thin: parse, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.api.errors import Conflict
from router_ops.applications.access import CanAdmin, CanRead, request_application
from router_ops.shadow import selectors, services
from router_ops.shadow import serializers as s


def _errors(*codes: int) -> dict:
    return {code: OpenApiResponse(description='Error: {"error": {"code", "message", "details"}}') for code in codes}


def _valid(serializer_class, request, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ReadOrAdmin(permissions.BasePermission):
    """GET with the read scope; writes with the admin scope."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return CanRead().has_permission(request, view)
        return CanAdmin().has_permission(request, view)


class SamplingPolicyView(APIView):
    permission_classes = [ReadOrAdmin]

    @extend_schema(operation_id="sampling_policy_get", responses={200: s.SamplingPolicyOut, **_errors(401, 403)})
    def get(self, request):
        policy = services.sampling_policy_get(application=request_application(request))
        return Response(s.SamplingPolicyOut(policy).data)

    @extend_schema(
        operation_id="sampling_policy_update",
        request=s.SamplingPolicyIn,
        responses={200: s.SamplingPolicyOut, **_errors(400, 401, 403)},
    )
    def put(self, request):
        application = request_application(request)
        policy = services.sampling_policy_update(application=application, **_valid(s.SamplingPolicyIn, request))
        return Response(s.SamplingPolicyOut(policy).data)


class ModelListView(APIView):
    permission_classes = [CanAdmin]

    @extend_schema(operation_id="models_list", responses={200: s.ModelEndpointOut(many=True), **_errors(401, 403)})
    def get(self, request):
        endpoints = selectors.model_endpoints_list(application=request_application(request))
        return Response(s.ModelEndpointOut(endpoints, many=True).data)

    @extend_schema(
        operation_id="models_create",
        request=s.ModelEndpointIn,
        responses={201: s.ModelEndpointOut, **_errors(400, 401, 403)},
    )
    def post(self, request):
        application = request_application(request)
        endpoint = services.model_endpoint_create(application=application, **_valid(s.ModelEndpointIn, request))
        return Response(s.ModelEndpointOut(endpoint).data, status=201)


class ModelDetailView(APIView):
    permission_classes = [CanAdmin]

    def _endpoint(self, request, pk):
        return selectors.model_endpoint_get(application=request_application(request), pk=int(pk))

    @extend_schema(operation_id="models_retrieve", responses={200: s.ModelEndpointOut, **_errors(401, 403, 404)})
    def get(self, request, pk):
        return Response(s.ModelEndpointOut(self._endpoint(request, pk)).data)

    @extend_schema(
        operation_id="models_update",
        request=s.ModelEndpointIn,
        responses={200: s.ModelEndpointOut, **_errors(400, 401, 403, 404)},
    )
    def put(self, request, pk):
        endpoint = self._endpoint(request, pk)
        endpoint = services.model_endpoint_update(endpoint=endpoint, **_valid(s.ModelEndpointIn, request))
        return Response(s.ModelEndpointOut(endpoint).data)

    @extend_schema(
        operation_id="models_partial_update",
        request=s.ModelEndpointIn,
        responses={200: s.ModelEndpointOut, **_errors(400, 401, 403, 404)},
    )
    def patch(self, request, pk):
        endpoint = self._endpoint(request, pk)
        endpoint = services.model_endpoint_update(endpoint=endpoint, **_valid(s.ModelEndpointIn, request, partial=True))
        return Response(s.ModelEndpointOut(endpoint).data)

    @extend_schema(operation_id="models_destroy", responses={204: None, **_errors(401, 403, 404, 409)})
    def delete(self, request, pk):
        try:
            services.model_endpoint_delete(endpoint=self._endpoint(request, pk))
        except services.ModelInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=204)
