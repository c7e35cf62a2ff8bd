"""Who may do what, in one place: API-key scopes for machines, membership roles for people."""

from __future__ import annotations

from django.db import connection
from rest_framework import exceptions, permissions, throttling

from router_ops.applications.authentication import KeyPrincipal
from router_ops.applications.models import ApiKey, Application, Membership

# The scopes a person's role grants (session users of the dashboard and browsable API).
ROLE_SCOPES = {
    Membership.ROLE_VIEWER: {ApiKey.SCOPE_READ},
    Membership.ROLE_OPERATOR: {ApiKey.SCOPE_READ, ApiKey.SCOPE_INGEST},
    Membership.ROLE_APPROVER: {ApiKey.SCOPE_READ},
    Membership.ROLE_ADMIN: {ApiKey.SCOPE_READ, ApiKey.SCOPE_INGEST, ApiKey.SCOPE_ADMIN},
}


def request_application(request) -> Application:
    """The application a request acts on.

    A key acts on its own application; naming another one (`?application=<slug>`)
    is refused with 403. A person names it with `?application=`, or has exactly
    one membership.
    """
    cached = getattr(request, "_routerops_application", None)
    if cached is not None:
        return cached
    named = request.query_params.get("application") if hasattr(request, "query_params") else None
    user = request.user
    if isinstance(user, KeyPrincipal):
        if named and named != user.application.slug:
            raise exceptions.PermissionDenied("This API key belongs to another application.")
        application = user.application
    else:
        if named:
            application = Application.objects.filter(slug=named).first()
            if application is None:
                raise exceptions.NotFound(f"No application {named!r}.")
        else:
            candidates = list(Application.objects.filter(memberships__user=user)[:2]) if not user.is_superuser else []
            if user.is_superuser:
                candidates = list(Application.objects.all()[:2])
            if len(candidates) != 1:
                raise exceptions.ValidationError({"application": ["Name the application: ?application=<slug>."]})
            application = candidates[0]
    request._routerops_application = application
    return application


def user_scopes(user, application: Application) -> set[str]:
    if isinstance(user, KeyPrincipal):
        return set(user.api_key.scopes) if user.application.id == application.id else set()
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return set(ApiKey.SCOPES)
    role = Membership.objects.filter(user=user, application=application).values_list("role", flat=True).first()
    return ROLE_SCOPES.get(role, set())


class ScopePermission(permissions.BasePermission):
    scope = ""

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        application = request_application(request)
        if self.scope not in user_scopes(request.user, application):
            if isinstance(request.user, KeyPrincipal):
                raise exceptions.PermissionDenied(f"This API key lacks the '{self.scope}' scope.")
            raise exceptions.PermissionDenied(f"Your role in {application.slug} does not allow '{self.scope}'.")
        return True


class CanIngest(ScopePermission):
    scope = ApiKey.SCOPE_INGEST


class CanRead(ScopePermission):
    scope = ApiKey.SCOPE_READ


class CanAdmin(ScopePermission):
    scope = ApiKey.SCOPE_ADMIN


# One statement counts a request in its key's current window, or refuses it (no row back)
# when the window is full; refused requests are not counted.
_COUNT = """
INSERT INTO applications_ratewindow (key, window_start, count) VALUES (%(key)s, %(window)s, 1)
ON CONFLICT (key, window_start) DO UPDATE SET count = applications_ratewindow.count + 1
WHERE applications_ratewindow.count < %(limit)s
RETURNING count
"""
_FORGET = "DELETE FROM applications_ratewindow WHERE key = %(key)s AND window_start < %(window)s"


class KeyRateThrottle(throttling.SimpleRateThrottle):
    """Rate per API key (or per person), named by the view's `throttle_scope`.

    A fixed window of the rate's duration (600/min: at most 600 requests from one key in
    each clock minute), counted in PostgreSQL so that the limit holds across all web
    processes and machines, and without Redis. The rate is per key: each key of an
    application has its own.
    """

    def __init__(self):
        pass  # the rate depends on the view; resolved in allow_request

    def allow_request(self, request, view):
        self.scope = getattr(view, "throttle_scope", None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.num_requests is None:
            return True
        now = self.timer()
        window = int(now // self.duration) * self.duration
        params = {"key": self.get_cache_key(request, view), "window": window, "limit": self.num_requests}
        with connection.cursor() as cursor:
            cursor.execute(_COUNT, params)
            row = cursor.fetchone()
            if row is not None and row[0] == 1:  # a new window: the key's older ones are done
                cursor.execute(_FORGET, params)
        self.wait_s = window + self.duration - now
        return row is not None

    def wait(self):
        return self.wait_s

    def get_cache_key(self, request, view):
        user = request.user
        ident = user.api_key.prefix if isinstance(user, KeyPrincipal) else (user.pk or self.get_ident(request))
        return f"throttle_{self.scope}_{ident}"
