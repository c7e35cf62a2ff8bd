import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_redirects_anonymous_users_to_login(page, live_server):
    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/accounts/login/")


def test_it_logs_in_and_explains_the_first_step(logged_in, live_server, screenshot):
    page = logged_in()
    assert page.url == f"{live_server.url}/"
    # No application yet: the page says what to do next.
    assert "create_application" in page.inner_text("main")
    screenshot("home-empty")


def test_it_refuses_a_wrong_password(page, live_server, django_user_model):
    django_user_model.objects.create_user(username="viewer", password="right password 123")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "didn't match" in page.inner_text("main")
