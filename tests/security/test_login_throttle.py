"""Login throttling: N failures per username and address, then 429 without checking the password."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from router_ops.security import LOGIN_FAILURES_PER_ADDRESS, LOGIN_FAILURES_PER_USER

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="correct horse battery")


def _login(client, username="alice", password="wrong", address="10.0.0.1"):  # noqa: S107
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_good_login_works(client, alice):
    response = _login(client, password="correct horse battery")
    assert response.status_code == 302


def test_it_answers_429_after_too_many_failures_even_with_the_right_password(client, alice):
    for _ in range(LOGIN_FAILURES_PER_USER):
        assert _login(client).status_code == 200  # the form again, with an error
    response = _login(client, password="correct horse battery")
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert b"Too many failed log-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_the_username_is_normalised(client, alice):
    for _ in range(LOGIN_FAILURES_PER_USER):
        _login(client, username="Alice ")
    assert _login(client, username="alice").status_code == 429


def test_another_address_is_not_throttled_for_the_same_username(client, alice):
    for _ in range(LOGIN_FAILURES_PER_USER):
        _login(client, address="10.0.0.1")
    assert _login(client, password="correct horse battery", address="10.0.0.2").status_code == 302


def test_a_success_resets_the_count(client, alice):
    for _ in range(LOGIN_FAILURES_PER_USER - 1):
        _login(client)
    assert _login(client, password="correct horse battery").status_code == 302
    client.logout()
    for _ in range(LOGIN_FAILURES_PER_USER - 1):
        assert _login(client).status_code == 200


def test_password_spraying_from_one_address_is_throttled(client, alice):
    for n in range(LOGIN_FAILURES_PER_ADDRESS):
        _login(client, username=f"user{n}")
    assert _login(client, password="correct horse battery").status_code == 429


def test_the_login_page_still_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
