"""Who is acting on a rollout, and what their role lets them do.

Services take an `Actor` and check it themselves, so the API, the admin and the
periodic task are held to the same rules (four-eyes is enforced here, server-side,
not by hiding a button).
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions

from router_ops.applications.authentication import KeyPrincipal
from router_ops.applications.models import ApiKey, Application, Membership

ACTION_REQUEST = "request"
ACTION_APPROVE = "approve"
ACTION_REJECT = "reject"
ACTION_ADVANCE = "advance"
ACTION_PAUSE = "pause"
ACTION_RESUME = "resume"
ACTION_ROLLBACK = "rollback"

OPERATOR_ACTIONS = frozenset({ACTION_REQUEST, ACTION_ADVANCE, ACTION_PAUSE, ACTION_RESUME, ACTION_ROLLBACK})
APPROVER_ACTIONS = frozenset({ACTION_APPROVE, ACTION_REJECT})

ROLE_ACTIONS = {
    Membership.ROLE_VIEWER: frozenset(),
    Membership.ROLE_OPERATOR: OPERATOR_ACTIONS,
    Membership.ROLE_APPROVER: APPROVER_ACTIONS,
    Membership.ROLE_ADMIN: OPERATOR_ACTIONS | APPROVER_ACTIONS,
}
# A machine may run the operator's side with an admin-scoped key; approving and
# rejecting are judgements, and must come from a person.
KEY_ACTIONS = OPERATOR_ACTIONS
# The periodic gate sweep advances passing auto stages and rolls back clear failures.
SYSTEM_ACTIONS = frozenset({ACTION_ADVANCE, ACTION_ROLLBACK, ACTION_PAUSE})


@dataclass(frozen=True)
class Actor:
    user: object | None = None  # a django.contrib.auth user
    api_key: ApiKey | None = None
    is_system: bool = False

    @classmethod
    def system(cls) -> Actor:
        return cls(is_system=True)

    @classmethod
    def from_request(cls, request) -> Actor:
        principal = request.user
        if isinstance(principal, KeyPrincipal):
            return cls(api_key=principal.api_key)
        return cls(user=principal)

    @property
    def is_person(self) -> bool:
        return self.user is not None

    @property
    def label(self) -> str:
        if self.is_system:
            return "system"
        if self.api_key is not None:
            return f"key:{self.api_key.prefix}"
        return self.user.get_username()

    @property
    def people(self) -> set[int]:
        """User ids this actor stands for: a key stands for the person who created it."""
        if self.user is not None:
            return {self.user.pk}
        if self.api_key is not None and self.api_key.created_by_id is not None:
            return {self.api_key.created_by_id}
        return set()

    def role(self, application: Application) -> str | None:
        if self.user is None:
            return None
        if self.user.is_superuser:
            return Membership.ROLE_ADMIN
        return Membership.objects.filter(user=self.user, application=application).values_list("role", flat=True).first()

    def allowed_actions(self, application: Application) -> frozenset[str]:
        if self.is_system:
            return SYSTEM_ACTIONS
        if self.api_key is not None:
            if self.api_key.application_id != application.id or not self.api_key.has_scope(ApiKey.SCOPE_ADMIN):
                return frozenset()
            return KEY_ACTIONS
        if not getattr(self.user, "is_authenticated", False):
            return frozenset()
        return ROLE_ACTIONS.get(self.role(application), frozenset())

    def require(self, application: Application, action: str) -> None:
        if action in self.allowed_actions(application):
            return
        if self.api_key is not None and action in APPROVER_ACTIONS:
            raise exceptions.PermissionDenied(
                f"An API key cannot {action} a rollout: that must come from a person with the approver role.",
                code="person_required",
            )
        if self.api_key is not None:
            raise exceptions.PermissionDenied(
                f"This API key cannot {action} rollouts: it needs the 'admin' scope.", code="permission_denied"
            )
        role = self.role(application) or "no role"
        raise exceptions.PermissionDenied(
            f"Your role in {application.slug} ({role}) does not allow you to {action} a rollout.",
            code="permission_denied",
        )
