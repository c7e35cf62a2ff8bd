"""Human review: a blind A/B queue over judged pairs, to measure how far the judge can be trusted."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from router_ops.applications.models import Application
from router_ops.shadow.models import ShadowSample


class ReviewItem(models.Model):
    """A judged pair put in front of people. Which answer is shown as "A" is drawn at
    random once (`primary_is_a`), so a reviewer cannot tell the cheap answer by its place."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    sample = models.OneToOneField(ShadowSample, on_delete=models.CASCADE, related_name="review_item")
    primary_is_a = models.BooleanField()
    # The stratum that queued it: a segment id, or 0 for "all traffic".
    stratum = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        # Queue filling counts open items per stratum.
        indexes = [models.Index(fields=["application", "stratum"], name="reviewitem_app_stratum")]

    def __str__(self) -> str:
        return f"review of sample {self.sample_id}"


class ReviewLabel(models.Model):
    VERDICTS = [(v, v) for v in ("primary_better", "equivalent", "shadow_better")]

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="labels")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # What the reviewer saw and chose ("a", "b", "equivalent") and what it means for the pair.
    choice = models.CharField(max_length=16)
    verdict = models.CharField(max_length=16, choices=VERDICTS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="reviewlabel_one_per_reviewer")]

    def __str__(self) -> str:
        return f"{self.reviewer} on item {self.item_id}: {self.verdict}"
