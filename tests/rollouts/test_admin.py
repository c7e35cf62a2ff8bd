"""Django admin actions call the same services: reasons, evidence binding and four-eyes hold."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from router_ops.rollouts.models import AuditEvent, Rollout
from router_ops.rollouts.services import rollout_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(people):
    for name in ("anna", "otto"):
        people[name].is_staff = True
        people[name].is_superuser = False
        people[name].save()
        from django.contrib.auth.models import Permission

        people[name].user_permissions.add(*Permission.objects.filter(content_type__app_label="rollouts"))
    return people


def _post(client, rollout, action, **extra):
    return client.post(
        "/admin/rollouts/rollout/", {"action": action, ACTION_CHECKBOX_NAME: [rollout.pk], **extra}, follow=True
    )


def test_approve_shows_the_evidence_then_approves(owner, staff, versions):
    rollout = rollout_request(application=owner.application, actor=staff.actor("otto"), candidate=versions["v13"])
    client = staff.client("anna")
    page = _post(client, rollout, "action_approve")
    assert page.status_code == 200 and rollout.evidence_hash in page.content.decode()
    done = _post(
        client, rollout, "action_approve", confirm="yes", **{f"evidence_hash_{rollout.pk}": rollout.evidence_hash}
    )
    assert "approve the next stage done" in done.content.decode()
    assert Rollout.objects.get().status == "running"
    assert AuditEvent.objects.filter(rollout=rollout).latest("id").action == "approve"


def test_requester_cannot_approve_in_the_admin_either(owner, staff, versions):
    rollout = rollout_request(application=owner.application, actor=staff.actor("otto"), candidate=versions["v13"])
    # otto is an operator: the role check refuses before four-eyes even matters.
    done = _post(
        staff.client("otto"),
        rollout,
        "action_approve",
        confirm="yes",
        **{f"evidence_hash_{rollout.pk}": rollout.evidence_hash},
    )
    assert "does not allow you to approve" in done.content.decode()
    assert Rollout.objects.get().status == "requested"


def test_rollback_needs_a_reason(owner, staff, versions):
    rollout = rollout_request(application=owner.application, actor=staff.actor("otto"), candidate=versions["v13"])
    client = staff.client("otto")
    _post(client, rollout, "action_rollback", confirm="yes", reason="")
    assert Rollout.objects.get().status == "requested"
    _post(client, rollout, "action_rollback", confirm="yes", reason="wrong candidate")
    assert Rollout.objects.get().status == "rolled_back"
    assert AuditEvent.objects.filter(rollout=rollout).latest("id").reason == "wrong candidate"
