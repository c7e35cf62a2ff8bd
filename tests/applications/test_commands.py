"""create_application and create_api_key (API.md, "Command line")."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from router_ops.applications.models import ApiKey, Application
from router_ops.ingest.models import Decision
from tests.ingest.payloads import decision


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_create_application_is_idempotent():
    assert run("create_application", "acme-bot", "--name", "Acme bot") == ("created: acme-bot\n", "")
    salt = Application.objects.get(slug="acme-bot").salt
    assert run("create_application", "acme-bot", "--name", "Renamed") == ("exists: acme-bot\n", "")
    app = Application.objects.get()
    # The existing application is left as it is: same name, same salt (sticky assignments survive).
    assert (app.slug, app.name, app.salt) == ("acme-bot", "Acme bot", salt)


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["Acme Bot", "acme/bot", "acme.bot", "x" * 65])
def test_create_application_refuses_a_bad_slug(slug):
    with pytest.raises(CommandError):
        run("create_application", slug)
    assert Application.objects.count() == 0


@pytest.mark.django_db
def test_create_api_key_prints_the_key_alone_on_the_last_line():
    run("create_application", "acme-bot")
    out, err = run("create_api_key", "acme-bot", "--scopes", "ingest,read", "--name", "router-1")
    lines = out.splitlines()
    assert len(lines) == 1
    key = lines[-1]
    api_key = ApiKey.objects.get()
    assert key.startswith(f"ro_{api_key.prefix}_")
    assert (api_key.name, api_key.scopes, api_key.application.slug) == ("router-1", ["ingest", "read"], "acme-bot")
    assert err == f"API key ro_{api_key.prefix}_… for acme-bot, scopes ingest,read. Shown once:\n"
    assert key not in err

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = client.post("/api/v1/decisions", decision(), format="json")
    assert response.status_code == 200
    assert Decision.objects.get().application_id == api_key.application_id


@pytest.mark.django_db
def test_create_api_key_defaults_to_the_ingest_scope():
    run("create_application", "acme-bot")
    run("create_api_key", "acme-bot")
    assert ApiKey.objects.get().scopes == ["ingest"]


@pytest.mark.django_db
@pytest.mark.parametrize("scopes", ["ingest,write", "root", "", " , "])
def test_create_api_key_refuses_bad_scopes(scopes):
    run("create_application", "acme-bot")
    with pytest.raises(CommandError, match="scopes must be a non-empty subset of ingest, read, admin"):
        run("create_api_key", "acme-bot", "--scopes", scopes)
    assert ApiKey.objects.count() == 0


@pytest.mark.django_db
def test_create_api_key_refuses_an_unknown_application():
    with pytest.raises(CommandError, match="No application 'nope'; create it with: manage.py create_application nope"):
        run("create_api_key", "nope")
    assert ApiKey.objects.count() == 0
