"""Eval set vs traffic (issue 3, item 5): the comparison by hand, upload over the API, permissions."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from router_ops.ingest.models import Decision
from router_ops.rollouts.models import RouterVersion
from segments import evalset_parse
from segments.evalsets import evalset_compare, evalset_create
from segments.models import EvalItem, EvalSet
from segments.services import segment_create

pytestmark = pytest.mark.django_db

Z95 = 1.959963984540054


def _items(channel: str, total: int, correct: int) -> list[str]:
    return [
        json.dumps({"attributes": {"channel": channel}, "routed_to": "cheap", "correct": i < correct})
        for i in range(total)
    ]


def _traffic(
    application, counts: dict[str, int], segment_ids: dict[str, list[int]] | None = None, *, age=timedelta(hours=1)
):
    version, _ = RouterVersion.objects.get_or_create(application=application, name="v1")
    now = timezone.now()
    Decision.objects.bulk_create(
        [
            Decision(
                application=application,
                decision_id=f"{channel}-{i}-{age}",
                occurred_at=now - age,
                router_version=version,
                unit_id="u",
                routed_to="cheap",
                attributes={"channel": channel},
                segment_ids=(segment_ids or {}).get(channel, []),
            )
            for channel, n in counts.items()
            for i in range(n)
        ]
    )


@pytest.fixture
def known_mix(owner, enqueued):
    """Eval set: 80 `ui` items (76 right) and 20 `api` items (14 right).
    Traffic: 50 ui, 40 api and 10 mobile decisions (mobile: no eval item at all)."""
    application = owner.application
    api = segment_create(application=application, slug="api", rule='channel == "api"')
    mobile = segment_create(application=application, slug="mobile", rule='channel == "mobile"')
    long_prompts = segment_create(application=application, slug="long", rule="prompt_tokens > 1000")
    data = "\n".join(_items("ui", 80, 76) + _items("api", 20, 14)).encode()
    eval_set, report = evalset_create(application=application, name="offline-v3", data=data, fmt="jsonl")
    _traffic(application, {"ui": 50, "api": 40, "mobile": 10}, {"api": [api.id], "mobile": [mobile.id]})
    _traffic(application, {"ui": 500}, age=timedelta(days=9))  # outside the 7-day window
    return eval_set, {"api": api, "mobile": mobile, "long": long_prompts}


def test_psi_and_reweighted_accuracy_match_the_hand_computation(known_mix):
    eval_set, _ = known_mix
    comparison = evalset_compare(eval_set=eval_set, window=timedelta(days=7), dimension="channel")

    # Shares. Eval: ui 80/100 = 0.8, api 20/100 = 0.2, mobile 0 (raised to ε = 1e-4 for the log).
    # Traffic: ui 50/100 = 0.5, api 40/100 = 0.4, mobile 10/100 = 0.1.
    # PSI = Σ (a − e) ln(a / e)
    #     = (0.5 − 0.8) ln(0.5/0.8) + (0.4 − 0.2) ln(0.4/0.2) + (0.1 − 0.0001) ln(0.1/0.0001)
    #     = 0.1410011 + 0.1386294 + 0.6900848 = 0.9697153  → "major" (≥ 0.25)
    psi = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.4 - 0.2) * math.log(0.4 / 0.2) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert psi == pytest.approx(0.9697153, abs=1e-6)
    (channel,) = comparison.dimensions
    assert channel.psi == pytest.approx(psi, rel=1e-12)
    assert channel.psi_level == "major"
    rows = {c.value: c for c in channel.categories}
    assert [(v, rows[v].eval_share, rows[v].traffic_share) for v in ("ui", "api", "mobile")] == [
        ("ui", 0.8, 0.5),
        ("api", 0.2, 0.4),
        ("mobile", 0.0, 0.1),
    ]
    assert channel.under_covered == ["mobile"]

    # Offline accuracy: (76 + 14) / 100 = 0.90.
    # Re-weighted: accuracy per value, ui 76/80 = 0.95, api 14/20 = 0.70; traffic the eval set covers:
    # ui + api = 0.9, weights W_ui = 0.5/0.9 = 5/9, W_api = 0.4/0.9 = 4/9.
    # estimate = 5/9 · 0.95 + 4/9 · 0.70 = (4.75 + 2.8) / 9 = 0.838889
    # variance = W_ui² · 0.95·0.05/80 + W_api² · 0.70·0.30/20 = (25/81)·0.000593750 + (16/81)·0.0105 = 0.00225733
    # n* = p(1 − p)/V = 0.838889 · 0.161111 / 0.00225733 = 59.8740 (under n = 100, so kept)
    # Wilson on n*: centre = (p + z²/2n*)/(1 + z²/n*), half = z √(p(1−p)/n* + z²/4n*²)/(1 + z²/n*)
    # mobile (0.1 of traffic) has no eval item: low = 0.9 · low_cov, high = 0.9 · high_cov + 0.1.
    p = (5 / 9) * 0.95 + (4 / 9) * 0.70
    variance = (25 / 81) * 0.95 * 0.05 / 80 + (16 / 81) * 0.70 * 0.30 / 20
    n_star = p * (1 - p) / variance
    assert (p, variance, n_star) == pytest.approx((0.838889, 0.00225733, 59.8740), rel=1e-5)
    denominator = 1 + Z95**2 / n_star
    centre = (p + Z95**2 / (2 * n_star)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n_star + Z95**2 / (4 * n_star**2)) / denominator
    reweighted = channel.reweighted
    assert reweighted.estimate == pytest.approx(p, rel=1e-12)
    assert reweighted.low == pytest.approx(0.9 * (centre - half), rel=1e-9)
    assert reweighted.high == pytest.approx(0.9 * (centre + half) + 0.1, rel=1e-9)
    assert reweighted.covered_share == pytest.approx(0.9)
    assert reweighted.uncovered == pytest.approx({"mobile": 0.1})

    assert comparison.offline_accuracy == 0.9
    assert comparison.traffic_decisions == 100
    half_points = round(100 * (reweighted.high - reweighted.low) / 2)
    assert comparison.headline == f"offline 90 %; on your traffic's mix 84 % ± {half_points} (by channel)"


def test_segments_side_by_side_and_the_barely_covered_ones(known_mix):
    eval_set, segments = known_mix
    comparison = evalset_compare(eval_set=eval_set, window=timedelta(days=7))
    rows = {s.slug: s for s in comparison.segments}
    api, mobile, long_prompts = rows["api"], rows["mobile"], rows["long"]
    assert (api.traffic_share, api.eval_share, api.eval_count, api.eval_accuracy, api.under_covered) == (
        0.4,
        0.2,
        20,
        0.7,
        False,
    )
    assert (mobile.traffic_share, mobile.eval_share, mobile.under_covered) == (0.1, 0.0, True)
    # Eval items have no prompt_tokens: that segment cannot be measured on them (and is not flagged).
    assert (long_prompts.evaluable, long_prompts.eval_share, long_prompts.under_covered) == (False, None, False)
    # No dimension named or declared: the eval set's own attributes.
    assert [d.path for d in comparison.dimensions] == ["channel"]


def test_an_eval_set_without_traffic_says_so(owner):
    eval_set, _ = evalset_create(
        application=owner.application, name="e", data="\n".join(_items("ui", 4, 3)).encode(), fmt="jsonl"
    )
    comparison = evalset_compare(eval_set=eval_set, window=timedelta(days=7))
    assert comparison.traffic_decisions == 0
    assert comparison.headline == "offline 75 %; no traffic in the window to compare with"
    assert comparison.dimensions[0].psi is None


# --- API --------------------------------------------------------------------------------------


GOOD_AND_BAD = (
    '{"attributes": {"channel": "api"}, "routed_to": "cheap", "correct": true}\n'
    '{"attributes": {"channel": "api"}, "routed_to": "cheap", "correct": "maybe"}\n'
    "{broken\n"
    '{"attributes": {"channel": "ui"}, "routed_to": "strong", "correct": 0}\n'
)


def test_upload_jsonl_as_a_raw_body_keeps_good_rows_and_reports_bad_lines(owner):
    response = owner.client("admin").post(
        "/api/v1/eval-sets?format=jsonl&name=offline-v3", GOOD_AND_BAD, content_type="application/x-ndjson"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["format"], body["items"], body["rejected"], body["offline_accuracy"]) == (
        "offline-v3",
        "jsonl",
        2,
        2,
        0.5,
    )
    assert body["errors"] == [
        "line 2: correct: expected true/false, got 'maybe'",
        "line 3: not valid JSON: Expecting property name enclosed in double quotes at column 2",
    ]
    assert list(EvalItem.objects.filter(eval_set_id=body["id"]).values_list("line", "routed_to", "correct")) == [
        (1, "cheap", True),
        (4, "strong", False),
    ]


def test_upload_csv_as_a_multipart_file_takes_the_format_from_the_name(owner):
    upload = SimpleUploadedFile(
        "eval.csv", b"attr.channel,routed_to,correct\napi,cheap,1\nui,strong,nope\n", content_type="text/csv"
    )
    response = owner.client("admin").post("/api/v1/eval-sets/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["format"], body["items"], body["rejected"]) == ("eval.csv", "csv", 1, 1)
    assert body["errors"] == ["line 3: correct: expected true/false, got 'nope'"]


@pytest.mark.parametrize(
    ("body", "content_type", "query", "field", "message"),
    [
        ("", "text/csv", "", "file", "The file is empty."),
        (
            "prompt,correct\nx,true\n",
            "text/csv",
            "",
            "file",
            "line 1: missing column 'routed_to' (the header has: prompt, correct).",
        ),
        (
            "{broken\n[1]\n",
            "application/x-ndjson",
            "",
            "rows",
            "line 1: not valid JSON: Expecting property name enclosed in double quotes at column 2",
        ),
        ("a,b\n", "text/plain", "", "format", "Say which format: format=jsonl or format=csv."),
        ("a,b\n", "text/plain", "?format=xml", "format", "Say which format: format=jsonl or format=csv (got 'xml')."),
    ],
)
def test_bad_uploads_get_a_specific_400(owner, body, content_type, query, field, message):
    response = owner.client("admin").post(f"/api/v1/eval-sets{query}", body, content_type=content_type)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["details"][field][0] == message
    assert not EvalSet.objects.exists()


def test_a_too_large_upload_is_413(owner, monkeypatch):
    import segments.views

    monkeypatch.setattr(segments.views, "MAX_EVAL_BYTES", 64)
    response = owner.client("admin").post(
        "/api/v1/eval-sets?format=csv", "routed_to,correct\n" + "cheap,1\n" * 20, content_type="text/csv"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    upload = SimpleUploadedFile("e.csv", b"routed_to,correct\n" + b"cheap,1\n" * 20)
    response = owner.client("admin").post("/api/v1/eval-sets", {"file": upload}, format="multipart")
    assert response.status_code == 413
    monkeypatch.setattr(segments.views, "MAX_EVAL_BYTES", 10_000)
    monkeypatch.setattr(evalset_parse, "MAX_ROWS", 5)
    response = owner.client("admin").post(
        "/api/v1/eval-sets?format=csv", "routed_to,correct\n" + "cheap,1\n" * 6, content_type="text/csv"
    )
    assert response.status_code == 413 and "More than 5 rows" in response.json()["error"]["message"]


def test_compare_over_the_api(known_mix, owner):
    eval_set, _ = known_mix
    response = owner.client("read").get(f"/api/v1/eval-sets/{eval_set.id}/compare/?dimension=channel&window=7d")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["traffic_decisions"] == 100 and body["offline_accuracy"] == 0.9
    (channel,) = body["dimensions"]
    assert channel["psi"] == pytest.approx(0.9697153, abs=1e-6) and channel["psi_level"] == "major"
    assert channel["reweighted_accuracy"]["estimate"] == pytest.approx(0.838889, abs=1e-6)
    assert channel["under_covered"] == ["mobile"]
    assert [s["slug"] for s in body["segments"] if s["under_covered"]] == ["mobile"]
    bad = owner.client("read").get(f"/api/v1/eval-sets/{eval_set.id}/compare?dimension=prompt_tokens")
    assert bad.status_code == 400 and "decision field" in bad.json()["error"]["details"]["dimension"][0]
    assert owner.client("read").get(f"/api/v1/eval-sets/{eval_set.id}/compare?window=forever").status_code == 400


# --- permissions ---------------------------------------------------------------------------------


def _endpoints(eval_set_id: int, discovery_id: int):
    upload = ("post", "/api/v1/eval-sets?format=csv", "routed_to,correct\ncheap,1\n", "admin")
    return [
        ("get", "/api/v1/eval-sets/", None, "read"),
        upload,
        ("get", f"/api/v1/eval-sets/{eval_set_id}", None, "read"),
        ("delete", f"/api/v1/eval-sets/{eval_set_id}/", None, "admin"),
        ("get", f"/api/v1/eval-sets/{eval_set_id}/compare", None, "read"),
        ("get", "/api/v1/discoveries", None, "read"),
        ("post", "/api/v1/discoveries/run/", None, "admin"),
        ("get", f"/api/v1/discoveries/{discovery_id}/", None, "read"),
        ("post", f"/api/v1/discoveries/{discovery_id}/promote", None, "admin"),
    ]


def _call(client: APIClient, method: str, url: str, body):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, content_type="text/csv")


@pytest.fixture
def objects(owner):
    from segments.models import Discovery, DiscoveryRun

    eval_set, _ = evalset_create(
        application=owner.application, name="e", data=b"routed_to,correct\ncheap,1\n", fmt="csv"
    )
    run = DiscoveryRun.objects.create(
        application=owner.application, window=timedelta(days=7), status="done", finished_at=timezone.now()
    )
    discovery = Discovery.objects.create(
        run=run,
        application=owner.application,
        rule='channel == "api"',
        kind="single",
        traffic_share=0.1,
        regret=0.3,
        regret_low=0.2,
        regret_high=0.4,
        complement_regret=0.08,
        excess_regret=0.22,
        p_value=1e-5,
        adjusted_p_value=1e-4,
        n=200,
        n_eff=150.0,
        impact=0.022,
        significant=True,
        rank=1,
    )
    return eval_set, discovery


def test_every_endpoint_refuses_a_missing_key(objects):
    eval_set, discovery = objects
    for method, url, body, _ in _endpoints(eval_set.id, discovery.id):
        response = _call(APIClient(), method, url, body)
        assert response.status_code == 401, (method, url)


def test_every_endpoint_refuses_the_wrong_scope(owner, objects, enqueued):
    eval_set, discovery = objects
    for method, url, body, scope in _endpoints(eval_set.id, discovery.id):
        wrong = "read" if scope == "admin" else "ingest"
        response = _call(owner.client(wrong), method, url, body)
        assert response.status_code == 403, (method, url)
        assert response.json()["error"]["code"] == "permission_denied"
    assert (
        EvalSet.objects.count() == 1 and not discovery.__class__.objects.filter(promoted_segment__isnull=False).exists()
    )


def test_every_endpoint_refuses_another_applications_key_naming_this_one(owner, outsider, objects):
    eval_set, discovery = objects
    for method, url, body, _ in _endpoints(eval_set.id, discovery.id):
        sep = "&" if "?" in url else "?"
        response = _call(
            outsider.client("ingest,read,admin"), method, f"{url}{sep}application={owner.application.slug}", body
        )
        assert response.status_code == 403, (method, url)


def test_another_applications_objects_are_404(outsider, objects, enqueued):
    eval_set, discovery = objects
    for method, url, body, _ in _endpoints(eval_set.id, discovery.id):
        if not any(str(pk) in url for pk in (eval_set.id, discovery.id)):
            continue
        response = _call(outsider.client("ingest,read,admin"), method, url, body)
        assert response.status_code == 404, (method, url)
    assert EvalSet.objects.filter(id=eval_set.id).exists()
    discovery.refresh_from_db()
    assert discovery.promoted_segment_id is None
