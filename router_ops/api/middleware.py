"""Refuse NUL characters in the path or query string with a 400 (they would reach SQL as text)."""

from __future__ import annotations

from urllib.parse import unquote

from router_ops.api.errors import json_error


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.META.get("QUERY_STRING", "") + request.path
        if "\x00" in unquote(raw) or "\x00" in request.path_info:
            return json_error(400, "invalid", "NUL characters are not allowed in the URL.")
        return self.get_response(request)
