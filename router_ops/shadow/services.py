"""Writes of the shadow pipeline: the sampling policy, sampling at ingestion, the shadow call."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.ingest.validation import CleanDecision
from router_ops.privacy.services import text_redactor
from router_ops.shadow import budget, outbox, sampling, selectors
from router_ops.shadow.models import SamplingPolicy, SegmentDayCount, ShadowSample
from router_ops.shadow.providers import ProviderError, achat_complete, run_concurrently

logger = logging.getLogger(__name__)

# How long a process trusts its copy of an application's policy and quota rates.
# Ingestion reads them once per batch; a policy edit reaches every process within this.
STATE_TTL_S = 5.0

# -- the sampling policy ----------------------------------------------------------------


def sampling_policy_get(*, application: Application) -> SamplingPolicy:
    policy, _ = SamplingPolicy.objects.get_or_create(application=application)
    return policy


def sampling_policy_update(*, application: Application, **fields) -> SamplingPolicy:
    """Change the policy; opt-out slugs must name existing segments (a typo must not
    silently mirror a tenant who opted out)."""
    from rest_framework.exceptions import ValidationError

    from segments.models import Segment

    slugs = fields.get("opt_out_segments")
    if slugs:
        known = set(Segment.objects.filter(application=application, slug__in=slugs).values_list("slug", flat=True))
        unknown = sorted(set(slugs) - known)
        if unknown:
            raise ValidationError({"opt_out_segments": [f"Unknown segment(s): {', '.join(unknown)}."]})
        fields["opt_out_segments"] = sorted(set(slugs))
    policy = sampling_policy_get(application=application)
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.full_clean()
    policy.save()
    sampling_state_forget(application_id=application.id)
    return policy


# -- sampling state (cached per process) ------------------------------------------------

_state_cache: dict[int, tuple[float, sampling.SamplingState]] = {}
_state_lock = threading.Lock()


def sampling_state_forget(*, application_id: int | None = None) -> None:
    with _state_lock:
        if application_id is None:
            _state_cache.clear()
        else:
            _state_cache.pop(application_id, None)


def _sampling_state_load(application_id: int, now) -> sampling.SamplingState:
    from segments.models import Segment

    policy = SamplingPolicy.objects.filter(application_id=application_id).first() or SamplingPolicy()
    opt_out = frozenset(
        Segment.objects.filter(application_id=application_id, slug__in=policy.opt_out_segments).values_list(
            "id", flat=True
        )
        if policy.opt_out_segments
        else ()
    )
    today = now.date()
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # eligible today, sampled today, eligible yesterday
    for segment_id, day, eligible, sampled in SegmentDayCount.objects.filter(
        application_id=application_id, day__in=[today, today - timedelta(days=1)]
    ).values_list("segment_id", "day", "eligible", "sampled"):
        row = counts[segment_id]
        if day == today:
            row[0], row[1] = eligible, sampled
        else:
            row[2] = eligible
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed_s = (now - midnight).total_seconds()
    target = policy.min_judged_per_segment
    quota_rates = {}
    if target > 0:
        for segment_id, (eligible_today, sampled_today, eligible_yesterday) in counts.items():
            quota_rates[segment_id] = sampling.quota_rate(
                target=target,
                sampled_today=sampled_today,
                eligible_today=eligible_today,
                eligible_yesterday=eligible_yesterday,
                elapsed_s=elapsed_s,
                base_rate=policy.base_rate,
            )
    return sampling.SamplingState(
        base_rate=policy.base_rate,
        divergence_rate=policy.divergence_rate,
        reverse_rate=policy.reverse_rate,
        opt_out_ids=opt_out,
        quota_rates=quota_rates,
        unseen_rate=1.0 if target > 0 else policy.base_rate,
    )


def sampling_state(*, application_id: int) -> sampling.SamplingState:
    """The application's sampling state, reloaded at most every STATE_TTL_S seconds."""
    now_mono = time.monotonic()
    cached = _state_cache.get(application_id)
    if cached is not None and cached[0] > now_mono:
        return cached[1]
    state = _sampling_state_load(application_id, timezone.now())
    with _state_lock:
        _state_cache[application_id] = (now_mono + STATE_TTL_S, state)
    return state


