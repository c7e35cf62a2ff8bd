from __future__ import annotations

from django.db.models import QuerySet

from router_ops.applications.models import Application


def applications_for_user(user) -> QuerySet[Application]:
    if user.is_superuser:
        return Application.objects.all()
    return Application.objects.filter(memberships__user=user)
