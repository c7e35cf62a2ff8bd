"""POST /api/v1/feedback (API.md): pending until its decision arrives, idempotent by feedback_id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from router_ops.ingest.models import Decision, Feedback
from tests.ingest.payloads import decision, error, invalid

URL = "/api/v1/feedback"


def feedback(decision_id: str = "d-1", **fields) -> dict:
    body = {"decision_id": decision_id, "kind": "thumbs_down", "value": 1.0, "occurred_at": "2026-11-24T10:20:00Z"}
    body.update(fields)
    return body


def send(persona, *items, scopes="ingest", url=URL):
    return persona.client(scopes).post(url, {"feedback": list(items)}, format="json")


def send_decisions(persona, *items):
    response = persona.client().post("/api/v1/decisions", {"decisions": list(items)}, format="json")
    assert response.status_code == 200, response.content
    return response


def result(accepted=0, duplicates=0, rejected=0, errors=()):
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "errors": list(errors)}


def test_it_attaches_feedback_to_a_known_decision(owner):
    send_decisions(owner, decision("d-1"))
    response = send(owner, feedback("d-1", kind="thumbs_up", value=0.5))
    assert response.status_code == 200
    assert response.json() == result(accepted=1)

    row = Feedback.objects.get()
    assert row.application_id == owner.application.id
    assert row.decision_id == Decision.objects.get().id
    assert (row.decision_key, row.kind, row.value, row.feedback_id) == ("d-1", "thumbs_up", 0.5, None)
    assert row.occurred_at == datetime(2026, 11, 24, 10, 20, tzinfo=UTC)


@pytest.mark.parametrize("url", ["/api/v1/feedback", "/api/v1/feedback/"])
def test_it_answers_with_and_without_trailing_slash(owner, url):
    assert send(owner, feedback(), url=url).status_code == 200
    assert Feedback.objects.count() == 1


def test_it_keeps_feedback_for_an_unknown_decision_pending(owner):
    response = send(owner, feedback("later"))
    assert response.status_code == 200
    assert response.json() == result(accepted=1)
    row = Feedback.objects.get()
    assert (row.decision_key, row.decision_id) == ("later", None)


def test_it_attaches_pending_feedback_when_the_decision_arrives(owner):
    send(owner, feedback("d-1", kind="retry"), feedback("d-1", kind="regenerate"), feedback("d-2"))
    assert Feedback.objects.filter(decision__isnull=True).count() == 3

    send_decisions(owner, decision("d-0"), decision("d-1"))
    d1 = Decision.objects.get(decision_id="d-1")
    assert sorted(Feedback.objects.filter(decision=d1).values_list("kind", flat=True)) == ["regenerate", "retry"]
    assert list(Feedback.objects.filter(decision__isnull=True).values_list("decision_key", flat=True)) == ["d-2"]


def test_it_attaches_when_the_decision_comes_late_in_a_batch(owner):
    send(owner, feedback("d-999"))
    send_decisions(owner, *[decision(f"d-{i}") for i in range(1000)])
    row = Feedback.objects.get()
    assert row.decision_id == Decision.objects.get(decision_id="d-999").id


def test_a_duplicate_decision_does_not_reattach_or_detach(owner):
    send_decisions(owner, decision("d-1"))
    send(owner, feedback("d-1"))
    first = Feedback.objects.get().decision_id
    response = owner.client().post("/api/v1/decisions", decision("d-1"), format="json")
    assert response.json() == result(duplicates=1)
    assert Feedback.objects.get().decision_id == first


def test_it_never_attaches_to_another_applications_decision(owner, outsider):
    send_decisions(outsider, decision("d-1"))
    send(owner, feedback("d-1"))
    assert Feedback.objects.get().decision_id is None

    send_decisions(outsider, decision("d-2"))  # the outsider's arrivals attach nothing of the owner's
    send(owner, feedback("d-2"))
    send_decisions(outsider, decision("d-3"))
    assert Feedback.objects.filter(decision__isnull=False).count() == 0

    send_decisions(owner, decision("d-1"))
    owner_d1 = Decision.objects.get(application=owner.application, decision_id="d-1")
    assert list(Feedback.objects.values_list("decision_key", "decision_id").order_by("decision_key")) == [
        ("d-1", owner_d1.id),
        ("d-2", None),
    ]


def test_feedback_id_makes_a_resend_harmless(owner):
    response = send(
        owner, feedback("d-1", feedback_id="f-1", kind="thumbs_down"), feedback("d-1", feedback_id="f-1", kind="x")
    )
    assert response.json() == result(accepted=1, duplicates=1)
    response = send(
        owner, feedback("d-1", feedback_id="f-1", kind="thumbs_up", value=0.0), feedback("d-1", feedback_id="f-2")
    )
    assert response.status_code == 200
    assert response.json() == result(accepted=1, duplicates=1)
    assert sorted(Feedback.objects.values_list("feedback_id", "kind", "value")) == [
        ("f-1", "thumbs_down", 1.0),
        ("f-2", "thumbs_down", 1.0),
    ]


def test_feedback_ids_are_unique_per_application_only(owner, outsider):
    assert send(owner, feedback(feedback_id="f-1")).json() == result(accepted=1)
    assert send(outsider, feedback(feedback_id="f-1")).json() == result(accepted=1)
    assert Feedback.objects.count() == 2


def test_feedback_without_id_is_stored_each_time(owner):
    # API.md has no feedback_id: without one, a resend is a second signal.
    send(owner, feedback())
    send(owner, feedback())
    assert Feedback.objects.count() == 2


def test_it_accepts_a_custom_kind_and_no_value(owner):
    assert send(owner, feedback(kind="copied_answer", value=None)).status_code == 200
    row = Feedback.objects.get()
    assert (row.kind, row.value) == ("copied_answer", None)


@pytest.mark.parametrize("occurred_at", ["absent", None])
def test_it_uses_the_receiving_time_when_occurred_at_is_absent(owner, occurred_at):
    item = feedback()
    if occurred_at == "absent":
        del item["occurred_at"]
    else:
        item["occurred_at"] = occurred_at
    assert send(owner, item).status_code == 200
    row = Feedback.objects.get()
    assert row.occurred_at == row.received_at
    assert row.occurred_at <= timezone.now()


@pytest.mark.parametrize(
    ("item", "errors"),
    [
        ({"kind": "retry"}, {"decision_id": ["This field is required."]}),
        ({"decision_id": "d-1"}, {"kind": ["This field is required."]}),
        (feedback(decision_id=7), {"decision_id": ["Must be a string."]}),
        (feedback(decision_id="d" * 129), {"decision_id": ["Ensure this field has no more than 128 characters."]}),
        (feedback(kind=""), {"kind": ["May not be blank."]}),
        (feedback(kind="k" * 65), {"kind": ["Ensure this field has no more than 64 characters."]}),
        (feedback(kind="a\x00"), {"kind": ["May not contain NUL characters."]}),
        (feedback(value="1"), {"value": ["Must be a number."]}),
        (feedback(value=True), {"value": ["Must be a number."]}),
        (feedback(occurred_at="2026-11-24T10:20:00"), {"occurred_at": ["Must include a UTC offset (Z or ±hh:mm)."]}),
        (
            feedback(occurred_at="2026-11-24"),
            {"occurred_at": ["Must be an RFC 3339 timestamp with date and time, e.g. 2026-11-24T10:15:00Z."]},
        ),
        # A blank id would make every other blank-id item a "duplicate" and silently drop it.
        (feedback(feedback_id=""), {"feedback_id": ["May not be blank."]}),
        (feedback(feedback_id="  "), {"feedback_id": ["May not be blank."]}),
        (feedback(feedback_id="f" * 129), {"feedback_id": ["Ensure this field has no more than 128 characters."]}),
        (feedback(comment="bad"), {"comment": ["Unknown field."]}),
    ],
)
def test_it_rejects_an_invalid_item_and_keeps_the_good_ones(owner, item, errors):
    response = send(owner, feedback("good-1"), item, feedback("good-2"))
    assert response.status_code == 207
    decision_id = item.get("decision_id") if isinstance(item.get("decision_id"), str) else None
    assert response.json() == result(
        accepted=2, rejected=1, errors=[{"index": 1, "decision_id": decision_id, "errors": errors}]
    )
    assert sorted(Feedback.objects.values_list("decision_key", flat=True)) == ["good-1", "good-2"]


def test_items_without_feedback_id_are_never_duplicates_of_each_other(owner):
    response = send(owner, feedback(feedback_id=None), feedback(), feedback(feedback_id="f-1"))
    assert response.json() == result(accepted=3)
    assert Feedback.objects.count() == 3


def test_it_rejects_a_non_object_item(owner):
    response = send(owner, "thumbs_down")
    assert response.status_code == 207
    assert response.json() == result(
        rejected=1,
        errors=[
            {
                "index": 0,
                "decision_id": None,
                "errors": {"non_field_errors": ["Each feedback item must be a JSON object."]},
            }
        ],
    )
    assert Feedback.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (feedback(), {"non_field_errors": ['Send {"feedback": [ … ]}.']}),
        ([feedback()], {"non_field_errors": ['Send {"feedback": [ … ]}.']}),
        ({"feedback": []}, {"feedback": ["Send at least one item."]}),
        ({"feedback": "x"}, {"feedback": ["Must be a list."]}),
        ({"feedback": [feedback()], "decisions": []}, {"decisions": ["Unknown field."]}),
        ({"feedback": [feedback()] * 1001}, {"feedback": ["At most 1000 items per request; got 1001."]}),
    ],
)
def test_it_refuses_a_bad_envelope(owner, body, details):
    response = owner.client().post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json() == invalid(details)
    assert Feedback.objects.count() == 0


def test_it_refuses_a_request_without_key(owner):
    response = APIClient().post(URL, {"feedback": [feedback()]}, format="json")
    assert response.status_code == 401
    assert response.json() == error("not_authenticated", "Authentication credentials were not provided.")
    assert Feedback.objects.count() == 0


@pytest.mark.parametrize("scopes", ["read", "admin"])
def test_it_refuses_a_key_without_the_ingest_scope(owner, scopes):
    response = send(owner, feedback(), scopes=scopes)
    assert response.status_code == 403
    assert response.json() == error("permission_denied", "This API key lacks the 'ingest' scope.")
    assert Feedback.objects.count() == 0


def test_it_refuses_a_key_used_for_another_application(owner, outsider):
    response = send(owner, feedback(), url=f"{URL}?application={outsider.application.slug}")
    assert response.status_code == 403
    assert response.json() == error("permission_denied", "This API key belongs to another application.")
    assert Feedback.objects.count() == 0


def test_the_sweep_attaches_feedback_that_missed_its_decision(owner):
    """Simulates the race: the decision row exists but its feedback stayed pending."""
    from router_ops.ingest.models import Feedback
    from router_ops.ingest.services import decision_ingest_batch, feedback_attach_pending, feedback_ingest_batch

    feedback_ingest_batch(application=owner.application, items=[{"decision_id": "race-1", "kind": "retry"}])
    decision_ingest_batch(
        application=owner.application,
        items=[
            {
                "decision_id": "race-1",
                "occurred_at": "2026-11-24T10:00:00Z",
                "router_version": "v1",
                "unit_id": "u",
                "routed_to": "cheap",
            }
        ],
    )
    # Undo the attachment ingestion made, to stand for a concurrent commit that missed it.
    Feedback.objects.update(decision=None)
    assert feedback_attach_pending() == 1
    assert Feedback.objects.get().decision.decision_id == "race-1"
    assert feedback_attach_pending() == 0
