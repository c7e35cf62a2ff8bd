"""API routes of this app, included by router_ops/urls.py at the root (paths start with ^api/v1/)."""

from django.urls import re_path

from router_ops.judging import views

api_urlpatterns: list = [
    re_path(r"^api/v1/judges/?$", views.JudgeListView.as_view(), name="judges"),
    re_path(r"^api/v1/judges/(?P<pk>[0-9]+)/?$", views.JudgeDetailView.as_view(), name="judge-detail"),
]
