from django.urls import re_path

from router_ops.review.views import ReviewLabelView, ReviewQueueView

api_urlpatterns = [
    re_path(r"^api/v1/review/?$", ReviewQueueView.as_view(), name="review-queue"),
    re_path(r"^api/v1/review/(?P<item_id>[0-9]+)/label/?$", ReviewLabelView.as_view(), name="review-label"),
]
