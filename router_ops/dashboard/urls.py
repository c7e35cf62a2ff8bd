from django.urls import path

from router_ops.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("apps/<slug:slug>/", views.overview, name="overview"),
    path("apps/<slug:slug>/segments/", views.segments, name="segments"),
    path("apps/<slug:slug>/segments/<slug:segment_slug>/", views.segment_detail, name="segment"),
    path("apps/<slug:slug>/pairs/<int:sample_id>/", views.pair_detail, name="pair"),
    path("apps/<slug:slug>/compare/", views.compare, name="compare"),
    path("apps/<slug:slug>/alerts/", views.alerts, name="alerts"),
]