# -- sampling at ingestion --------------------------------------------------------------

_INSERT_SAMPLES = """
INSERT INTO shadow_shadowsample (
    application_id, decision_id, direction, primary_tier, shadow_tier, inclusion_probability, reason, segment_ids
)
SELECT %(app)s, s.decision_id, s.direction, s.primary_tier, s.shadow_tier, s.probability, s.reason, s.segment_ids::int[]
FROM unnest(
    %(decision_id)s::bigint[], %(direction)s::text[], %(primary_tier)s::text[], %(shadow_tier)s::text[],
    %(probability)s::float8[], %(reason)s::text[], %(segment_ids)s::text[]
) AS s(decision_id, direction, primary_tier, shadow_tier, probability, reason, segment_ids)
ON CONFLICT (decision_id) DO NOTHING
"""

# Sorted keys: two concurrent ingestion transactions lock the counter rows in the same
# order, so they queue behind each other instead of deadlocking.
_UPSERT_COUNTS = """
INSERT INTO shadow_segmentdaycount (application_id, day, segment_id, eligible, sampled)
SELECT %(app)s, %(day)s, c.segment_id, c.eligible, c.sampled
FROM unnest(%(segment_id)s::int[], %(eligible)s::bigint[], %(sampled)s::bigint[]) AS c(segment_id, eligible, sampled)
ORDER BY c.segment_id
ON CONFLICT (application_id, day, segment_id) DO UPDATE
SET eligible = shadow_segmentdaycount.eligible + EXCLUDED.eligible,
    sampled = shadow_segmentdaycount.sampled + EXCLUDED.sampled
"""


def _segments_literal(ids: list[int]) -> str:
    return "{" + ",".join(str(i) for i in ids) + "}"


def shadow_sample_batch(
    *,
    application: Application,
    decisions: list[CleanDecision],
    decision_ids: list[int],
    segment_ids: list[list[int]],
) -> int:
    """Decide which of the just-inserted decisions to shadow; insert their outbox rows.

    Called inside the ingestion transaction, so a sampled decision and its pending
    shadow job commit together (or not at all).

    1. Read the application's sampling state (cached for a few seconds).
    2. Per decision: π from the policy and quota rates, the decision's own uniform
       draw, the direction (cheap → strong, or strong → cheap for reverse samples).
    3. One INSERT of the sampled rows (pending) and one upsert of the per-segment
       quota counters; after commit, nudge the relay.
    Returns the number of decisions sampled.
    """
    if not decisions:
        return 0
    if not (len(decisions) == len(decision_ids) == len(segment_ids)):
        raise ValueError("decisions, decision_ids and segment_ids must have the same length")
    state = sampling_state(application_id=application.id)
    app_id = application.id
    rows: dict[str, list] = {
        k: []
        for k in ("decision_id", "direction", "primary_tier", "shadow_tier", "probability", "reason", "segment_ids")
    }
    eligible: dict[int, int] = defaultdict(int)
    sampled: dict[int, int] = defaultdict(int)
    decide = sampling.sample_decide
    for decision, row_id, segments in zip(decisions, decision_ids, segment_ids, strict=True):
        choice = decide(
            state,
            application_id=app_id,
            decision_id=decision.decision_id,
            routed_to=decision.routed_to,
            segment_ids=segments,
            shadow_decisions=decision.shadow_decisions,
        )
        if decision.routed_to == sampling.CHEAP:
            for segment_id in segments:
                eligible[segment_id] += 1
        if choice is None:
            continue
        rows["decision_id"].append(row_id)
        rows["direction"].append(choice.direction)
        rows["primary_tier"].append(choice.primary_tier)
        rows["shadow_tier"].append(choice.shadow_tier)
        rows["probability"].append(choice.probability)
        rows["reason"].append(choice.reason)
        rows["segment_ids"].append(_segments_literal(segments))
        if choice.direction == sampling.UP:
            for segment_id in segments:
                sampled[segment_id] += 1
    if not rows["decision_id"] and not eligible:
        return 0
    keys = sorted(eligible)
    with transaction.atomic(savepoint=False):
        connection.ensure_connection()
        # The raw psycopg cursor binds the arrays server-side (as decision_ingest_batch does).
        with connection.connection.cursor() as cursor:
            if rows["decision_id"]:
                cursor.execute(_INSERT_SAMPLES, {"app": app_id, **rows})
            if keys:
                cursor.execute(
                    _UPSERT_COUNTS,
                    {
                        "app": app_id,
                        "day": timezone.now().date(),
                        "segment_id": keys,
                        "eligible": [eligible[k] for k in keys],
                        "sampled": [sampled.get(k, 0) for k in keys],
                    },
                )
        if rows["decision_id"] and getattr(settings, "SHADOW_RELAY_NUDGE", True):
            transaction.on_commit(outbox.relay_nudge)
    return len(rows["decision_id"])


