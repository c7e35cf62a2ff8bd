"""CSRF on every form: a POST without the token is refused; with it, accepted."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("root", password="correct horse battery")


def _csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def test_every_page_form_carries_a_token(staff):
    client = _csrf_client()
    assert TOKEN.search(client.get("/accounts/login/").content)
    client.force_login(staff)
    home = client.get("/")
    assert home.status_code == 200
    forms = re.findall(rb"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", home.content, re.S | re.I)
    assert forms, "the home page has its log-out form"
    for form in forms:
        assert b"csrfmiddlewaretoken" in form


def test_login_without_a_token_is_refused(staff):
    response = _csrf_client().post("/accounts/login/", {"username": "root", "password": "correct horse battery"})
    assert response.status_code == 403


def test_login_with_the_token_is_accepted(staff):
    client = _csrf_client()
    token = TOKEN.search(client.get("/accounts/login/").content).group(1).decode()
    response = client.post(
        "/accounts/login/", {"username": "root", "password": "correct horse battery", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "path",
    ["/accounts/logout/", "/admin/logout/", "/admin/auth/user/add/", "/admin/applications/application/add/"],
)
def test_session_posts_without_a_token_are_refused(staff, path):
    client = _csrf_client()
    client.force_login(staff)
    response = client.post(path, {})
    assert response.status_code == 403
    assert b"CSRF" in response.content


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/api/v1/sampling-policy/?application=support-bot", {"base_rate": 0.5}),
        ("post", "/api/v1/segments/?application=support-bot", {"slug": "x", "name": "x", "rule": "tier = 'cheap'"}),
        ("post", "/api/v1/rollouts/?application=support-bot", {"candidate": "v13", "reason": "r"}),
        ("post", "/api/v1/decisions?application=support-bot", {"decision_id": "d"}),
    ],
)
def test_session_authenticated_api_writes_need_the_token(owner, staff, method, path, body):
    """The browsable API uses the session: DRF's SessionAuthentication enforces CSRF."""
    client = _csrf_client()
    client.force_login(staff)
    response = getattr(client, method)(path, body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_api_key_requests_need_no_csrf_token(owner):
    client = _csrf_client()
    response = client.post(
        "/api/v1/feedback",
        {"feedback": []},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {owner.keys['ingest']}",
    )
    assert response.status_code != 403


def _page_paths() -> list[str]:
    """Every non-API, non-admin URL pattern, with sample values for its parameters."""
    from django.urls import URLPattern, URLResolver, get_resolver

    samples = {"slug": "support-bot", "int": "1", "str": "x", "path": "x"}
    paths = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if not route.startswith("admin"):
                    walk(pattern.url_patterns, prefix + route)
            elif isinstance(pattern, URLPattern) and not route.startswith("^"):
                full = prefix + route
                for converter, value in samples.items():
                    full = re.sub(rf"<{converter}:\w+>", value, full)
                full = re.sub(r"<\w+>", "x", full)
                paths.append("/" + full)

    walk(get_resolver().url_patterns)
    return sorted(set(paths))


def test_no_page_accepts_a_post_without_a_token(owner, staff):
    """Every server-rendered view (dashboard, review, segments, accounts) is CSRF-protected."""
    client = _csrf_client()
    client.force_login(staff)
    accepted = []
    for path in _page_paths():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        response = client.post(path, {})
        if response.status_code != 403:
            accepted.append((path, response.status_code))
    assert accepted == []
