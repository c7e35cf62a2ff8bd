"""Dashboard pages through Django's test client: who may see what, empty states, the
numbers equal the stats API's selector, pinned query counts, escaping."""

from __future__ import annotations

from datetime import timedelta
from html import escape

import pytest
from django.test import Client

from router_ops.alerts.models import AlertRule
from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch
from router_ops.rollups.selectors import default_router_version, segment_stats
from router_ops.rollups.services import rollup_refresh
from router_ops.shadow.models import ShadowSample
from tests.dashboard.world import build_world, judged_pair, now_hour

pytestmark = pytest.mark.django_db

PAGES = [
    "/apps/support-bot/",
    "/apps/support-bot/segments/",
    "/apps/support-bot/compare/",
    "/apps/support-bot/alerts/",
    "/apps/support-bot/eval-sets/",
    "/apps/support-bot/discoveries/",
    "/apps/support-bot/review/",
    "/apps/support-bot/review/agreement/",
]


def pct(value, digits=1):
    return f"{100 * value:.{digits}f} %"


# -- who may see what ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url", [*PAGES, "/apps/support-bot/segments/enterprise-api/", "/apps/support-bot/pairs/1/", "/"]
)
def test_it_redirects_anonymous_users_to_login(client, owner, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", PAGES)
def test_it_hides_an_application_from_non_members(stranger, owner, url):
    client = Client()
    client.force_login(stranger)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("url", PAGES)
def test_it_shows_every_page_to_a_member(member_client, url):
    assert member_client.get(url).status_code == 200


def test_it_hides_a_pair_of_another_application(member_client, outsider, world):
    other = build_world(outsider.application, decisions=30)
    foreign = ShadowSample.objects.filter(application=outsider.application).first()
    assert foreign is not None and other.application != world.application
    assert member_client.get(f"/apps/support-bot/pairs/{foreign.id}/").status_code == 404
    assert member_client.get(f"/apps/other-app/pairs/{foreign.id}/").status_code == 404


def test_it_404s_unknown_segments_and_versions(member_client, world):
    assert member_client.get("/apps/support-bot/segments/nope/").status_code == 404
    assert member_client.get("/apps/support-bot/?version=v9").status_code == 404
    assert member_client.get("/apps/support-bot/compare/?a=v1&b=v9").status_code == 404


def test_home_lists_only_the_users_applications(member_client, outsider):
    response = member_client.get("/")
    # A single application: straight to its overview.
    assert response.status_code == 302 and response.url == "/apps/support-bot/"


def test_a_superuser_sees_every_application(admin_client, owner, outsider):
    body = admin_client.get("/").content.decode()
    assert "/apps/support-bot/" in body and "/apps/other-app/" in body
    assert admin_client.get("/apps/other-app/").status_code == 200


# -- empty states -------------------------------------------------------------------


def test_overview_without_decisions_says_how_to_send_the_first(member_client):
    body = member_client.get("/apps/support-bot/").content.decode()
    assert "No routing decisions yet" in body
    assert "create_api_key support-bot --scopes ingest,read" in body
    assert "/api/v1/decisions" in body


def test_segments_without_segments_says_how_to_define_one(member_client):
    body = member_client.get("/apps/support-bot/segments/").content.decode()
    assert "No segments defined yet" in body and "/api/v1/segments" in body


def test_compare_with_one_version_explains_what_it_needs(member_client, owner):
    build_world(owner.application, decisions=40, seed=1)
    Decision.objects.filter(application=owner.application).delete()
    from router_ops.rollouts.models import RouterVersion

    RouterVersion.objects.filter(application=owner.application, name="v2").delete()
    body = member_client.get("/apps/support-bot/compare/").content.decode()
    assert "Only 1 router version so far" in body


def test_segment_without_traffic_in_the_window_says_so(member_client, world):
    Decision.objects.filter(application=world.application).update(occurred_at=now_hour() - timedelta(days=20))
    from router_ops.rollups.models import HourlyRollup

    HourlyRollup.objects.filter(application=world.application).delete()
    body = member_client.get("/apps/support-bot/segments/free-web/?window=24h").content.decode()
    assert "No decisions in this segment in the last 24h" in body
    assert "No judged pairs yet" in body


def test_alerts_without_rules_invites_an_operator_to_add_one(member_client):
    body = member_client.get("/apps/support-bot/alerts/").content.decode()
    assert "No alert rules yet" in body and "Ask an operator" in body
    assert '<form method="post">' not in body


# -- numbers --------------------------------------------------------------------------


def test_overview_shows_the_stats_api_numbers(member_client, world):
    app = world.application
    body = member_client.get("/apps/support-bot/?window=7d").content.decode()
    stats = segment_stats(application=app, router_version=default_router_version(app), window=timedelta(days=7))
    overall = stats["overall"]
    regret = overall["regret_rate"]
    assert f'data-testid="decisions">{overall["decisions"]:,}<' in body
    assert f'data-testid="cheap-share">{pct(overall["cheap_share"])}<' in body
    assert (
        f'data-testid="regret-interval">{pct(regret["estimate"])} ({100 * regret["low"]:.1f}–{100 * regret["high"]:.1f} %)<'
        in body
    )
    assert f'data-testid="judged">{regret["n"]:,}<' in body
    # The API and the page agree with each other, through the same selector.
    api = world.application.api_keys.filter(scopes__contains=["read"]).first()
    assert api is not None


def test_overview_numbers_equal_the_api_response(member_client, world, owner):
    api = owner.client("read").get("/api/v1/segments/stats?window=24h").json()
    body = member_client.get("/apps/support-bot/?window=24h").content.decode()
    assert f'data-testid="decisions">{api["overall"]["decisions"]:,}<' in body
    assert f'data-testid="regret">{pct(api["overall"]["regret_rate"]["estimate"])}<' in body


def test_router_version_picker_switches_the_numbers(member_client, world):
    app = world.application
    v2 = world.versions["v2"]
    stats = segment_stats(application=app, router_version=v2, window=timedelta(days=7))
    body = member_client.get("/apps/support-bot/?version=v2").content.decode()
    assert f'data-testid="decisions">{stats["overall"]["decisions"]:,}<' in body


def test_segments_table_lists_segments_by_impact_with_status_and_reason(member_client, world):
    body = member_client.get("/apps/support-bot/segments/").content.decode()
    stats = segment_stats(application=world.application, router_version=world.versions["v1"], window=timedelta(days=7))
    positions = [body.index(f'data-segment="{e["segment"]}"') for e in stats["segments"]]
    assert positions == sorted(positions)
    first = stats["segments"][0]
    assert first["segment"] == "enterprise-api" and first["status"] == "alert"
    assert f'title="{first["status_reason"]}" data-status="alert"' in body


def test_compare_shows_quality_loss_per_request(member_client, world):
    app = world.application
    a = segment_stats(application=app, router_version=world.versions["v1"], window=timedelta(days=7))["overall"]
    b = segment_stats(application=app, router_version=world.versions["v2"], window=timedelta(days=7))["overall"]
    body = member_client.get("/apps/support-bot/compare/?a=v1&b=v2").content.decode()
    loss_a = a["cheap_share"] * a["regret_rate"]["estimate"]
    loss_b = b["cheap_share"] * b["regret_rate"]["estimate"]
    assert pct(loss_a, 2) in body and pct(loss_b, 2) in body
    assert f"{100 * (loss_b - loss_a):+.2f} pp" in body


def test_segment_detail_paginates_example_pairs(member_client, world):
    segment = world.segments["enterprise-api"]
    judged = ShadowSample.objects.filter(
        application=world.application, segment_ids__contains=[segment.id], decision__router_version__name="v1"
    ).exclude(verdict="")
    assert judged.count() > 10
    first = member_client.get("/apps/support-bot/segments/enterprise-api/")
    second = member_client.get("/apps/support-bot/segments/enterprise-api/?page=2")
    ids = lambda r: [p.id for p in r.context["page"]]  # noqa: E731
    assert len(ids(first)) == 10 and ids(first)[0] == judged.order_by("-id").first().id
    assert set(ids(first)).isdisjoint(ids(second))
    regret_only = member_client.get("/apps/support-bot/segments/enterprise-api/?pairs=regret")
    assert {p.verdict for p in regret_only.context["page"]} == {"shadow_better"}


def test_pair_detail_shows_both_answers_and_the_rationale(member_client, world):
    sample = ShadowSample.objects.filter(application=world.application, direction="cheap_to_strong").first()
    body = member_client.get(f"/apps/support-bot/pairs/{sample.id}/").content.decode()
    for text in (
        sample.decision.prompt,
        sample.decision.response,
        sample.run.response,
        sample.judgments.get().rationale,
    ):
        assert escape(text) in body


# -- query counts (no N+1) ------------------------------------------------------------


def _segments(n: int) -> list[tuple]:
    return [(f"seg-{i:02d}", f"Segment {i}", f'locale == "l{i}"', {"locale": f"l{i}"}, 0.1) for i in range(n)]


@pytest.mark.parametrize("n", [3, 30])
def test_segments_table_query_count_does_not_grow_with_segments(member_client, owner, n, django_assert_num_queries):
    build_world(owner.application, decisions=240, segments=_segments(n), sample_rate=0.8)
    with django_assert_num_queries(7):
        response = member_client.get("/apps/support-bot/segments/")
    assert response.content.decode().count('data-segment="seg-') == n


@pytest.mark.parametrize("n", [3, 30])
def test_overview_query_count_does_not_grow_with_segments(member_client, owner, n, django_assert_num_queries):
    build_world(owner.application, decisions=240, segments=_segments(n), sample_rate=0.8)
    with django_assert_num_queries(7):
        assert member_client.get("/apps/support-bot/").status_code == 200


@pytest.mark.parametrize("kind", ["overspend", "all"])
def test_segment_detail_query_count_does_not_grow_with_pairs(member_client, world, kind, django_assert_num_queries):
    with django_assert_num_queries(12):
        response = member_client.get(f"/apps/support-bot/segments/enterprise-api/?window=30d&pairs={kind}")
    shown = len(response.context["page"])
    assert (shown < 10) if kind == "overspend" else (shown == 10)
    assert shown > 0


def test_alerts_page_query_count_is_fixed(member_client, world, django_assert_num_queries):
    rule = AlertRule.objects.create(application=world.application, email_recipients=["a@example.com"])
    from router_ops.alerts.models import AlertEvent

    AlertEvent.objects.bulk_create(
        [
            AlertEvent(
                application=world.application,
                rule=rule,
                segment_id=1,
                segment_slug=f"s{i}",
                segment_name="S",
                from_status="ok",
                to_status="alert",
                payload={},
            )
            for i in range(20)
        ]
    )
    with django_assert_num_queries(7):
        assert member_client.get("/apps/support-bot/alerts/").status_code == 200


# -- escaping ------------------------------------------------------------------------

XSS = "<script>window.__xss=1</script>"


def test_user_text_is_escaped_on_every_page(member_client, owner):
    app = owner.application
    build_world(app, decisions=30, seed=3)
    decision_ingest_batch(
        application=app,
        items=[
            {
                "decision_id": "xss",
                "occurred_at": (now_hour() - timedelta(hours=1)).isoformat(),
                "router_version": "v1",
                "unit_id": "u",
                "routed_to": "cheap",
                "prompt": XSS,
                "response": XSS,
                "attributes": {"channel": "api", "user_tier": "enterprise", "x": XSS},
            }
        ],
    )
    sample = judged_pair(
        Decision.objects.get(application=app, decision_id="xss"),
        verdict="shadow_better",
        shadow_response=XSS,
        rationale=XSS,
    )
    rollup_refresh()
    for url in (f"/apps/support-bot/pairs/{sample.id}/", "/apps/support-bot/segments/enterprise-api/?window=24h"):
        body = member_client.get(url).content.decode()
        assert XSS not in body
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in body


# -- alert rules from the page ---------------------------------------------------------


def test_an_operator_adds_an_alert_rule(operator, owner):
    client = Client()
    client.force_login(operator)
    response = client.post(
        "/apps/support-bot/alerts/",
        {
            "name": "Pager",
            "webhook_url": "https://hooks.example.com/x",
            "email_recipients": "a@example.com, b@example.com",
            "window": "24h",
        },
    )
    assert response.status_code == 302
    rule = AlertRule.objects.get(application=owner.application)
    assert (rule.name, rule.webhook_url, rule.email_recipients, rule.window) == (
        "Pager",
        "https://hooks.example.com/x",
        ["a@example.com", "b@example.com"],
        "24h",
    )


def test_a_viewer_cannot_add_an_alert_rule(member_client, owner):
    response = member_client.post(
        "/apps/support-bot/alerts/", {"name": "x", "email_recipients": "a@example.com", "window": "24h"}
    )
    assert response.status_code == 404
    assert not AlertRule.objects.exists()


def test_a_rule_needs_somewhere_to_send(operator, owner):
    client = Client()
    client.force_login(operator)
    response = client.post("/apps/support-bot/alerts/", {"name": "x", "window": "24h"})
    assert response.status_code == 200
    assert "Give a webhook URL, email recipients, or both." in response.content.decode()
    assert not AlertRule.objects.exists()