# -- the shadow call ---------------------------------------------------------------------


def decision_messages(decision) -> list[dict] | None:
    """The chat messages to replay: the decision's messages, else its prompt as one user turn."""
    messages = decision.messages
    if isinstance(messages, str):
        messages = orjson.loads(messages)
    if isinstance(messages, list):
        turns = [m for m in messages if isinstance(m, dict)]
        if turns and turns[-1].get("role") == "assistant":  # the answer itself was logged with the turns
            turns = turns[:-1]
        if turns:
            return turns
    if decision.prompt:
        return [{"role": "user", "content": decision.prompt}]
    return None


def _sample_fail(sample_id: int, attempt: int, reason: str) -> bool:
    return bool(
        ShadowSample.objects.filter(pk=sample_id, status=ShadowSample.RUNNING, attempts=attempt).update(
            status=ShadowSample.FAILED, finished_at=timezone.now(), error=reason[:2000]
        )
    )


def _sample_release(sample_id: int, attempt: int, reason: str) -> None:
    """Back to enqueued (its retry message is on its way); the lease covers a lost retry."""
    ShadowSample.objects.filter(pk=sample_id, status=ShadowSample.RUNNING, attempts=attempt).update(
        status=ShadowSample.ENQUEUED, lease_at=timezone.now(), error=reason[:2000]
    )


def _judge_send(sample_ids: list[int]) -> None:
    from router_ops.celery import app

    if not getattr(settings, "SHADOW_TASK_SEND", True):
        return  # the caller runs the judge itself (e.g. replay_routellm without --celery)
    try:
        app.send_task(outbox.TASK_JUDGE_PAIR, args=[sample_ids], queue=outbox.QUEUE_JUDGE, retry=False)
    except Exception as exc:  # the relay sends them instead
        logger.warning("judge task for samples %s not sent: %s", sample_ids, exc)
        ShadowSample.objects.filter(pk__in=sample_ids, judge_status=ShadowSample.ENQUEUED).update(
            judge_status=ShadowSample.PENDING
        )


@dataclass
class _ShadowJob:
    """A claimed job whose call is about to be made: its budget is reserved."""

    claim: outbox.ShadowClaim
    endpoint: ModelEndpoint
    messages: list[dict]
    reservation: budget.Reservation


# `won` ends the attempt, fenced by its number, and clears the reservation recorded on the
# row; `settle` (budget.settle_statement, fenced by `won`) books the cost and releases the
# reservation only if `won` did. A run that lost its lease books its cost and releases
# nothing: the claim that took the job over has released its reservation already.
_SHADOW_FINISH = """
WITH won AS (
    UPDATE shadow_shadowsample
    SET status = 'done', finished_at = now(), error = '', judge_status = 'enqueued', judge_lease_at = now(),
        shadow_reserved_usd = 0
    WHERE id = %(id)s AND status = 'running' AND attempts = %(attempt)s
    RETURNING id
), run AS (
    INSERT INTO shadow_shadowrun (
        sample_id, endpoint_id, model, response, prompt_tokens, completion_tokens, cost_usd, latency_ms, attempts,
        created_at
    )
    SELECT won.id, %(endpoint)s, %(model)s, %(response)s, %(prompt_tokens)s, %(completion_tokens)s, %(cost)s,
           %(latency_ms)s, %(attempts)s, now()
    FROM won
), {settle}
SELECT count(*) FROM won
"""


