"""API keys (router_ops/applications/keys.py, services.py, authentication.py): hashed, shown once, revocable."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient

from router_ops.applications.keys import key_generate, key_hash, key_matches, key_prefix
from router_ops.applications.models import ApiKey
from router_ops.applications.services import api_key_create, api_key_revoke
from router_ops.ingest.models import Decision
from tests.ingest.payloads import decision, error

KEY_FORMAT = re.compile(r"ro_[0-9a-f]{8}_[A-Za-z0-9_-]{40}")


def raw_rows() -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM applications_apikey")
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_keys_have_the_documented_format():
    prefix, key = key_generate()
    assert KEY_FORMAT.fullmatch(key)
    assert key.startswith(f"ro_{prefix}_")
    assert key_prefix(key) == prefix


@pytest.mark.parametrize(
    "key", ["", "ro_", "ro_0123abcd", "ro_0123abcd_", "ro_0123abc_secret", "ro_0123abcde_secret", "xx_0123abcd_secret"]
)
def test_key_prefix_refuses_malformed_keys(key):
    assert key_prefix(key) is None


def test_the_stored_hash_is_an_hmac_of_the_key(owner):
    api_key, plaintext = api_key_create(application=owner.application, scopes=["read"], name="ci")
    expected = hmac.new(settings.API_KEY_PEPPER.encode(), plaintext.encode(), hashlib.sha256).hexdigest()
    assert api_key.key_hash == expected == key_hash(plaintext, settings.API_KEY_PEPPER)
    # Not a bare digest: without the pepper a stolen table is useless.
    assert api_key.key_hash != hashlib.sha256(plaintext.encode()).hexdigest()
    assert api_key.prefix == plaintext[3:11]
    assert key_matches(plaintext, api_key.key_hash, settings.API_KEY_PEPPER)
    assert not key_matches(plaintext + "x", api_key.key_hash, settings.API_KEY_PEPPER)
    assert not key_matches(plaintext, api_key.key_hash, settings.API_KEY_PEPPER + "other")


def test_no_column_holds_the_plaintext(owner):
    rows = raw_rows()
    assert len(rows) == 4 == len(owner.keys)
    by_prefix = {row["prefix"]: row for row in rows}
    for plaintext in owner.keys.values():
        secret = plaintext.split("_", 2)[2]
        row = by_prefix[plaintext[3:11]]  # the visible prefix is stored in clear
        for column, value in row.items():
            text = str(value)
            assert plaintext not in text, column
            assert secret not in text, column
        assert re.fullmatch(r"[0-9a-f]{64}", row["key_hash"])


def test_scopes_are_stored_in_canonical_order(owner):
    api_key, _ = api_key_create(application=owner.application, scopes=["admin", "ingest", "admin"])
    assert api_key.scopes == ["ingest", "admin"]


@pytest.mark.parametrize("scopes", [[], ["root"], ["ingest", "write"]])
def test_it_refuses_unknown_or_no_scopes(owner, scopes):
    with pytest.raises(ValueError, match="scopes must be a non-empty subset of ingest, read, admin"):
        api_key_create(application=owner.application, scopes=scopes)
    assert ApiKey.objects.count() == 4


@pytest.mark.parametrize("scopes", [[], ["root"]])
def test_the_database_refuses_unknown_or_no_scopes(owner, scopes):
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(application=owner.application, prefix="deadbeef", key_hash="0" * 64, scopes=scopes)


def test_a_new_key_authenticates(owner):
    _, plaintext = api_key_create(application=owner.application, scopes=["ingest"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    response = client.post("/api/v1/decisions", decision(), format="json")
    assert response.status_code == 200
    assert Decision.objects.get().application_id == owner.application.id


def test_a_revoked_key_is_refused_and_the_others_still_work(owner):
    api_key = ApiKey.objects.get(prefix=owner.keys["ingest"][3:11])
    api_key_revoke(api_key=api_key)
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert not api_key.is_active

    response = owner.client("ingest").post("/api/v1/decisions", decision(), format="json")
    assert response.status_code == 401
    assert response.json() == error("authentication_failed", "This API key has been revoked.")
    assert Decision.objects.count() == 0

    response = owner.client("ingest,read,admin").post("/api/v1/decisions", decision(), format="json")
    assert response.status_code == 200
    assert Decision.objects.count() == 1


def test_revoking_twice_keeps_the_first_time(owner):
    api_key = ApiKey.objects.get(prefix=owner.keys["ingest"][3:11])
    api_key_revoke(api_key=api_key)
    first = ApiKey.objects.get(pk=api_key.pk).revoked_at
    api_key_revoke(api_key=api_key)
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == first


def test_a_revoked_key_with_a_wrong_secret_says_invalid(owner):
    api_key = ApiKey.objects.get(prefix=owner.keys["ingest"][3:11])
    api_key_revoke(api_key=api_key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer ro_{api_key.prefix}_{'z' * 40}")
    response = client.post("/api/v1/decisions", decision(), format="json")
    assert response.status_code == 401
    # Revocation is not disclosed to someone who does not hold the key.
    assert response.json() == error("authentication_failed", "Invalid API key.")
