"""API routes of the segments app, included by router_ops/urls.py under /api/v1/.

Every path is served with and without a trailing slash (API.md)."""

from django.urls import re_path

from segments import views


def api(route: str) -> str:
    return rf"^api/v1/{route}/?$"


api_urlpatterns: list = [
    re_path(api("segments"), views.SegmentListView.as_view(), name="segments"),
    re_path(api(r"segments/(?P<pk>[0-9]{1,18})"), views.SegmentDetailView.as_view(), name="segment"),
    re_path(
        api(r"segments/(?P<pk>[0-9]{1,18})/backfill"), views.SegmentBackfillView.as_view(), name="segment-backfill"
    ),
    re_path(api("dimensions"), views.DimensionListView.as_view(), name="dimensions"),
    re_path(api("dimensions/slices"), views.DimensionSlicesView.as_view(), name="dimension-slices"),
    re_path(api(r"dimensions/(?P<pk>[0-9]{1,18})"), views.DimensionDetailView.as_view(), name="dimension"),
    # "run" before the numeric detail route (the id pattern is digits only, so the order is belt and braces).
    re_path(api("discoveries"), views.DiscoveryListView.as_view(), name="discoveries"),
    re_path(api("discoveries/run"), views.DiscoveryRunView.as_view(), name="discovery-run"),
    re_path(api(r"discoveries/(?P<pk>[0-9]{1,18})"), views.DiscoveryDetailView.as_view(), name="discovery"),
    re_path(
        api(r"discoveries/(?P<pk>[0-9]{1,18})/promote"), views.DiscoveryPromoteView.as_view(), name="discovery-promote"
    ),
    re_path(api("eval-sets"), views.EvalSetListView.as_view(), name="eval-sets"),
    re_path(api(r"eval-sets/(?P<pk>[0-9]{1,18})"), views.EvalSetDetailView.as_view(), name="eval-set"),
    re_path(api(r"eval-sets/(?P<pk>[0-9]{1,18})/compare"), views.EvalSetCompareView.as_view(), name="eval-set-compare"),
]
