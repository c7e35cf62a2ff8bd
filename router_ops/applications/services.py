"""Writes on applications, API keys and memberships."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from router_ops.applications.keys import key_generate, key_hash
from router_ops.applications.models import ApiKey, Application, Membership


def application_create(*, slug: str, name: str = "") -> tuple[Application, bool]:
    """Idempotent: an existing application of that slug is returned unchanged."""
    app, created = Application.objects.get_or_create(slug=slug, defaults={"name": name})
    return app, created


@transaction.atomic
def api_key_create(
    *, application: Application, scopes: list[str], name: str = "", created_by=None
) -> tuple[ApiKey, str]:
    """Create a key; return it with the plaintext, which is never stored or shown again."""
    unknown = sorted(set(scopes) - set(ApiKey.SCOPES))
    if unknown or not scopes:
        raise ValueError(
            f"scopes must be a non-empty subset of {', '.join(ApiKey.SCOPES)}; unknown: {', '.join(unknown)}"
        )
    prefix, plaintext = key_generate()
    api_key = ApiKey.objects.create(
        application=application,
        name=name,
        prefix=prefix,
        key_hash=key_hash(plaintext, settings.API_KEY_PEPPER),
        scopes=sorted(set(scopes), key=ApiKey.SCOPES.index),
        created_by=created_by,
    )
    return api_key, plaintext


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def membership_set(*, user, application: Application, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, application=application, defaults={"role": role})
    return membership
