"""The dashboard in a real browser: numbers equal the API's, the table sorts, drilling
down reaches an example pair, user text never executes. Every page is screenshotted."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from django.core import mail

from router_ops.alerts.models import AlertEvent
from router_ops.alerts.services import alert_rule_create, alerts_evaluate
from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch
from router_ops.rollups.services import rollup_refresh
from router_ops.shadow.models import ShadowSample
from tests.dashboard.world import build_world, judged_pair, now_hour

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = "<script>window.__xss=1</script>"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def usd(value: float) -> str:
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def interval(rate: dict) -> str:
    return f"{100 * rate['estimate']:.1f} % ({100 * rate['low']:.1f}–{100 * rate['high']:.1f} %)"


@pytest.fixture
def world(owner):
    return build_world(owner.application)


def order(page) -> list[str]:
    return page.eval_on_selector_all("#segments-table tbody tr", "rows => rows.map(r => r.dataset.segment)")


def test_overview_numbers_equal_the_api(world, owner, logged_in, live_server, screenshot):
    page = logged_in()
    # One application: the home page goes straight to its overview.
    assert page.url == f"{live_server.url}/apps/support-bot/"
    api = httpx.get(
        f"{live_server.url}/api/v1/segments/stats?window=7d",
        headers={"Authorization": f"Bearer {owner.keys['read']}"},
    ).json()
    overall = api["overall"]
    assert overall["decisions"] > 0 and overall["regret_rate"]["n"] > 0
    text = {
        key: page.inner_text(f"[data-testid={key}]")
        for key in ("decisions", "cheap-share", "cost", "strong-cost", "savings", "regret", "regret-interval", "judged")
    }
    assert text == {
        "decisions": f"{overall['decisions']:,}",
        "cheap-share": pct(overall["cheap_share"]),
        "cost": usd(overall["cost_usd"]),
        "strong-cost": usd(overall["strong_cost_usd"]),
        "savings": usd(overall["savings_usd"]),
        "regret": pct(overall["regret_rate"]["estimate"]),
        "regret-interval": interval(overall["regret_rate"]),
        "judged": f"{overall['regret_rate']['n']:,}",
    }
    # The worst segment by impact leads the table, as in the API.
    first = page.inner_text("#worst-segments tbody tr:first-child td:first-child")
    assert first == api["segments"][0]["name"]
    assert page.eval_on_selector_all("canvas", "cs => cs.map(c => c.width > 0)") == [True, True]
    screenshot("overview")

    page.click(".seg-control a[data-window='24h']")
    page.wait_for_load_state("networkidle")
    api24 = httpx.get(
        f"{live_server.url}/api/v1/segments/stats?window=24h",
        headers={"Authorization": f"Bearer {owner.keys['read']}"},
    ).json()
    assert page.inner_text("[data-testid=decisions]") == f"{api24['overall']['decisions']:,}"
    screenshot("overview-24h")


def test_segment_table_sorts_and_drills_down_to_a_pair(world, logged_in, live_server, screenshot):
    page = logged_in()
    page.goto(f"{live_server.url}/apps/support-bot/segments/")
    initial = order(page)
    assert initial[0] == "enterprise-api"  # largest impact first (server order)
    screenshot("segments")

    page.click("#segments-table th:has-text('Segment')")
    assert order(page) == sorted(initial)
    page.click("#segments-table th:has-text('Traffic')")
    by_traffic = order(page)
    assert by_traffic[0] == "free-web" and by_traffic != sorted(initial)
    page.click("#segments-table th:has-text('Traffic')")
    assert order(page) == list(reversed(by_traffic))
    screenshot("segments-sorted-by-traffic")

    page.click("#segments-table a:has-text('Enterprise API')")
    page.wait_for_load_state("networkidle")
    assert page.url.startswith(f"{live_server.url}/apps/support-bot/segments/enterprise-api/")
    assert page.locator("article.pair").count() == 10
    assert page.eval_on_selector_all("canvas", "cs => cs.length") == 2
    screenshot("segment-detail")

    page.click("nav.filters a:has-text('Regret')")
    page.wait_for_load_state("networkidle")
    assert page.locator("article.pair .pill.regret").count() == page.locator("article.pair").count() > 0
    page.click("article.pair >> nth=0 >> text=Open pair →")
    page.wait_for_load_state("networkidle")
    match = re.search(r"/apps/support-bot/pairs/(\d+)/", page.url)
    assert match
    sample = ShadowSample.objects.get(id=int(match.group(1)))
    assert page.inner_text("#prompt") == sample.decision.prompt
    assert page.inner_text("#strong-answer") == sample.run.response
    assert "CSV format" in page.inner_text("#judgments")
    screenshot("pair-detail")


def test_compare_and_alerts_pages(world, owner, logged_in, live_server, screenshot, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    app = owner.application
    alert_rule_create(application=app, name="On-call", email_recipients=["oncall@example.com"], window="7d")
    events = alerts_evaluate(application=app)
    assert [e.segment_slug for e in events] == ["enterprise-api"]
    assert len(mail.outbox) == 1
    page = logged_in()
    page.goto(f"{live_server.url}/apps/support-bot/compare/?a=v1&b=v2")
    rows = page.eval_on_selector_all("#compare-table tbody tr", "rows => rows.map(r => r.dataset.segment)")
    assert set(rows) == {"enterprise-api", "free-web", "pro-web"}
    screenshot("compare")
    page.goto(f"{live_server.url}/apps/support-bot/alerts/")
    assert "Enterprise API" in page.inner_text("#history")
    assert page.locator("#history .chip.ok").count() == 1
    assert AlertEvent.objects.count() == 1
    screenshot("alerts")


def test_empty_application_says_what_to_do(owner, logged_in, live_server, screenshot):
    page = logged_in()
    page.goto(f"{live_server.url}/apps/support-bot/")
    assert "create_api_key support-bot" in page.inner_text("#empty-state")
    screenshot("overview-empty")
    page.goto(f"{live_server.url}/apps/support-bot/segments/")
    assert "No segments defined yet" in page.inner_text("main")
    screenshot("segments-empty")


def test_user_text_is_escaped_and_never_runs(owner, logged_in, live_server, screenshot):
    app = owner.application
    build_world(app, decisions=60)
    hour = now_hour() - timedelta(hours=1)
    result = decision_ingest_batch(
        application=app,
        items=[
            {
                "decision_id": "xss-1",
                "occurred_at": hour.isoformat(),
                "router_version": "v1",
                "unit_id": "u-x",
                "routed_to": "cheap",
                "prompt": f"Hi {XSS}",
                "response": f"Cheap {XSS}",
                "attributes": {"channel": "api", "user_tier": "enterprise", "note": XSS},
            }
        ],
    )
    assert result.accepted == 1
    decision = Decision.objects.get(application=app, decision_id="xss-1")
    sample = judged_pair(decision, verdict="shadow_better", shadow_response=f"Strong {XSS}", rationale=f"Because {XSS}")
    rollup_refresh()
    page = logged_in()
    page.goto(f"{live_server.url}/apps/support-bot/pairs/{sample.id}/")
    assert page.evaluate("window.__xss") is None
    assert page.inner_text("#prompt") == f"Hi {XSS}"
    assert page.inner_text("#cheap-answer") == f"Cheap {XSS}"
    assert page.inner_text("#strong-answer") == f"Strong {XSS}"
    assert XSS in page.inner_text("#attributes") and XSS in page.inner_text("#judgments")
    screenshot("pair-xss")
    page.goto(f"{live_server.url}/apps/support-bot/segments/enterprise-api/?window=24h")
    assert page.evaluate("window.__xss") is None
    assert f"Hi {XSS}" in page.inner_text("#pairs")
