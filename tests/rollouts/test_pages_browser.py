"""Browser test: an approver approves a stage from the rollout page, and the routing
config then serves the candidate at the new stage's weight."""

from __future__ import annotations

import pytest

from router_ops.rollouts.services import rollout_approve, rollout_request
from tests.e2e.conftest import browser_context_args, browser_type_launch_args, screenshot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


def test_an_approver_approves_a_stage_and_the_routing_config_follows(
    page,
    live_server,
    owner,
    people,
    versions,
    evidence,
    screenshot,  # noqa: F811
):
    evidence.passing()
    plan = [{"weight_bp": w, "min_duration_s": 0} for w in (0, 100, 500, 2500, 5000, 10000)]
    rollout = rollout_request(
        application=owner.application, actor=people.actor("otto"), candidate=versions["v13"], stages=plan, reason="v13"
    )
    rollout_approve(rollout=rollout, actor=people.actor("arne"), evidence_hash=rollout.evidence_hash, reason="start")
    anna = people["anna"]
    anna.set_password(PASSWORD)
    anna.save()

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    config_url = f"{live_server.url}/api/v1/routing-config?application=support-bot"
    before = page.request.get(config_url, headers={"Accept": "application/json"}).json()
    assert before["versions"] == [{"router_version": "v12", "weight_bp": 10000}]
    assert before["shadow_versions"] == ["v13"]

    page.goto(f"{live_server.url}/apps/support-bot/rollouts/{rollout.pk}/")
    assert "dark" in page.inner_text("[data-testid=timeline]")
    assert page.inner_text("[data-testid=overall]") == "pass"
    shown_hash = page.inner_text("[data-testid=evidence-hash]")
    assert shown_hash == rollout.__class__.objects.get(pk=rollout.pk).evidence_hash
    page.click("[data-testid=open-approve]")
    page.fill("details[open] textarea[name=reason]", "Dark stage passes in every segment")
    screenshot("rollout-detail-approving")
    page.click("[data-testid=submit-approve]")
    page.wait_for_load_state("networkidle")
    assert "Approved. Now running at stage 1%." in page.inner_text(".messages")
    screenshot("rollout-detail-approved")

    after = page.request.get(config_url, headers={"Accept": "application/json"}).json()
    assert after["versions"] == [
        {"router_version": "v13", "weight_bp": 100},
        {"router_version": "v12", "weight_bp": 9900},
    ]
    assert after["etag"] != before["etag"]


def test_a_stale_page_cannot_approve(page, live_server, owner, people, versions, evidence, screenshot):  # noqa: F811
    evidence.passing()
    plan = [{"weight_bp": w, "min_duration_s": 0} for w in (0, 100, 10000)]
    rollout = rollout_request(
        application=owner.application, actor=people.actor("otto"), candidate=versions["v13"], stages=plan
    )
    rollout_approve(rollout=rollout, actor=people.actor("arne"), evidence_hash=rollout.evidence_hash, reason="start")
    anna = people["anna"]
    anna.set_password(PASSWORD)
    anna.save()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/apps/support-bot/rollouts/{rollout.pk}/")
    page.click("[data-testid=open-approve]")
    page.fill("details[open] textarea[name=reason]", "looks fine")
    evidence.failing()  # the verdicts change while the page is open
    page.click("[data-testid=submit-approve]")
    page.wait_for_load_state("networkidle")
    assert "evidence changed since you looked" in page.inner_text(".messages")
    screenshot("rollout-detail-stale")
