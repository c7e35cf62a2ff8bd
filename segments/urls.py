"""API routes of the segments app, included by router_ops/urls.py under /api/v1/."""

api_urlpatterns: list = []
