"""Redaction at ingestion, proven by reading the stored rows; settings validation and caching."""

from __future__ import annotations

import orjson
import pytest
from django.core.exceptions import ValidationError

from router_ops.ingest.models import Decision
from router_ops.privacy.models import PrivacySettings
from router_ops.privacy.services import privacy_policy, privacy_policy_clear, privacy_settings_update, text_redact
from tests.ingest.payloads import decision

pytestmark = pytest.mark.django_db

SECRET_PROMPT = "I am jane@acme.io, card 4111 1111 1111 1111, call +1 415-555-2671, key sk-abcdefghijklmnop1234"
REDACTED_PROMPT = "I am [REDACTED:email], card [REDACTED:card], call [REDACTED:phone], key [REDACTED:api_key]"


@pytest.fixture(autouse=True)
def _fresh_cache():
    privacy_policy_clear()
    yield
    privacy_policy_clear()


def _ingest(owner, body) -> dict:
    response = owner.client("ingest").post("/api/v1/decisions", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_stores_redacted_prompt_response_messages_and_attributes(owner):
    _ingest(
        owner,
        {
            "decisions": [
                decision(
                    "d-1",
                    prompt=SECRET_PROMPT,
                    response="Sure jane@acme.io, done.",
                    attributes={"tenant": "acme", "contact": "jane@acme.io", "n": 3, "tags": ["call 020 7946 0958"]},
                ),
                decision(
                    "d-2",
                    messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": SECRET_PROMPT}],
                ),
            ]
        },
    )
    d1 = Decision.objects.get(application=owner.application, decision_id="d-1")
    assert d1.prompt == REDACTED_PROMPT
    assert d1.response == "Sure [REDACTED:email], done."
    assert d1.attributes == {"tenant": "acme", "contact": "[REDACTED:email]", "n": 3, "tags": ["call [REDACTED:phone]"]}
    d2 = Decision.objects.get(application=owner.application, decision_id="d-2")
    assert d2.messages == [{"role": "system", "content": "be nice"}, {"role": "user", "content": REDACTED_PROMPT}]
    # Nothing of the secrets reached any text column of the table.
    raw = orjson.dumps(list(Decision.objects.values("prompt", "messages", "response", "attributes"))).decode()
    for secret in ("jane@acme.io", "4111 1111", "415-555-2671", "sk-abcdefghijklmnop1234", "7946"):
        assert secret not in raw


def test_it_stores_no_text_when_store_text_is_off(owner):
    privacy_settings_update(application=owner.application, store_text=False)
    _ingest(owner, decision("d-1", prompt="hello", response="hi", attributes={"mail": "a@b.io"}))
    row = Decision.objects.values("prompt", "messages", "response", "attributes").get(decision_id="d-1")
    assert row == {"prompt": None, "messages": None, "response": None, "attributes": {"mail": "[REDACTED:email]"}}


def test_it_applies_custom_patterns_and_only_enabled_builtin_rules(owner):
    privacy_settings_update(
        application=owner.application,
        builtin_rules=["email"],
        custom_patterns=[{"name": "ticket", "pattern": "TCK-[0-9]{6}"}],
    )
    _ingest(owner, decision("d-1", prompt="TCK-123456 from a@b.io at +1 415-555-2671"))
    assert (
        Decision.objects.get(decision_id="d-1").prompt == "[REDACTED:ticket] from [REDACTED:email] at +1 415-555-2671"
    )


def test_a_decision_past_retention_on_arrival_is_stored_without_text(owner):
    privacy_settings_update(application=owner.application, retention_days=7)
    _ingest(owner, decision("old", occurred_at="2020-01-01T00:00:00Z", prompt="hello"))
    assert Decision.objects.get(decision_id="old").prompt is None


def test_a_settings_change_takes_effect_on_the_next_batch(owner):
    _ingest(owner, decision("d-1", prompt="TCK-123456"))
    privacy_settings_update(
        application=owner.application, custom_patterns=[{"name": "ticket", "pattern": "TCK-[0-9]{6}"}]
    )
    _ingest(owner, decision("d-2", prompt="TCK-123456"))
    prompts = dict(Decision.objects.values_list("decision_id", "prompt"))
    assert prompts == {"d-1": "TCK-123456", "d-2": "[REDACTED:ticket]"}


def test_the_compiled_policy_is_cached_per_settings_stamp(owner, django_assert_num_queries):
    privacy_settings_update(application=owner.application, custom_patterns=[{"name": "t", "pattern": "T[0-9]+"}])
    first = privacy_policy(owner.application)
    with django_assert_num_queries(1):
        assert privacy_policy(owner.application) is first


def test_it_refuses_invalid_custom_patterns_on_save(owner):
    with pytest.raises(ValidationError) as info:
        privacy_settings_update(application=owner.application, custom_patterns=[{"name": "bad", "pattern": "(?<=x)y"}])
    assert "custom_patterns" in info.value.message_dict
    assert not PrivacySettings.objects.filter(application=owner.application).exists()


def test_it_refuses_out_of_range_retention(owner):
    with pytest.raises(ValidationError) as info:
        privacy_settings_update(application=owner.application, retention_days=0)
    assert "retention_days" in info.value.message_dict


def test_text_redact_for_shadow_answers(owner):
    assert text_redact(owner.application, "write to a@b.io") == "write to [REDACTED:email]"
    privacy_settings_update(application=owner.application, store_text=False)
    assert text_redact(owner.application, "write to a@b.io") == ""


def test_another_applications_settings_do_not_apply(owner, outsider):
    privacy_settings_update(application=outsider.application, store_text=False)
    _ingest(owner, decision("d-1", prompt="hello"))
    assert Decision.objects.get(application=owner.application, decision_id="d-1").prompt == "hello"
