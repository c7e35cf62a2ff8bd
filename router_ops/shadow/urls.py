"""API routes of this app, included by router_ops/urls.py at the root (paths start with ^api/v1/)."""

from django.urls import re_path

from router_ops.shadow import views

api_urlpatterns: list = [
    re_path(r"^api/v1/sampling-policy/?$", views.SamplingPolicyView.as_view(), name="sampling-policy"),
    re_path(r"^api/v1/models/?$", views.ModelListView.as_view(), name="models"),
    re_path(r"^api/v1/models/(?P<pk>[0-9]+)/?$", views.ModelDetailView.as_view(), name="model-detail"),
]
