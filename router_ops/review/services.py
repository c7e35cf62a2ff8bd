"""Filling the blind review queue and recording people's labels."""

from __future__ import annotations

import random

from django.db import IntegrityError, transaction

from router_ops.applications.models import Application
from router_ops.review.models import ReviewItem, ReviewLabel
from router_ops.shadow.models import ShadowSample

CHOICES = ("a", "b", "equivalent")


class ReviewError(ValueError):
    pass


def review_queue_fill(
    *, application: Application, per_stratum: int = 20, strata: list[int] | None = None, seed: int | None = None
) -> int:
    """Queue judged pairs for review, stratified: up to `per_stratum` open items for all
    traffic (stratum 0) and for each given segment, so that rare segments get reviewed too.

    1. For each stratum, count its open items (queued, not labelled by anyone yet).
    2. Top it up with judged pairs not queued yet, drawn at random (ORDER BY random()).
    3. Draw, once per item, whether the primary answer is shown as A.
    Returns the number of items added.
    """
    from segments.models import Segment

    rng = random.Random(seed)
    if strata is None:
        strata = [0, *Segment.objects.filter(application=application, active=True).values_list("id", flat=True)]
    added = 0
    for stratum in strata:
        open_items = ReviewItem.objects.filter(application=application, stratum=stratum, labels__isnull=True).count()
        need = per_stratum - open_items
        if need <= 0:
            continue
        candidates = ShadowSample.objects.filter(
            application=application, judge_status=ShadowSample.DONE, review_item__isnull=True
        ).exclude(verdict="")
        if stratum:
            candidates = candidates.filter(segment_ids__contains=[stratum])
        ids = list(candidates.order_by("?").values_list("id", flat=True)[:need])
        items = [
            ReviewItem(application=application, sample_id=sample_id, primary_is_a=rng.random() < 0.5, stratum=stratum)
            for sample_id in ids
        ]
        # A pair drawn for two strata at once is queued once (one-to-one on sample).
        added += len(ReviewItem.objects.bulk_create(items, ignore_conflicts=True))
    return added


def review_verdict(*, item: ReviewItem, choice: str) -> str:
    """The pair's verdict (primary vs shadow) for what the reviewer chose on screen."""
    if choice not in CHOICES:
        raise ReviewError(f"choice must be one of {', '.join(CHOICES)}")
    if choice == "equivalent":
        return "equivalent"
    primary_chosen = (choice == "a") == item.primary_is_a
    return "primary_better" if primary_chosen else "shadow_better"


def review_label(*, item: ReviewItem, reviewer, choice: str) -> ReviewLabel:
    """Record one person's label of an item; a second label by the same person is refused."""
    verdict = review_verdict(item=item, choice=choice)
    try:
        with transaction.atomic():
            return ReviewLabel.objects.create(item=item, reviewer=reviewer, choice=choice, verdict=verdict)
    except IntegrityError:
        raise ReviewError("You have already labelled this pair.") from None