BUDGET_SPENT = "budget: the application's daily shadow budget is spent"
BUDGET_HELD = "budget: held by calls in flight (their worst-case reservations); trying again later"


def _shadow_job_open(claim: outbox.ShadowClaim, max_tokens: int, max_attempts: int) -> _ShadowJob | outbox.JobOutcome:
    """Find the shadow tier's endpoint and the prompt, reserve the call's maximum cost;
    a job that cannot run is marked failed with the reason, one taken over meanwhile
    (its lease went stale) is "superseded". A refusal while the budget is only held by
    calls in flight, not spent, is a "retry" while attempts remain."""
    config = selectors.pipeline_config(application_id=claim.application_id, fingerprint=claim.fingerprint)
    endpoint = config.endpoints_by_tier.get(claim.shadow_tier)
    messages = decision_messages(claim)
    reservation = None
    if endpoint is None:
        reason = f"no model endpoint of tier '{claim.shadow_tier}' is configured"
    elif not messages:
        reason = "the decision has no prompt or messages (redacted or never sent): nothing to mirror"
    else:
        amount = budget.call_cost_max(endpoint, messages, max_tokens)
        try:
            reservation = budget.budget_reserve(
                application_id=claim.application_id,
                amount=amount,
                kind=budget.KIND_SHADOW,
                sample_id=claim.sample_id,
                attempt=claim.attempt,
            )
        except budget.JobLost:
            return outbox.JobOutcome("superseded", attempt=claim.attempt)
        reason = BUDGET_SPENT
        if (
            reservation is None
            and claim.attempt < max_attempts
            and budget.budget_fits_when_settled(application_id=claim.application_id, amount=amount)
        ):
            _sample_release(claim.sample_id, claim.attempt, BUDGET_HELD)
            return outbox.JobOutcome("retry", BUDGET_HELD, claim.attempt)
    if reservation is None:
        _sample_fail(claim.sample_id, claim.attempt, reason)
        return outbox.JobOutcome("failed", reason, claim.attempt)
    return _ShadowJob(claim, endpoint, messages, reservation)


def _shadow_job_close(job: _ShadowJob, result, redact, max_attempts: int) -> outbox.JobOutcome:
    """Store the call's outcome: settle the budget and, on success, mark the row done with
    its judge job enqueued and store the ShadowRun, in one statement fenced by the attempt."""
    sample_id, attempt = job.claim.sample_id, job.claim.attempt
    if isinstance(result, ProviderError):
        budget.budget_settle(reservation=job.reservation, actual=0)
        if result.retryable and attempt < max_attempts:
            _sample_release(sample_id, attempt, result.reason)
            return outbox.JobOutcome("retry", result.reason, attempt, result.retry_after)
        _sample_fail(sample_id, attempt, f"provider: {result.reason}")
        return outbox.JobOutcome("failed", result.reason, attempt)
    try:
        settle_sql, params = budget.settle_statement(reservation=job.reservation, actual=result.cost_usd, fence="won")
        params.update(
            id=sample_id,
            attempt=attempt,
            endpoint=job.endpoint.pk,
            model=result.model,
            response=redact(result.text),  # the shadow answer goes through the application's redaction rules too
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=budget._money(result.cost_usd),
            latency_ms=result.latency_ms,
            attempts=result.attempts,
        )
        with connection.cursor() as cursor:
            cursor.execute(_SHADOW_FINISH.format(settle=settle_sql), params)
            won = cursor.fetchone()[0]
    except BaseException:  # nothing stored (the statement rolled back, settle included): settle alone
        budget.budget_settle(reservation=job.reservation, actual=result.cost_usd)
        raise
    if not won:  # our lease expired and another delivery took the job over
        return outbox.JobOutcome("superseded", attempt=attempt)
    return outbox.JobOutcome("done", attempt=attempt)


