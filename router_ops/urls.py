from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from router_ops.api import ops
from router_ops.api.errors import json_error
from router_ops.api.metrics import metrics
from router_ops.ingest.views import DecisionIngestView, FeedbackIngestView
from router_ops.judging.urls import api_urlpatterns as judging_api
from router_ops.review.urls import api_urlpatterns as review_api
from router_ops.rollouts.urls import api_urlpatterns as rollouts_api
from router_ops.rollups.views import SegmentStatsView
from router_ops.security import ThrottledLoginView
from router_ops.shadow.urls import api_urlpatterns as shadow_api
from segments.urls import api_urlpatterns as segments_api


def api(route: str) -> str:
    """Every API path is served with and without a trailing slash (API.md)."""
    return rf"^api/v1/{route}/?$"


api_v1 = [
    re_path(api("decisions"), DecisionIngestView.as_view(), name="decisions"),
    re_path(api("feedback"), FeedbackIngestView.as_view(), name="feedback"),
    # Before the segments app's routes, whose /segments/<slug> would otherwise match "stats".
    re_path(api("segments/stats"), SegmentStatsView.as_view(), name="segment-stats"),
    re_path(api("schema"), SpectacularAPIView.as_view(), name="schema"),
    re_path(api("docs"), SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    *api_v1,
    *segments_api,
    *shadow_api,
    *judging_api,
    *rollouts_api,
    *review_api,
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("router_ops.review.page_urls")),
    path("", include("segments.page_urls")),
    path("", include("router_ops.rollouts.page_urls")),
    path("", include("router_ops.dashboard.urls")),
]


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(404, "not_found", f"No endpoint at {request.path}.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_error(500, "server_error", "An unexpected error occurred; it has been logged.")
    from django.views.defaults import server_error

    return server_error(request)
