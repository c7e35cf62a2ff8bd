"""API routes of this app, included by router_ops/urls.py at the root (paths start with ^api/v1/)."""

api_urlpatterns: list = []
