"""Login throttling: a few failed log-ins per username and address, then "try later".

Counters live in the cache named by LOGIN_THROTTLE_CACHE (default "default").
With several web processes that cache must be shared (Redis): a per-process
local-memory cache would multiply the allowance by the number of processes.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.cache import caches

logger = logging.getLogger(__name__)

LOGIN_FAILURES_PER_USER = 5  # per username and client address
LOGIN_FAILURES_PER_ADDRESS = 50  # per client address, any username (password spraying)
LOGIN_WINDOW_S = 15 * 60


def _cache():
    return caches[getattr(settings, "LOGIN_THROTTLE_CACHE", "default")]


def _client_address(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(request, username: str) -> tuple[str, str]:
    address = _client_address(request)
    # Hashed: cache keys must be short and safe whatever the username contains.
    user_key = hashlib.sha256(f"{username.strip().lower()}|{address}".encode()).hexdigest()[:32]
    return f"login-fail:u:{user_key}", f"login-fail:a:{hashlib.sha256(address.encode()).hexdigest()[:32]}"


def login_throttled(request, username: str) -> bool:
    user_key, address_key = _keys(request, username)
    counts = _cache().get_many([user_key, address_key])
    return (
        counts.get(user_key, 0) >= LOGIN_FAILURES_PER_USER or counts.get(address_key, 0) >= LOGIN_FAILURES_PER_ADDRESS
    )


def login_failure_record(request, username: str) -> None:
    cache = _cache()
    for key in _keys(request, username):
        # add() starts a fixed window at the first failure; incr() keeps its expiry.
        if not cache.add(key, 1, LOGIN_WINDOW_S):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, LOGIN_WINDOW_S)


def login_failures_clear(request, username: str) -> None:
    _cache().delete(_keys(request, username)[0])


class ThrottledLoginView(auth_views.LoginView):
    """Django's LoginView, answering 429 after too many failures instead of checking the password."""

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")[:150]
        if login_throttled(request, username):
            # The username is logged (not the password); the address identifies the client.
            logger.warning("login throttled", extra={"username": username, "client": _client_address(request)})
            minutes = LOGIN_WINDOW_S // 60
            messages.error(request, f"Too many failed log-in attempts. Try again in {minutes} minutes.")
            response = self.render_to_response(self.get_context_data(form=self.get_form_class()(request)), status=429)
            response["Retry-After"] = str(LOGIN_WINDOW_S)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        login_failure_record(self.request, self.request.POST.get("username", "")[:150])
        return super().form_invalid(form)

    def form_valid(self, form):
        login_failures_clear(self.request, self.request.POST.get("username", "")[:150])
        return super().form_valid(form)
