"""Reads for the review queue and judge–human agreement."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Sum

from router_ops.applications.models import Application
from router_ops.judging.models import Judgment
from router_ops.review.models import ReviewItem, ReviewLabel
from router_ops.rollups.models import HourlyRollup
from router_ops.shadow.models import ShadowSample
from router_ops.stats.agreement import cohens_kappa_from_labels, rogan_gladen
from router_ops.stats.weighted import WeightedRate, hajek_rate_from_sums

VERDICTS = ("primary_better", "equivalent", "shadow_better")
MIN_PAIRS = 5  # below this, κ and the correction are not shown


def review_next(*, application: Application, reviewer) -> ReviewItem | None:
    """The oldest queued item this person has not labelled, with its pair loaded (1 query)."""
    return (
        ReviewItem.objects.filter(application=application)
        .exclude(labels__reviewer=reviewer)
        .select_related("sample__decision", "sample__run")
        .order_by("id")
        .first()
    )


def review_progress(*, application: Application, reviewer) -> dict:
    queued = ReviewItem.objects.filter(application=application).count()
    mine = ReviewLabel.objects.filter(item__application=application, reviewer=reviewer).count()
    return {"queued": queued, "labelled_by_you": mine, "left_for_you": queued - mine}


@dataclass
class AgreementRow:
    judge: str
    prompt_version: str
    segment: str
    pairs: int
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    observed_regret: float | None
    corrected_regret: float | None
    corrected_low: float | None
    corrected_high: float | None
    sensitivity: str
    specificity: str


def agreement_table(*, application: Application) -> list[AgreementRow]:
    """Judge–human agreement per (judge, rubric version) × (all traffic, each segment).

    - κ: Cohen's κ between the judge's verdict and the people's verdict, over the
      three verdict categories, on the labelled pairs.
    - Corrected regret: the judge's traffic-weighted regret rate (cheap-routed pairs)
      corrected for the judge's error rates measured against people
      (Rogan & Gladen 1978), with its interval.
    Three queries: segment names, the labelled pairs with their judgments, the rollup sums.
    """
    from segments.models import Segment

    names = dict(Segment.objects.filter(application=application).values_list("id", "slug"))
    labelled = list(
        Judgment.objects.filter(
            application=application, status=Judgment.OK, sample__review_item__labels__isnull=False
        ).values(
            "judge__name",
            "prompt_version",
            "verdict",
            "sample__direction",
            "sample__segment_ids",
            "sample__review_item__labels__verdict",
        )
    )
    # The judge's observed regret per stratum, over all time, from the rollups (cheap-routed rows).
    observed = {
        row["segment_id"]: hajek_rate_from_sums(
            n=row["judged"],
            sum_w=row["sum_w"],
            sum_w2=row["sum_w2"],
            sum_wy=row["sum_w_bad"],
            sum_w2y=row["sum_w2_bad"],
        )
        for row in HourlyRollup.objects.filter(application=application, tier="cheap")
        .values("segment_id")
        .annotate(
            judged=Sum("judged"),
            sum_w=Sum("sum_w"),
            sum_w2=Sum("sum_w2"),
            sum_w_bad=Sum("sum_w_bad"),
            sum_w2_bad=Sum("sum_w2_bad"),
        )
    }
    groups: dict[tuple[str, str, int], list[tuple[str, str, str]]] = defaultdict(list)
    for row in labelled:
        for stratum in (0, *row["sample__segment_ids"]):
            groups[(row["judge__name"], row["prompt_version"], stratum)].append(
                (row["verdict"], row["sample__review_item__labels__verdict"], row["sample__direction"])
            )
    rows = []
    for (judge, version, stratum), pairs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        if stratum and stratum not in names:
            continue
        row = AgreementRow(
            judge, version, names.get(stratum, "all"), len(pairs), None, None, None, None, None, None, None, "", ""
        )
        if len(pairs) >= MIN_PAIRS:
            kappa = cohens_kappa_from_labels([p[0] for p in pairs], [p[1] for p in pairs], categories=VERDICTS)
            row.kappa, row.kappa_low, row.kappa_high = kappa.kappa, kappa.low, kappa.high
        _corrected_regret(row, pairs, observed.get(stratum))
        rows.append(row)
    return rows


def _corrected_regret(row: AgreementRow, pairs, observed: WeightedRate | None) -> None:
    up = [(judge, human) for judge, human, direction in pairs if direction == ShadowSample.DIRECTION_UP]
    if observed is None or observed.estimate is None:
        return
    row.observed_regret = observed.estimate
    positives = [judge == "shadow_better" for judge, human in up if human == "shadow_better"]
    negatives = [judge != "shadow_better" for judge, human in up if human != "shadow_better"]
    row.sensitivity = f"{sum(positives)}/{len(positives)}"
    row.specificity = f"{sum(negatives)}/{len(negatives)}"
    if len(positives) < MIN_PAIRS or len(negatives) < MIN_PAIRS:
        return
    corrected = rogan_gladen(
        observed.estimate,
        observed.variance or 0.0,
        sensitivity_hits=sum(positives),
        sensitivity_n=len(positives),
        specificity_hits=sum(negatives),
        specificity_n=len(negatives),
    )
    row.corrected_regret, row.corrected_low, row.corrected_high = corrected.estimate, corrected.low, corrected.high
