"""Shared personas and fixtures (healthchecks style): an owner application with keys
of each scope, and an outsider application whose key must be refused."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from router_ops.applications.services import api_key_create, application_create


class Persona:
    def __init__(self, slug: str):
        self.application, _ = application_create(slug=slug, name=slug.title())
        self.keys = {}
        for scopes in (["ingest"], ["read"], ["admin"], ["ingest", "read", "admin"]):
            _, plaintext = api_key_create(application=self.application, scopes=scopes)
            self.keys[",".join(scopes)] = plaintext

    def client(self, scopes: str = "ingest") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.keys[scopes]}")
        return client


@pytest.fixture
def owner(db) -> Persona:
    return Persona("support-bot")


@pytest.fixture
def outsider(db) -> Persona:
    return Persona("other-app")


def pytest_collection_modifyitems(items):
    """Browser tests run last: Playwright's sync API keeps an event loop running in the
    main thread for the rest of the session, which breaks asyncio.run() in later tests."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
