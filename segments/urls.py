"""API routes of the segments app, included by router_ops/urls.py under /api/v1/.

Every path is served with and without a trailing slash (API.md)."""

from django.urls import re_path

from segments import views


def api(route: str) -> str:
    return rf"^api/v1/{route}/?$"


api_urlpatterns: list = [
    re_path(api("segments"), views.SegmentListView.as_view(), name="segments"),
    re_path(api(r"segments/(?P<pk>[0-9]{1,18})"), views.SegmentDetailView.as_view(), name="segment"),
    re_path(api(r"segments/(?P<pk>[0-9]{1,18})/backfill"), views.SegmentBackfillView.as_view(), name="segment-backfill"),
    re_path(api("dimensions"), views.DimensionListView.as_view(), name="dimensions"),
    re_path(api("dimensions/slices"), views.DimensionSlicesView.as_view(), name="dimension-slices"),
    re_path(api(r"dimensions/(?P<pk>[0-9]{1,18})"), views.DimensionDetailView.as_view(), name="dimension"),
]
