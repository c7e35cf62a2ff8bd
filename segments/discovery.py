"""Discovery of under-performing slices: the Django side (reads, runs, promotion).

The statistics are in segments/slice_scan.py (pure). This module fetches the
judged sample through ONE interface, `discovery_observations`, runs the scan,
and stores each run's findings as rows, so every number on the page can be
traced to the run and the samples it saw.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from router_ops.applications.models import Application
from router_ops.shadow.models import ShadowSample
from segments import dsl
from segments.models import Discovery, DiscoveryRun, Segment
from segments.predicate import compile_predicate
from segments.selectors import dimension_slices
from segments.services import segment_create
from segments.slice_scan import Candidate, ScanResult, scan_slices

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(days=7)
MAX_SAMPLES = 200_000
# A run still "running" after this was lost with its worker; the sweep fails it so a new one can start.
STALE_RUN_AFTER = timedelta(hours=1)
RUNS_KEPT = 48


@dataclass(frozen=True)
class Observations:
    """Judged cheap-routed samples of one application: regret outcome y (1 = the strong
    answer was better), inclusion probability π, and the decision each came from
    (a dict with `attributes` and the decision fields a rule may name)."""

    outcomes: np.ndarray
    inclusion_probabilities: np.ndarray
    records: list[dict]

    @property
    def attributes(self) -> list[dict]:
        return [record["attributes"] for record in self.records]

    def __len__(self) -> int:
        return int(self.outcomes.size)


_RECORD_FIELDS = (
    "decision__attributes",
    "decision__routed_to",
    "decision__router_version__name",
    "decision__model",
    "decision__prompt_tokens",
    "decision__completion_tokens",
    "decision__latency_ms",
    "decision__router_score",
    "decision__cost_usd",
    "decision__unit_id",
)


def discovery_observations(
    *, application: Application, window: timedelta = DEFAULT_WINDOW, now: datetime | None = None
) -> Observations:
    """The judged sample discovery tests: shadow samples of cheap-routed decisions that
    occurred in [now − window, now) and carry a verdict. Regret = verdict shadow_better.

    Until real judging runs, tests and the demo write the simulator's labelled outcomes
    as ShadowSample verdicts and come through here too.
    """
    until = now or timezone.now()
    rows = (
        ShadowSample.objects.filter(
            application=application,
            direction=ShadowSample.DIRECTION_UP,
            decision__occurred_at__gte=until - window,
            decision__occurred_at__lt=until,
        )
        .exclude(verdict="")
        .order_by("id")
        .values_list("verdict", "inclusion_probability", *_RECORD_FIELDS)[:MAX_SAMPLES]
    )
    outcomes, probabilities, records = [], [], []
    names = [f.removeprefix("decision__").replace("router_version__name", "router_version") for f in _RECORD_FIELDS]
    for verdict, pi, *fields in rows:
        outcomes.append(1.0 if verdict == "shadow_better" else 0.0)
        probabilities.append(pi)
        record = dict(zip(names, fields, strict=True))
        if not isinstance(record["attributes"], dict):
            record["attributes"] = {}
        records.append(record)
    return Observations(np.array(outcomes, dtype=float), np.array(probabilities, dtype=float), records)


def _dimension_candidates(
    application: Application, window: timedelta, now: datetime, records: list[dict]
) -> list[Candidate]:
    """The application's declared dimensions as single slices over the sample (bucketed
    numeric fields such as prompt_tokens are slices only these can give)."""
    out = []
    for dimension in dimension_slices(application=application, window=window, now=now):
        for item in dimension.slices:
            matches = compile_predicate(item.rule)
            mask = np.fromiter((bool(matches(r)) for r in records), dtype=bool, count=len(records))
            out.append(
                Candidate(rule=item.rule, label=item.label, group=dimension.path, mask=mask, node=dsl.parse(item.rule))
            )
    return out


def discovery_scan(
    *,
    application: Application,
    window: timedelta = DEFAULT_WINDOW,
    now: datetime | None = None,
    q: float = 0.05,
    min_share: float = 0.01,
    min_n_eff: float = 30.0,
) -> tuple[Observations, ScanResult]:
    """Fetch the observations and scan them (no writes)."""
    until = now or timezone.now()
    observations = discovery_observations(application=application, window=window, now=until)
    extra = _dimension_candidates(application, window, until, observations.records) if len(observations) else []
    result = scan_slices(
        observations.outcomes,
        observations.inclusion_probabilities,
        observations.attributes,
        extra_singles=extra,
        q=q,
        min_share=min_share,
        min_n_eff=min_n_eff,
    )
    return observations, result


# --- runs ------------------------------------------------------------------------------------


def discovery_run_request(
    *,
    application: Application,
    trigger: str = "api",
    window: timedelta = DEFAULT_WINDOW,
    q: float = 0.05,
    min_share: float = 0.01,
    min_n_eff: float | None = None,
) -> tuple[DiscoveryRun, bool]:
    """Queue a run (once committed), or return the open one. Returns (run, created)."""
    run = DiscoveryRun(
        application=application,
        trigger=trigger,
        window=window,
        q=q,
        min_share=min_share,
        min_n_eff=float(min_n_eff if min_n_eff is not None else max(1, application.min_effective_samples)),
    )
    run.full_clean(exclude=["application"])
    try:
        with transaction.atomic():
            run.save()
            _enqueue(run.id)
    except IntegrityError:
        # discoveryrun_one_open_per_app: a run is already pending or running.
        open_run = DiscoveryRun.objects.filter(
            application=application, status__in=[DiscoveryRun.PENDING, DiscoveryRun.RUNNING]
        ).first()
        if open_run is None:
            raise
        return open_run, False
    return run, True


def _enqueue(run_id: int) -> None:
    from segments.tasks import discovery_run_task

    # robust: a broker outage must not fail the request; the sweep re-sends pending runs.
    transaction.on_commit(lambda: discovery_run_task.delay(run_id), robust=True)


def discovery_run(run_id: int, *, now: datetime | None = None) -> DiscoveryRun | None:
    """Run a pending discovery run.

    1. Claim: a conditional UPDATE pending → running; a second delivery finds the row
       claimed (or finished) and does nothing.
    2. Scan the judged sample of the window ending now (discovery_scan).
    3. Store every tested slice as a Discovery row and the run's summary, in one
       transaction; mark it done. On an error mark it failed with the reason.
    4. Keep the newest RUNS_KEPT runs of the application.
    """
    started = now or timezone.now()
    claimed = DiscoveryRun.objects.filter(id=run_id, status=DiscoveryRun.PENDING).update(
        status=DiscoveryRun.RUNNING, started_at=started, window_end=started
    )
    if not claimed:
        return DiscoveryRun.objects.filter(id=run_id).first()
    run = DiscoveryRun.objects.select_related("application").get(id=run_id)
    try:
        observations, result = discovery_scan(
            application=run.application,
            window=run.window,
            now=started,
            q=run.q,
            min_share=run.min_share,
            min_n_eff=run.min_n_eff,
        )
        with transaction.atomic():
            Discovery.objects.bulk_create(
                [
                    Discovery(
                        run=run,
                        application_id=run.application_id,
                        rule=f.rule,
                        kind=f.kind,
                        traffic_share=f.traffic_share,
                        regret=f.regret,
                        regret_low=f.regret_low,
                        regret_high=f.regret_high,
                        complement_regret=f.complement_regret,
                        excess_regret=f.excess_regret,
                        p_value=f.p_value,
                        adjusted_p_value=f.adjusted_p_value,
                        n=f.n,
                        n_eff=f.n_eff,
                        impact=f.impact,
                        significant=f.significant,
                        explained_by=f.explained_by,
                        rank=f.rank,
                    )
                    for f in result.findings
                ],
                batch_size=500,
            )
            DiscoveryRun.objects.filter(id=run.id).update(
                status=DiscoveryRun.DONE,
                finished_at=timezone.now(),
                samples=len(observations),
                n_eff=result.n_eff,
                overall_regret=result.overall_regret,
                candidates=result.candidates,
                tested=result.tested,
                discoveries=len(result.discoveries),
                error="",
            )
    except Exception as exc:
        DiscoveryRun.objects.filter(id=run_id).update(
            status=DiscoveryRun.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    _prune(run.application_id)
    return DiscoveryRun.objects.get(id=run_id)


def _prune(application_id: int) -> None:
    keep = list(
        DiscoveryRun.objects.filter(application_id=application_id)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)[:RUNS_KEPT]
    )
    DiscoveryRun.objects.filter(
        application_id=application_id, status__in=[DiscoveryRun.DONE, DiscoveryRun.FAILED]
    ).exclude(id__in=keep).delete()


def discovery_sweep(*, now: datetime | None = None) -> int:
    """Periodic (hourly): fail runs lost with their worker, re-send pending runs, and
    queue a scheduled run for every application with judged samples in the default
    window. Returns the number of runs queued or re-sent."""
    moment = now or timezone.now()
    DiscoveryRun.objects.filter(status=DiscoveryRun.RUNNING, started_at__lt=moment - STALE_RUN_AFTER).update(
        status=DiscoveryRun.FAILED, finished_at=moment, error="Lost: still running after an hour (worker stopped?)"
    )
    sent = 0
    for run_id in DiscoveryRun.objects.filter(status=DiscoveryRun.PENDING).values_list("id", flat=True)[:1000]:
        with transaction.atomic():
            _enqueue(run_id)
        sent += 1
    active = (
        ShadowSample.objects.filter(
            direction=ShadowSample.DIRECTION_UP, decision__occurred_at__gte=moment - DEFAULT_WINDOW
        )
        .exclude(verdict="")
        .values_list("application_id", flat=True)
        .distinct()
    )
    for application in Application.objects.filter(id__in=active).order_by("id"):
        _, created = discovery_run_request(application=application, trigger="schedule")
        sent += int(created)
    return sent


# --- reads and promotion --------------------------------------------------------------------------


def discovery_latest_run(*, application: Application) -> DiscoveryRun | None:
    return (
        DiscoveryRun.objects.filter(application=application, status=DiscoveryRun.DONE)
        .order_by("-finished_at", "-id")
        .first()
    )


def discovery_open_run(*, application: Application) -> DiscoveryRun | None:
    return DiscoveryRun.objects.filter(
        application=application, status__in=[DiscoveryRun.PENDING, DiscoveryRun.RUNNING]
    ).first()


def discovery_list(*, run: DiscoveryRun, include_all: bool = False) -> QuerySet[Discovery]:
    """A run's discoveries by rank (with `include_all`, then every other tested slice by adjusted p)."""
    rows = Discovery.objects.filter(run=run).select_related("promoted_segment")
    if not include_all:
        rows = rows.filter(significant=True)
    return rows.order_by("rank", "adjusted_p_value", "id")


def default_segment_slug(rule: str) -> str:
    """A readable slug from a rule: `channel == "api" and user_tier == "enterprise"`
    → `channel-api-user-tier-enterprise`."""
    words = [w for w in re.split(r"[^a-z0-9]+", rule.lower()) if w and w not in ("and", "attributes")]
    return "-".join(words)[:64].strip("-") or "discovered"


def discovery_promote(*, discovery: Discovery, slug: str = "", name: str = "") -> Segment:
    """ "Make this a segment": a Segment with the finding's rule (segment_create validates
    it and backfills membership), remembered on the finding."""
    segment = segment_create(
        application=discovery.application,
        slug=slug or default_segment_slug(discovery.rule),
        name=name or discovery.rule[:200],
        rule=discovery.rule,
    )
    Discovery.objects.filter(id=discovery.id).update(promoted_segment=segment)
    discovery.promoted_segment = segment
    return segment
