from django.urls import path

from router_ops.review import pages

app_name = "review"
urlpatterns = [
    path("apps/<slug:slug>/review/", pages.queue, name="queue"),
    path("apps/<slug:slug>/review/fill/", pages.fill, name="fill"),
    path("apps/<slug:slug>/review/<int:item_id>/label/", pages.label, name="label"),
    path("apps/<slug:slug>/review/agreement/", pages.agreement, name="agreement"),
]
