"""URL conf of the naive baseline: the same path as the fast one, served by bench.naive."""

from django.urls import path, re_path

from bench.naive import NaiveDecisionCreateView
from router_ops.api import ops

urlpatterns = [
    re_path(r"^api/v1/decisions/?$", NaiveDecisionCreateView.as_view(), name="decisions"),
    path("healthz", ops.healthz, name="healthz"),
]
