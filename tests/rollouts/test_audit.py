"""Audit rows are append-only, and the database itself refuses to change them."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from router_ops.rollouts.models import AppendOnlyError, AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(owner, people, versions):
    return AuditEvent.objects.get(application=owner.application, action="version_activate_initial")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE rollouts_auditevent SET reason = 'rewritten' WHERE id = %s",
        "UPDATE rollouts_auditevent SET actor_label = 'someone-else' WHERE id = %s",
        "DELETE FROM rollouts_auditevent WHERE id = %s",
    ],
)
def test_database_refuses_update_and_delete(event, sql):
    with pytest.raises(ProgrammingError, match="append-only") as refused:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert refused.value.__cause__.sqlstate == "P0001"  # raised by the trigger, not a permissions accident
    event.refresh_from_db()
    assert (event.reason, event.actor_label) == ("first version", "ada")


def test_orm_bulk_update_and_delete_are_refused_by_the_database(owner, event):
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk, reason="first version").exists()


def test_model_refuses_save_and_delete(event):
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()


def test_inserts_still_work(owner, event):
    before = AuditEvent.objects.count()
    AuditEvent.objects.create(application=owner.application, actor_label="system", action="note")
    assert AuditEvent.objects.count() == before + 1


def test_version_events_record_who(owner, event):
    rows = list(
        AuditEvent.objects.filter(application=owner.application)
        .order_by("id")
        .values_list("action", "subject", "actor_label")
    )
    assert rows == [
        ("version_create", "router_version:v12", "ada"),
        ("version_activate_initial", "router_version:v12", "ada"),
        ("version_create", "router_version:v13", "ada"),
    ]
