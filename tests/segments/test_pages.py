"""Pages of discovery and eval sets: members only, admins write, each page explains itself empty."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from router_ops.applications.models import Membership
from segments.evalsets import evalset_create
from segments.models import Discovery, DiscoveryRun, EvalSet, Segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(owner):
    admin = User.objects.create_user("ada", password="pw")
    viewer = User.objects.create_user("vic", password="pw")
    stranger = User.objects.create_user("sam", password="pw")
    Membership.objects.create(user=admin, application=owner.application, role="admin")
    Membership.objects.create(user=viewer, application=owner.application, role="viewer")
    return {"admin": admin, "viewer": viewer, "stranger": stranger}


def _login(client, user):
    client.force_login(user)
    return client


def _finding(application) -> Discovery:
    run = DiscoveryRun.objects.create(
        application=application,
        window=timedelta(days=7),
        status="done",
        finished_at=timezone.now(),
        samples=2700,
        tested=77,
        candidates=77,
        discoveries=1,
        overall_regret=0.09,
    )
    return Discovery.objects.create(
        run=run,
        application=application,
        rule='channel == "api" and user_tier == "enterprise"',
        kind="cross",
        traffic_share=0.03,
        regret=0.35,
        regret_low=0.3,
        regret_high=0.4,
        complement_regret=0.08,
        excess_regret=0.27,
        p_value=1e-9,
        adjusted_p_value=1e-8,
        n=800,
        n_eff=700.0,
        impact=0.0081,
        significant=True,
        rank=1,
    )


def test_pages_need_a_login(client, owner):
    for url in (f"/apps/{owner.application.slug}/discoveries/", f"/apps/{owner.application.slug}/eval-sets/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_pages_are_404_for_non_members(client, owner, people):
    _login(client, people["stranger"])
    eval_set, _ = evalset_create(
        application=owner.application, name="e", data=b"routed_to,correct\ncheap,1\n", fmt="csv"
    )
    slug = owner.application.slug
    for url in (f"/apps/{slug}/discoveries/", f"/apps/{slug}/eval-sets/", f"/apps/{slug}/eval-sets/{eval_set.id}/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/apps/{slug}/discoveries/run/").status_code == 404


def test_empty_pages_say_what_to_do_next(client, owner, people):
    _login(client, people["viewer"])
    slug = owner.application.slug
    discoveries = client.get(f"/apps/{slug}/discoveries/").content.decode()
    assert "No discovery run yet" in discoveries and "judged shadow samples" in discoveries
    assert "Run discovery now" not in discoveries  # viewers cannot start one
    eval_sets = client.get(f"/apps/{slug}/eval-sets/").content.decode()
    assert "No eval set yet" in eval_sets and "Uploading needs the admin role" in eval_sets


def test_a_viewer_sees_findings_but_cannot_run_or_promote(client, owner, people, enqueued):
    finding = _finding(owner.application)
    _login(client, people["viewer"])
    slug = owner.application.slug
    page = client.get(f"/apps/{slug}/discoveries/").content.decode()
    assert (
        "channel == &quot;api&quot; and user_tier == &quot;enterprise&quot;" in page
        and "Make this a segment" not in page
    )
    assert client.post(f"/apps/{slug}/discoveries/run/").status_code == 403
    assert client.post(f"/apps/{slug}/discoveries/{finding.id}/make-segment/").status_code == 403
    assert not Segment.objects.exists() and not DiscoveryRun.objects.filter(status="pending").exists()


def test_an_admin_runs_discovery_and_makes_a_segment(client, owner, people, enqueued, monkeypatch):
    from segments import tasks

    monkeypatch.setattr(tasks.discovery_run_task, "delay", lambda run_id: None)
    finding = _finding(owner.application)
    _login(client, people["admin"])
    slug = owner.application.slug
    assert "Run discovery now" in client.get(f"/apps/{slug}/discoveries/").content.decode()
    response = client.post(f"/apps/{slug}/discoveries/run/")
    assert response.status_code == 302
    assert DiscoveryRun.objects.filter(application=owner.application, status="pending", trigger="page").count() == 1
    response = client.post(f"/apps/{slug}/discoveries/{finding.id}/make-segment/")
    assert response.status_code == 302
    segment = Segment.objects.get(application=owner.application)
    assert (segment.slug, segment.rule) == ("channel-api-user-tier-enterprise", finding.rule)


def test_an_admin_uploads_an_eval_set_and_sees_the_comparison(client, owner, people):
    _login(client, people["admin"])
    slug = owner.application.slug
    upload = SimpleUploadedFile(
        "offline.jsonl", b'{"attributes": {"channel": "api"}, "routed_to": "cheap", "correct": true}\nnope\n'
    )
    response = client.post(f"/apps/{slug}/eval-sets/", {"file": upload, "name": "offline"})
    eval_set = EvalSet.objects.get(application=owner.application)
    assert response.status_code == 302 and response["Location"] == f"/apps/{slug}/eval-sets/{eval_set.id}/"
    assert (eval_set.items_count, eval_set.rejected_count) == (1, 1)
    page = client.get(response["Location"]).content.decode()
    assert "offline 100 %; no traffic in the window to compare with" in page
    assert "No traffic in the last 7d" in page and "line 2: not valid JSON" in page
    bad = client.get(f"{response['Location']}?dimension=prompt_tokens").content.decode()
    assert "is a decision field" in bad


def test_a_viewer_cannot_upload(client, owner, people):
    _login(client, people["viewer"])
    upload = SimpleUploadedFile("e.csv", b"routed_to,correct\ncheap,1\n")
    assert client.post(f"/apps/{owner.application.slug}/eval-sets/", {"file": upload}).status_code == 403
    assert not EvalSet.objects.exists()


def test_an_upload_without_good_rows_shows_the_errors(client, owner, people):
    _login(client, people["admin"])
    upload = SimpleUploadedFile("e.csv", b"routed_to,correct\ncheap,maybe\n")
    page = client.post(f"/apps/{owner.application.slug}/eval-sets/", {"file": upload}).content.decode()
    assert "No valid row; 1 rejected." in page and "line 2: correct: expected true/false, got &#x27;maybe&#x27;" in page
    assert not EvalSet.objects.exists()
