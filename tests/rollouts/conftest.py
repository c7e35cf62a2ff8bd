"""Rollout personas: people with each role in the owner application, a baseline and a
candidate version, and an evidence source the tests control (gates.evidence_source)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from router_ops.applications.services import membership_set
from router_ops.rollouts import gates
from router_ops.rollouts.actors import Actor
from router_ops.rollouts.models import RouterVersion
from router_ops.rollouts.services import router_version_activate_initial, router_version_create


class People:
    ROLES = {
        "vera": "viewer",
        "otto": "operator",
        "olga": "operator",
        "anna": "approver",
        "arne": "approver",
        "ada": "admin",
    }

    def __init__(self, application):
        self.users = {}
        for username, role in self.ROLES.items():
            user = get_user_model().objects.create_user(username=username, password=None)  # unusable: no slow hashing
            membership_set(user=user, application=application, role=role)
            self.users[username] = user

    def __getitem__(self, username):
        return self.users[username]

    def actor(self, username) -> Actor:
        return Actor(user=self.users[username])

    def client(self, username) -> APIClient:
        client = APIClient()
        client.force_login(self.users[username])
        return client


@pytest.fixture
def people(owner) -> People:
    return People(owner.application)


@pytest.fixture
def versions(owner, people):
    """v12 active (the baseline), v13 a draft candidate."""
    v12 = router_version_create(application=owner.application, actor=people.actor("ada"), name="v12")
    router_version_activate_initial(version=v12, actor=people.actor("ada"), reason="first version")
    v13 = router_version_create(application=owner.application, actor=people.actor("ada"), name="v13")
    v12.refresh_from_db()
    return {"v12": v12, "v13": v13}


class FakeEvidence:
    """Per-segment judged counts the gates see: {segment: (cand_judged, cand_losses, base_judged, base_losses)}."""

    def __init__(self):
        self.segments: dict[str, tuple[int, int, int, int]] = {}
        self.calls = 0

    def passing(self, n=5000):
        self.segments = {"all-traffic": (n, 0, n, n // 10), "enterprise-api": (n, 0, n, n // 10)}
        return self

    def failing(self, n=5000, segment="enterprise-api"):
        self.passing(n)
        self.segments[segment] = (n, n // 2, n, 0)
        return self

    def __call__(self, rollout, stage):
        self.calls += 1
        return gates.StageObservations(
            segments=tuple(
                gates.SegmentObservation(name, gates.ArmCounts(cj, cl), gates.ArmCounts(bj, bl))
                for name, (cj, cl, bj, bl) in self.segments.items()
            ),
            source="test",
        )


@pytest.fixture
def evidence(monkeypatch) -> FakeEvidence:
    fake = FakeEvidence()
    monkeypatch.setattr(gates, "evidence_source", fake)
    return fake


class Clock:
    """Each tick is 25 hours after the last: past every default stage's minimum duration."""

    def __init__(self):
        self.now = timezone.now()

    def tick(self, hours: float = 25):
        self.now += timedelta(hours=hours)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def versions_status(application) -> dict[str, str]:
    return dict(RouterVersion.objects.filter(application=application).values_list("name", "status"))
