"""Personas for page tests (healthchecks style): a member of the application, a user of
another application (the outsider), and anonymous."""

from __future__ import annotations

import pytest
from django.test import Client

from router_ops.applications.services import membership_set
from tests.dashboard.world import build_world

PASSWORD = "correct horse battery"


@pytest.fixture
def member(owner, django_user_model):
    user = django_user_model.objects.create_user(username="alice", password=PASSWORD)
    membership_set(user=user, application=owner.application, role="viewer")
    return user


@pytest.fixture
def operator(owner, django_user_model):
    user = django_user_model.objects.create_user(username="olga", password=PASSWORD)
    membership_set(user=user, application=owner.application, role="operator")
    return user


@pytest.fixture
def stranger(outsider, django_user_model):
    user = django_user_model.objects.create_user(username="mallory", password=PASSWORD)
    membership_set(user=user, application=outsider.application, role="admin")
    return user


@pytest.fixture
def member_client(member) -> Client:
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def world(owner):
    return build_world(owner.application)
