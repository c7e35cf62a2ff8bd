"""Rollout pages, included at the site root by router_ops/urls.py:

path("", include("router_ops.rollouts.page_urls")),
"""

from django.urls import path

from router_ops.rollouts import pages

app_name = "rollouts"
urlpatterns = [
    path("apps/<slug:slug>/rollouts/", pages.rollouts_list, name="list"),
    path("apps/<slug:slug>/rollouts/<int:pk>/", pages.rollout_detail, name="detail"),
    path(
        "apps/<slug:slug>/rollouts/<int:pk>/<str:action>/",
        pages.rollout_action,
        name="action",
    ),
]
