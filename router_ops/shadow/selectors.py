"""Reads of the shadow pipeline."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from rest_framework.exceptions import NotFound

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.shadow.models import ShadowSample


def model_endpoints_list(*, application: Application) -> QuerySet[ModelEndpoint]:
    return ModelEndpoint.objects.filter(application=application).order_by("tier", "name")


def model_endpoint_get(*, application: Application, pk: int) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.filter(application=application, pk=pk).first()
    if endpoint is None:
        raise NotFound(f"No model {pk} in this application.")
    return endpoint


def sample_status_counts(*, application: Application) -> dict[str, int]:
    """Samples by shadow status (pending, enqueued, running, done, failed)."""
    rows = ShadowSample.objects.filter(application=application).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}