def shadow_runs_execute(*, sample_ids: list[int], max_attempts: int = 1) -> dict[int, outbox.JobOutcome]:
    """Run a batch of shadow jobs: each decision's prompt on the other tier's model.

    1. Claim the rows (pending/enqueued, or running with a stale lease) → running, and
       load their prompts, in one statement that also releases the budget a previous
       attempt still held (a killed worker's); a done or failed row, or one running
       elsewhere, is "skipped".
    2. Per job: the shadow tier's endpoint, the prompt, a reservation of the call's
       maximum cost under the daily budget, recorded on the row. Refused: "retry" if
       only calls in flight hold the budget (what is spent leaves room) and attempts
       remain, else failed "budget: …".
    3. All the calls at once on this thread's event loop (the adapter retries quickly
       and honours the endpoint's concurrency limit).
    4. Per job, one statement: settle the budget, mark the row done with its judge job
       enqueued (fenced by the attempt number) and store the ShadowRun. A transient
       failure left over returns the row to enqueued as "retry" while the job has had
       fewer than `max_attempts` attempts (the task re-sends it later); otherwise the
       row fails with the reason.
    5. One judge message for the batch's finished pairs.
    Database round trips per job on the happy path: two (reserve, finish), plus one
    claim and one privacy-settings read per batch.
    """
    outcomes = {sample_id: outbox.JobOutcome("skipped") for sample_id in sample_ids}
    max_tokens = int(getattr(settings, "SHADOW_MAX_TOKENS", 1024))
    jobs: list[_ShadowJob] = []
    for claim in outbox.shadow_claims_load(sample_ids=sample_ids):
        opened = _shadow_job_open(claim, max_tokens, max_attempts)
        if isinstance(opened, outbox.JobOutcome):
            outcomes[claim.sample_id] = opened
        else:
            jobs.append(opened)
    if not jobs:
        return outcomes
    attempts = int(getattr(settings, "SHADOW_PROVIDER_ATTEMPTS", 4))
    unsettled = list(jobs)
    try:
        results = run_concurrently(
            [achat_complete(job.endpoint, job.messages, max_tokens=max_tokens, max_attempts=attempts) for job in jobs]
        )
        unexpected = next(
            (r for r in results if isinstance(r, BaseException) and not isinstance(r, ProviderError)), None
        )
        if unexpected is not None:
            raise unexpected
        redactors = {app_id: text_redactor(app_id) for app_id in {job.claim.application_id for job in jobs}}
        for job, result in zip(jobs, results, strict=True):
            unsettled.remove(job)  # _shadow_job_close settles it, whatever happens
            redact = redactors[job.claim.application_id]
            outcomes[job.claim.sample_id] = _shadow_job_close(job, result, redact, max_attempts)
    except BaseException:
        budget.budget_release(job.reservation for job in unsettled)
        raise
    done = [sample_id for sample_id, outcome in outcomes.items() if outcome.status == "done"]
    if done:
        # At once in autocommit (a task); after the commit when a caller wraps us in a transaction.
        transaction.on_commit(lambda: _judge_send(done))
    return outcomes


def shadow_run_execute(*, sample_id: int) -> outbox.JobOutcome:
    """One shadow job, no retries (replay, tests): `shadow_runs_execute` of one id."""
    return shadow_runs_execute(sample_ids=[sample_id])[sample_id]


# -- model endpoints (configured through /api/v1/models/) -----------------------------------


class ModelInUse(Exception):
    """An active judge names the model: retire or re-point the judge first."""


def _model_name_free(application: Application, name: str, exclude_pk: int | None = None) -> None:
    from rest_framework.exceptions import ValidationError

    clash = ModelEndpoint.objects.filter(application=application, name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": [f"A model named '{name}' already exists in this application."]})


def model_endpoint_create(*, application: Application, **fields) -> ModelEndpoint:
    _model_name_free(application, fields["name"])
    return ModelEndpoint.objects.create(application=application, **fields)


def model_endpoint_update(*, endpoint: ModelEndpoint, **fields) -> ModelEndpoint:
    if "name" in fields:
        _model_name_free(endpoint.application, fields["name"], exclude_pk=endpoint.pk)
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def model_endpoint_delete(*, endpoint: ModelEndpoint) -> None:
    from router_ops.judging.models import Judge

    judges = list(
        Judge.objects.filter(application_id=endpoint.application_id, model=endpoint.name, active=True).values_list(
            "name", flat=True
        )
    )
    if judges:
        raise ModelInUse(f"Active judge(s) {', '.join(judges)} use this model; retire or re-point them first.")
    endpoint.delete()
