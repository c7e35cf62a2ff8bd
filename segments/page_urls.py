"""Pages of discovery and eval sets. Include at the site root:
path("", include("segments.page_urls")) — the paths start with apps/<slug>/."""

from django.urls import path

from segments import pages

app_name = "segments_pages"
urlpatterns = [
    path("apps/<slug:slug>/discoveries/", pages.discoveries, name="discoveries"),
    path("apps/<slug:slug>/discoveries/run/", pages.discoveries_run, name="discoveries_run"),
    path(
        "apps/<slug:slug>/discoveries/<int:pk>/make-segment/",
        pages.discovery_make_segment,
        name="discovery_make_segment",
    ),
    path("apps/<slug:slug>/eval-sets/", pages.eval_sets, name="eval_sets"),
    path("apps/<slug:slug>/eval-sets/<int:pk>/", pages.eval_set_detail, name="eval_set"),
]
