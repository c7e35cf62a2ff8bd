"""Router versions, rollouts and routing config over HTTP (API.md). Thin: parse, call one
service or selector, render. Rollout actions are authorised by the services (roles,
four-eyes), so the API and the admin enforce the same rules."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.applications.access import CanAdmin, CanRead, KeyRateThrottle, request_application
from router_ops.rollouts import gates, selectors, services
from router_ops.rollouts import serializers as s
from router_ops.rollouts.actors import Actor


def _errors(*codes: int) -> dict:
    return {code: OpenApiResponse(description='Error: {"error": {"code", "message", "details"}}') for code in codes}


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ReadOrAdmin(permissions.BasePermission):
    """GET with the read scope; writes with the admin scope (or an admin's role)."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return CanRead().has_permission(request, view)
        return CanAdmin().has_permission(request, view)


class ReadOrAuthenticated(permissions.BasePermission):
    """GET with the read scope; writes by anyone of the application, judged by the service."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return CanRead().has_permission(request, view)
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        request_application(request)  # a key naming another application → 403
        return True


# ---------------------------------------------------------------- router versions


class RouterVersionListView(APIView):
    permission_classes = [ReadOrAdmin]

    @extend_schema(
        operation_id="router_versions_list",
        parameters=[OpenApiParameter("status", str, description="Only versions in this status")],
        responses={200: s.RouterVersionOut(many=True), **_errors(401, 403)},
    )
    def get(self, request):
        application = request_application(request)
        versions = selectors.router_versions_list(application=application, status=request.query_params.get("status"))
        return Response(s.RouterVersionOut(versions, many=True).data)

    @extend_schema(
        operation_id="router_versions_create",
        request=s.RouterVersionCreateIn,
        responses={201: s.RouterVersionOut, **_errors(400, 401, 403, 409)},
    )
    def post(self, request):
        application = request_application(request)
        data = _valid(s.RouterVersionCreateIn, request)
        version = services.router_version_create(application=application, actor=Actor.from_request(request), **data)
        return Response(s.RouterVersionOut(version).data, status=201)


class RouterVersionDetailView(APIView):
    permission_classes = [ReadOrAdmin]

    def _version(self, request, pk):
        return selectors.router_version_get(application=request_application(request), pk=int(pk))

    @extend_schema(
        operation_id="router_versions_retrieve", responses={200: s.RouterVersionOut, **_errors(401, 403, 404)}
    )
    def get(self, request, pk):
        return Response(s.RouterVersionOut(self._version(request, pk)).data)

    @extend_schema(
        operation_id="router_versions_update",
        request=s.RouterVersionUpdateIn,
        responses={200: s.RouterVersionOut, **_errors(400, 401, 403, 404, 409)},
    )
    def patch(self, request, pk):
        version = self._version(request, pk)
        data = _valid(s.RouterVersionUpdateIn, request)
        version = services.router_version_update(version=version, actor=Actor.from_request(request), **data)
        return Response(s.RouterVersionOut(version).data)

    @extend_schema(
        operation_id="router_versions_replace",
        request=s.RouterVersionUpdateIn,
        responses={200: s.RouterVersionOut, **_errors(400, 401, 403, 404, 409)},
    )
    def put(self, request, pk):
        return self.patch(request, pk)

    @extend_schema(operation_id="router_versions_destroy", responses={204: None, **_errors(401, 403, 404, 409)})
    def delete(self, request, pk):
        services.router_version_delete(version=self._version(request, pk), actor=Actor.from_request(request))
        return Response(status=204)


class RouterVersionActivateView(APIView):
    """Activate an application's *first* version; afterwards only rollouts activate."""

    permission_classes = [CanAdmin]

    @extend_schema(
        operation_id="router_versions_activate",
        request=s.ReasonIn,
        responses={200: s.RouterVersionOut, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, pk):
        version = selectors.router_version_get(application=request_application(request), pk=int(pk))
        data = _valid(s.ReasonIn, request)
        version = services.router_version_activate_initial(
            version=version, actor=Actor.from_request(request), reason=data["reason"]
        )
        return Response(s.RouterVersionOut(version).data)


# ---------------------------------------------------------------- rollouts


def _detail(rollout) -> dict:
    context = {
        "evidence": gates.rollout_gate_evidence(rollout),
        "events": list(selectors.rollout_events(rollout=rollout)),
    }
    return s.RolloutDetailOut(rollout, context=context).data


class RolloutListView(APIView):
    permission_classes = [ReadOrAuthenticated]

    @extend_schema(
        operation_id="rollouts_list",
        parameters=[OpenApiParameter("status", str, description="Only rollouts in this status")],
        responses={200: s.RolloutOut(many=True), **_errors(401, 403)},
    )
    def get(self, request):
        application = request_application(request)
        rollouts = selectors.rollouts_list(application=application, status=request.query_params.get("status"))
        rollouts = rollouts.select_related("created_by", "created_by_key")
        return Response(s.RolloutOut(rollouts, many=True).data)

    @extend_schema(
        operation_id="rollouts_create",
        summary="Request a rollout of a candidate against the active version",
        request=s.RolloutCreateIn,
        responses={201: s.RolloutDetailOut, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request):
        application = request_application(request)
        data = _valid(s.RolloutCreateIn, request)
        candidate = selectors.router_version_by_name(application=application, name=data.pop("candidate"))
        if candidate is None:
            raise exceptions.ValidationError({"candidate": ["No router version of that name in this application."]})
        rollout = services.rollout_request(
            application=application, actor=Actor.from_request(request), candidate=candidate, **data
        )
        rollout = selectors.rollout_get(application=application, pk=rollout.pk)
        return Response(_detail(rollout), status=201)


class RolloutDetailView(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="rollouts_retrieve", responses={200: s.RolloutDetailOut, **_errors(401, 403, 404)})
    def get(self, request, pk):
        rollout = selectors.rollout_get(application=request_application(request), pk=int(pk))
        return Response(_detail(rollout))


class RolloutActionView(APIView):
    """POST …/rollouts/{id}/<action>/: one service call, then the rollout as it now is."""

    permission_classes = [ReadOrAuthenticated]
    input_serializer: type = s.ReasonIn

    def call(self, rollout, actor, data):
        raise NotImplementedError

    def post(self, request, pk):
        application = request_application(request)
        rollout = selectors.rollout_get(application=application, pk=int(pk))
        data = _valid(self.input_serializer, request)
        self.call(rollout, Actor.from_request(request), data)
        return Response(_detail(selectors.rollout_get(application=application, pk=rollout.pk)))


def _action_schema(name: str, serializer, summary: str):
    return extend_schema(
        operation_id=f"rollouts_{name}",
        summary=summary,
        request=serializer,
        responses={200: s.RolloutDetailOut, **_errors(400, 401, 403, 404, 409)},
    )


class RolloutApproveView(RolloutActionView):
    input_serializer = s.ApproveIn

    @_action_schema("approve", s.ApproveIn, "Approve the next stage (a person other than the requester)")
    def post(self, request, pk):
        return super().post(request, pk)

    def call(self, rollout, actor, data):
        services.rollout_approve(rollout=rollout, actor=actor, **data)


class RolloutRejectView(RolloutActionView):
    input_serializer = s.EndIn

    @_action_schema("reject", s.EndIn, "Reject the rollout (an approver), with a reason")
    def post(self, request, pk):
        return super().post(request, pk)

    def call(self, rollout, actor, data):
        services.rollout_reject(rollout=rollout, actor=actor, **data)


class RolloutAdvanceView(RolloutActionView):
    input_serializer = s.AdvanceIn

    @_action_schema(
        "advance", s.AdvanceIn, "Advance to the next stage when its requirements hold (409 lists what is unmet)"
    )
    def post(self, request, pk):
        return super().post(request, pk)

    def call(self, rollout, actor, data):
        services.rollout_advance(rollout=rollout, actor=actor, **data)


class RolloutPauseView(RolloutActionView):
    @_action_schema("pause", s.ReasonIn, "Pause: keep the current weights, advance nothing")
    def post(self, request, pk):
        return super().post(request, pk)

    def call(self, rollout, actor, data):
        services.rollout_pause(rollout=rollout, actor=actor, **data)


class RolloutResumeView(RolloutActionView):
    @_action_schema("resume", s.ReasonIn, "Resume a paused rollout")
    def post(self, request, pk):
        return super().post(request, pk)

    def call(self, rollout, actor, data):
        services.rollout_resume(rollout=rollout, actor=actor, **data)


class RolloutRollbackView(RolloutActionView):
    input_serializer = s.EndIn

    @_action_schema("rollback", s.EndIn, "Roll back: stop serving the candidate at once")
    def post(self, request, pk):
        return super().post(request, pk)

    def call(self, rollout, actor, data):
        services.rollout_rollback(rollout=rollout, actor=actor, **data)


# ---------------------------------------------------------------- routing config


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate.strip('"') == etag:
            return True
    return False


class RoutingConfigView(APIView):
    permission_classes = [CanRead]
    throttle_classes = [KeyRateThrottle]
    throttle_scope = "read"

    @extend_schema(
        operation_id="routing_config",
        summary="Versions, weights and salt for local sticky assignment (honours If-None-Match)",
        responses={200: s.RoutingConfigOut, 304: OpenApiResponse(description="Not modified"), **_errors(401, 403, 404)},
    )
    def get(self, request):
        config = selectors.routing_config(application=request_application(request))
        headers = {"ETag": f'"{config["etag"]}"', "Cache-Control": "private, no-cache"}
        if _etag_matches(request.headers.get("If-None-Match", ""), config["etag"]):
            return Response(status=304, headers=headers)
        return Response(config, headers=headers)


class RoutingAssignView(APIView):
    permission_classes = [CanRead]
    throttle_classes = [KeyRateThrottle]
    throttle_scope = "read"

    @extend_schema(
        operation_id="routing_config_assign",
        summary="The server's answer to the assignment a client computes locally",
        parameters=[OpenApiParameter("unit_id", str, required=True)],
        responses={200: s.RoutingAssignOut, **_errors(400, 401, 403, 404)},
    )
    def get(self, request):
        application = request_application(request)
        unit_id = request.query_params.get("unit_id", "")
        if not unit_id:
            raise exceptions.ValidationError({"unit_id": ["This query parameter is required."]})
        if len(unit_id) > 128:
            raise exceptions.ValidationError({"unit_id": ["At most 128 characters."]})
        return Response(selectors.routing_assign(application=application, unit_id=unit_id))
