"""Human review: stratified blind queue, labels, judge–human agreement and corrected regret."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from router_ops.applications.services import membership_set
from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch
from router_ops.judging.models import Judge, Judgment
from router_ops.review.models import ReviewItem, ReviewLabel
from router_ops.review.selectors import agreement_table
from router_ops.review.services import ReviewError, review_label, review_queue_fill, review_verdict
from router_ops.rollups.services import rollup_refresh
from router_ops.shadow.models import ShadowRun, ShadowSample
from router_ops.stats.agreement import cohens_kappa_from_labels, rogan_gladen
from router_ops.stats.weighted import weighted_rate
from segments.models import Segment

pytestmark = pytest.mark.django_db


def _pairs(application, verdicts: list[str], *, segment: Segment | None = None, start: int = 0, pi: float = 0.5):
    """Judged cheap→strong pairs with the given judge verdicts (shadow answers stored)."""
    items = [
        {
            "decision_id": f"r-{start + i}",
            "occurred_at": "2026-11-24T10:00:00Z",
            "router_version": "v1",
            "unit_id": f"u{i}",
            "routed_to": "cheap",
            "prompt": f"question {start + i}",
            "response": f"cheap answer {start + i}",
        }
        for i in range(len(verdicts))
    ]
    decision_ingest_batch(application=application, items=items, sample=False)
    judge, _ = Judge.objects.get_or_create(
        application=application,
        name="llm",
        defaults={"kind": "pairwise_llm", "model": "sim-judge", "prompt_version": "pairwise-v1"},
    )
    samples = []
    for i, verdict in enumerate(verdicts):
        decision = Decision.objects.get(application=application, decision_id=f"r-{start + i}")
        if segment is not None:
            decision.segment_ids = [segment.id]
            decision.save(update_fields=["segment_ids"])
        sample = ShadowSample.objects.create(
            application=application,
            decision=decision,
            direction="cheap_to_strong",
            primary_tier="cheap",
            shadow_tier="strong",
            inclusion_probability=pi,
            reason="base",
            status="done",
            judge_status="done",
            verdict=verdict,
            materially_disagree=verdict != "equivalent",
            segment_ids=[segment.id] if segment else [],
        )
        ShadowRun.objects.create(
            sample=sample,
            model="strong",
            response=f"strong answer {start + i}",
            prompt_tokens=1,
            completion_tokens=1,
            cost_usd=0,
            latency_ms=1,
            attempts=1,
        )
        Judgment.objects.create(
            sample=sample,
            judge=judge,
            application=application,
            judge_kind="pairwise_llm",
            prompt_version="pairwise-v1",
            status="ok",
            verdict=verdict,
            materially_disagree=verdict != "equivalent",
        )
        samples.append(sample)
    return samples


@pytest.fixture
def reviewer(owner):
    user = get_user_model().objects.create_user("rita", password="review pass 123")
    membership_set(user=user, application=owner.application, role="viewer")
    return user


def test_the_queue_is_stratified_and_filled_once(owner):
    app = owner.application
    segment = Segment.objects.create(application=app, slug="rare", rule='tenant == "x"')
    _pairs(app, ["equivalent"] * 10)
    # Six in the segment: even if "all traffic" draws three of them, three remain for the segment.
    _pairs(app, ["shadow_better"] * 6, segment=segment, start=100)
    added = review_queue_fill(application=app, per_stratum=3, seed=1)
    in_segment = ReviewItem.objects.filter(stratum=segment.id)
    assert added == 6
    assert in_segment.count() == 3
    assert all(segment.id in item.sample.segment_ids for item in in_segment)
    assert review_queue_fill(application=app, per_stratum=3, seed=1) == 0  # already full


def test_the_verdict_follows_the_shuffled_sides(owner):
    (sample,) = _pairs(owner.application, ["equivalent"])
    shown_first = ReviewItem(application=owner.application, sample=sample, primary_is_a=True)
    shown_second = ReviewItem(application=owner.application, sample=sample, primary_is_a=False)
    assert review_verdict(item=shown_first, choice="a") == "primary_better"
    assert review_verdict(item=shown_second, choice="a") == "shadow_better"
    assert review_verdict(item=shown_second, choice="b") == "primary_better"
    assert review_verdict(item=shown_first, choice="equivalent") == "equivalent"
    with pytest.raises(ReviewError):
        review_verdict(item=shown_first, choice="c")


def test_a_person_labels_a_pair_once(owner, reviewer):
    (sample,) = _pairs(owner.application, ["equivalent"])
    item = ReviewItem.objects.create(application=owner.application, sample=sample, primary_is_a=False)
    review_label(item=item, reviewer=reviewer, choice="b")
    with pytest.raises(ReviewError):
        review_label(item=item, reviewer=reviewer, choice="a")
    assert list(ReviewLabel.objects.values_list("verdict", flat=True)) == ["primary_better"]


def test_agreement_and_corrected_regret_match_hand_computation(owner, reviewer):
    app = owner.application
    judge_says = ["shadow_better"] * 10 + ["equivalent"] * 10
    # People agree on 8 of the judge's 10 regrets and on 9 of its 10 non-regrets.
    people_say = ["shadow_better"] * 8 + ["equivalent"] * 2 + ["equivalent"] * 9 + ["shadow_better"]
    samples = _pairs(app, judge_says)
    for sample, human in zip(samples, people_say, strict=True):
        item = ReviewItem.objects.create(application=app, sample=sample, primary_is_a=True)
        review_label(item=item, reviewer=reviewer, choice="b" if human == "shadow_better" else "equivalent")
    rollup_refresh()
    (row,) = agreement_table(application=app)
    expected_kappa = cohens_kappa_from_labels(
        judge_says, people_say, categories=("primary_better", "equivalent", "shadow_better")
    )
    assert row.pairs == 20 and row.segment == "all"
    assert row.kappa == pytest.approx(expected_kappa.kappa)
    # Sensitivity: of the 9 pairs people call regret, the judge said regret on 8.
    # Specificity: of the 11 pairs people call not-regret, the judge said not-regret on 9.
    assert (row.sensitivity, row.specificity) == ("8/9", "9/11")
    observed = weighted_rate([v == "shadow_better" for v in judge_says], [0.5] * 20)
    assert row.observed_regret == pytest.approx(0.5)
    expected = rogan_gladen(
        0.5, observed.variance, sensitivity_hits=8, sensitivity_n=9, specificity_hits=9, specificity_n=11
    )
    # By hand: (0.5 + 9/11 − 1) / (8/9 + 9/11 − 1)
    assert expected.estimate == pytest.approx((0.5 + 9 / 11 - 1) / (8 / 9 + 9 / 11 - 1))
    assert row.corrected_regret == pytest.approx(expected.estimate)
    assert row.corrected_low == pytest.approx(expected.low)


class TestPages:
    def test_the_queue_shows_a_blind_pair_and_labels_it(self, owner, reviewer):
        (sample,) = _pairs(owner.application, ["equivalent"])
        item = ReviewItem.objects.create(application=owner.application, sample=sample, primary_is_a=False)
        client = Client()
        client.force_login(reviewer)
        page = client.get(f"/apps/{owner.application.slug}/review/")
        assert page.status_code == 200
        html = page.content.decode()
        assert html.index("strong answer 0") < html.index("cheap answer 0")  # primary shown as B
        assert "cheap" not in html.split("Answer A")[1].split("Answer B")[0].replace("cheap answer", "")
        response = client.post(f"/apps/{owner.application.slug}/review/{item.id}/label/", {"choice": "a"})
        assert response.status_code == 302
        assert ReviewLabel.objects.get().verdict == "shadow_better"

    def test_non_members_get_404_and_forms_need_csrf(self, owner, outsider, reviewer):
        (sample,) = _pairs(owner.application, ["equivalent"])
        item = ReviewItem.objects.create(application=owner.application, sample=sample, primary_is_a=True)
        stranger = get_user_model().objects.create_user("sam", password="x")
        membership_set(user=stranger, application=outsider.application, role="admin")
        client = Client()
        client.force_login(stranger)
        assert client.get(f"/apps/{owner.application.slug}/review/").status_code == 404
        csrf_client = Client(enforce_csrf_checks=True)
        csrf_client.force_login(reviewer)
        assert (
            csrf_client.post(f"/apps/{owner.application.slug}/review/{item.id}/label/", {"choice": "a"}).status_code
            == 403
        )
        assert not ReviewLabel.objects.exists()

    def test_the_empty_queue_says_what_to_do(self, owner, reviewer):
        client = Client()
        client.force_login(reviewer)
        html = client.get(f"/apps/{owner.application.slug}/review/").content.decode()
        assert "Nothing to review" in html and "Queue judged pairs" in html


class TestApi:
    def test_keys_can_read_the_blind_queue_but_not_label(self, owner):
        (sample,) = _pairs(owner.application, ["equivalent"])
        item = ReviewItem.objects.create(application=owner.application, sample=sample, primary_is_a=True)
        client = owner.client("read")
        body = client.get("/api/v1/review/").json()
        assert body == [
            {
                "id": item.id,
                "prompt": "question 0",
                "answer_a": "cheap answer 0",
                "answer_b": "strong answer 0",
                "labels": 0,
            }
        ]
        assert client.post(f"/api/v1/review/{item.id}/label/", {"choice": "a"}, format="json").status_code == 403

    def test_people_label_over_the_api(self, owner, reviewer):
        (sample,) = _pairs(owner.application, ["equivalent"])
        item = ReviewItem.objects.create(application=owner.application, sample=sample, primary_is_a=True)
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(reviewer)
        url = f"/api/v1/review/{item.id}/label/?application={owner.application.slug}"
        assert client.post(url, {"choice": "z"}, format="json").status_code == 400
        assert client.post(url, {"choice": "a"}, format="json").status_code == 201
        assert client.post(url, {"choice": "a"}, format="json").status_code == 400  # once per person
        assert ReviewLabel.objects.get().verdict == "primary_better"

    def test_another_applications_key_is_refused(self, owner, outsider):
        assert outsider.client("read").get(f"/api/v1/review/?application={owner.application.slug}").status_code == 403
