"""Writes of the judging app: judges, and judging a (primary, shadow) pair."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.judging import deterministic, pairwise, recorded
from router_ops.judging.models import Judge, JudgePrompt, Judgment
from router_ops.rollups.services import rollup_mark_dirty_for_decisions
from router_ops.shadow import budget, outbox
from router_ops.shadow import selectors as shadow_selectors
from router_ops.shadow.models import ShadowSample
from router_ops.shadow.providers import ProviderError, achat_complete, run_concurrently
from router_ops.shadow.selectors import PipelineConfig
from router_ops.shadow.services import BUDGET_HELD, BUDGET_SPENT

logger = logging.getLogger(__name__)

JUDGE_MAX_TOKENS = 512


class JudgeRetry(Exception):
    """A transient failure of an LLM judgment (the provider, or a budget held by calls in
    flight): the task should try again later."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# -- judges ---------------------------------------------------------------------------------


def judge_prompt_default() -> JudgePrompt:
    prompt, _ = JudgePrompt.objects.get_or_create(version="pairwise-v1", defaults={"text": pairwise.DEFAULT_RUBRIC})
    return prompt


class JudgeInUse(Exception):
    """The judge has judgments: retire it (active=False) instead of deleting it."""


def _judge_validate(judge: Judge) -> None:
    """Cross-field rules the serializer cannot see; errors name the field (400)."""
    from rest_framework.exceptions import ValidationError

    errors: dict[str, list[str]] = {}
    clash = Judge.objects.filter(application_id=judge.application_id, name=judge.name).exclude(pk=judge.pk)
    if clash.exists():
        errors["name"] = [f"A judge named '{judge.name}' already exists in this application."]
    if judge.kind == Judge.KIND_PAIRWISE_LLM:
        if not judge.model:
            errors["model"] = ["A pairwise LLM judge names the model endpoint that judges."]
        elif not ModelEndpoint.objects.filter(application_id=judge.application_id, name=judge.model).exists():
            errors["model"] = [f"No model named '{judge.model}' in this application (see /api/v1/models/)."]
        if not judge.prompt_version:
            judge.prompt_version = judge_prompt_default().version
        elif not JudgePrompt.objects.filter(version=judge.prompt_version).exists():
            errors["prompt_version"] = [f"No judge prompt version '{judge.prompt_version}'."]
    if judge.kind == Judge.KIND_RECORDED and judge.config.get("source") not in recorded._factories:
        known = ", ".join(sorted(recorded._factories))
        errors["config"] = [f"A recorded judge needs config.source, one of: {known}."]
    if errors:
        raise ValidationError(errors)


def judge_create(*, application: Application, **fields) -> Judge:
    judge = Judge(application=application, **fields)
    _judge_validate(judge)
    judge.save()
    return judge


def judge_update(*, judge: Judge, **fields) -> Judge:
    for name, value in fields.items():
        setattr(judge, name, value)
    _judge_validate(judge)
    judge.save()
    return judge


def judge_delete(*, judge: Judge) -> None:
    """Delete a judge that never judged; one with judgments stays for the history."""
    count = judge.judgments.count()
    if count:
        raise JudgeInUse(f"Judge '{judge.name}' has {count} judgment(s); set active=false to retire it.")
    judge.delete()


def judges_default_create(*, application: Application, judge_model: str | None = None) -> list[Judge]:
    """A sensible starting set: normalised match first, then the pairwise LLM judge when
    a judge model is named. Idempotent."""
    judges = [
        Judge.objects.get_or_create(
            application=application, name="normalised-match", defaults={"kind": Judge.KIND_NORMALISED}
        )[0]
    ]
    if judge_model:
        prompt = judge_prompt_default()
        judges.append(
            Judge.objects.get_or_create(
                application=application,
                name="pairwise-llm",
                defaults={"kind": Judge.KIND_PAIRWISE_LLM, "model": judge_model, "prompt_version": prompt.version},
            )[0]
        )
    return judges


# -- one judge on one pair --------------------------------------------------------------


@dataclass
class JudgeResult:
    verdict: str = ""  # "" = failed
    error: str = ""
    materially_disagree: bool | None = None
    swap_consistent: bool | None = None
    replies: list = field(default_factory=list)
    rationale: str = ""
    calls: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    # The budget reservation still to settle (at cost_usd) in the statement storing the judgment.
    reservation: budget.Reservation | None = None


def _question(decision) -> str:
    if decision.prompt:
        return decision.prompt
    messages = decision.messages if isinstance(decision.messages, list) else []
    turns = [m for m in messages if isinstance(m, dict)]
    if turns and turns[-1].get("role") == "assistant":
        turns = turns[:-1]
    if len(turns) == 1:
        return str(turns[0].get("content") or "")
    return "\n\n".join(f"{str(m.get('role', 'user')).title()}: {m.get('content') or ''}" for m in turns)


async def _order_run(endpoint, messages: list[dict], attempts: int) -> dict:
    """One order: call, parse, and on an unparseable reply ask once more."""
    replies, cost, latency, calls = [], 0.0, 0.0, 0
    for _ in range(2):
        try:
            result = await achat_complete(endpoint, messages, max_tokens=JUDGE_MAX_TOKENS, max_attempts=attempts)
        except ProviderError as exc:
            return {"replies": replies, "cost": cost, "latency": latency, "calls": calls + exc.attempts, "error": exc}
        calls += result.attempts
        cost += result.cost_usd
        latency += result.latency_ms
        replies.append(result.text)
        letter = pairwise.reply_parse(result.text)
        if letter is not None:
            return {"replies": replies, "cost": cost, "latency": latency, "calls": calls, "letter": letter}
    return {"replies": replies, "cost": cost, "latency": latency, "calls": calls, "letter": None}


@dataclass
class PairwiseCall:
    """A pairwise LLM judgment ready to run: its model, both orders' prompts, and the
    budget reserved for the worst case (2 orders × (1 call + 1 re-ask))."""

    sample_id: int
    judge: Judge
    endpoint: ModelEndpoint
    messages: dict[str, list[dict]]
    reservation: budget.Reservation

    async def orders_run(self, attempts: int) -> tuple[dict, float]:
        """Both orders side by side; returns the outcome of each and the wall time (ms)."""
        started = time.perf_counter()
        first, second = await asyncio.gather(
            _order_run(self.endpoint, self.messages[pairwise.PRIMARY_FIRST], attempts),
            _order_run(self.endpoint, self.messages[pairwise.SHADOW_FIRST], attempts),
        )
        return {pairwise.PRIMARY_FIRST: first, pairwise.SHADOW_FIRST: second}, (time.perf_counter() - started) * 1000


def pairwise_judge_prepare(
    *,
    judge: Judge,
    sample_id: int,
    attempt: int,
    application_id: int,
    question: str,
    primary: str,
    shadow: str,
    config,
    final_attempt: bool = True,
) -> PairwiseCall | JudgeResult:
    """Resolve the judge's model endpoint and rubric (from the pipeline config), build both
    orders' prompts and reserve the budget for the judge job's attempt; a JudgeResult with
    the error when it cannot run. Raises budget.JobLost if the attempt lost the job, and
    JudgeRetry if the budget is only held by calls in flight (not spent) and this is not
    the final attempt."""
    endpoint = config.endpoints_by_name.get(judge.model)
    rubric = config.prompts.get(judge.prompt_version)
    if endpoint is None:
        return JudgeResult(error=f"judge model '{judge.model}' is not a configured model endpoint")
    if rubric is None:
        return JudgeResult(error=f"judge prompt version '{judge.prompt_version}' does not exist")
    messages = {order: pairwise.order_messages(rubric, question, primary, shadow, order) for order in pairwise.ORDERS}
    worst = 2 * sum(budget.call_cost_max(endpoint, m, JUDGE_MAX_TOKENS) for m in messages.values())
    reservation = budget.budget_reserve(
        application_id=application_id, amount=worst, kind=budget.KIND_JUDGE, sample_id=sample_id, attempt=attempt
    )
    if reservation is None:
        if not final_attempt and budget.budget_fits_when_settled(application_id=application_id, amount=worst):
            raise JudgeRetry(BUDGET_HELD)
        return JudgeResult(error=BUDGET_SPENT)
    return PairwiseCall(sample_id, judge, endpoint, messages, reservation)


def pairwise_judge_combine(
    call: PairwiseCall, outcomes: dict, latency_ms: float, *, final_attempt: bool
) -> JudgeResult:
    """The judgment from both orders: agreeing orders give the verdict, disagreeing ones
    `equivalent` with swap_consistent=False; an unparseable reply (asked twice) is a failure.
    A transient provider failure raises JudgeRetry (its reservation settled) unless this is
    the final attempt. Otherwise the result carries the reservation: `_judgment_store`
    settles it in the statement that stores the judgment."""
    spent = sum(o["cost"] for o in outcomes.values())
    result = JudgeResult(
        replies=[{"order": order, "replies": outcomes[order]["replies"]} for order in pairwise.ORDERS],
        calls=sum(o["calls"] for o in outcomes.values()),
        cost_usd=spent,
        latency_ms=latency_ms,
        reservation=call.reservation,
    )
    errors = [o["error"] for o in outcomes.values() if "error" in o]
    if errors:
        error = errors[0]
        if error.retryable and not final_attempt:
            budget.budget_settle(reservation=call.reservation, actual=spent)
            raise JudgeRetry(error.reason, error.retry_after)
        result.error = f"provider: {error.reason}"
        return result
    letters = {order: outcomes[order]["letter"] for order in pairwise.ORDERS}
    if any(letter is None for letter in letters.values()):
        result.error = "unparseable judge reply (no 'Verdict: A|B|tie' line), asked twice"
        return result
    verdicts = [pairwise.order_verdict(letters[order], order) for order in pairwise.ORDERS]
    result.verdict, result.swap_consistent = pairwise.swap_combine(*verdicts)
    result.materially_disagree = result.verdict != pairwise.EQUIVALENT
    result.rationale = pairwise.rationale_of(outcomes[pairwise.PRIMARY_FIRST]["replies"][-1])
    if not result.swap_consistent:
        result.rationale = (
            f"Position-inconsistent ({verdicts[0]} / {verdicts[1]}): counted as equivalent. " + result.rationale
        )
    return result


def recorded_judge_run(*, judge: Judge, decision, question: str, primary: str, shadow: str) -> JudgeResult:
    try:
        source = recorded.grade_source(judge.config)
    except (recorded.GradeSourceError, OSError, ValueError) as exc:
        return JudgeResult(error=f"grade source: {exc}")
    attributes = decision.attributes or {}
    outcome = recorded.recorded_compare(
        source.grade(question=question, answer=primary, role="primary", attributes=attributes),
        source.grade(question=question, answer=shadow, role="shadow", attributes=attributes),
    )
    if outcome.verdict is None:
        return JudgeResult(error=f"recorded grade missing or failed ({outcome.rationale})", rationale=outcome.rationale)
    return JudgeResult(
        verdict=outcome.verdict, materially_disagree=outcome.verdict != pairwise.EQUIVALENT, rationale=outcome.rationale
    )


_JUDGMENT_INSERT = """
WITH {settle}ins AS (
    INSERT INTO judging_judgment (
        sample_id, judge_id, application_id, judge_kind, prompt_version, status, verdict, materially_disagree,
        swap_consistent, replies, rationale, error, calls, cost_usd, latency_ms, created_at
    )
    VALUES (
        %(sample_id)s, %(judge_id)s, %(application_id)s, %(judge_kind)s, %(prompt_version)s, %(status)s,
        %(verdict)s, %(materially_disagree)s, %(swap_consistent)s, %(replies)s::jsonb, %(rationale)s, %(error)s,
        %(calls)s, %(cost_usd)s, %(latency_ms)s, now()
    )
    ON CONFLICT (sample_id, judge_id) DO NOTHING
    RETURNING id, created_at
)
SELECT id, created_at FROM ins
"""


def _judgment_store(sample_id: int, application_id: int, judge: Judge, result: JudgeResult) -> Judgment:
    """Store one judge's judgment of the pair, settling its budget reservation in the same
    statement; UNIQUE (sample, judge) makes a second delivery's insert a no-op, and then
    the judgment stored first stands."""
    fields = {
        "sample_id": sample_id,
        "judge_id": judge.id,
        "application_id": application_id,
        "judge_kind": judge.kind,
        "prompt_version": judge.prompt_version if judge.kind == Judge.KIND_PAIRWISE_LLM else "",
        "status": Judgment.OK if result.verdict else Judgment.FAILED,
        "verdict": result.verdict,
        "materially_disagree": result.materially_disagree,
        "swap_consistent": result.swap_consistent,
        "replies": result.replies,
        "rationale": result.rationale[:5000],
        "error": result.error[:2000],
        "calls": result.calls,
        "cost_usd": budget._money(result.cost_usd),
        "latency_ms": result.latency_ms,
    }
    params = {**fields, "replies": orjson.dumps(result.replies).decode()}
    settle = ""
    if result.reservation is not None:
        settle_sql, settle_params = budget.settle_statement(reservation=result.reservation, actual=result.cost_usd)
        settle = f"{settle_sql}, "
        params.update(settle_params)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_JUDGMENT_INSERT.format(settle=settle), params)
            row = cursor.fetchone()
    except BaseException:  # the statement rolled back, settle included: settle alone
        if result.reservation is not None:
            budget.budget_settle(reservation=result.reservation, actual=result.cost_usd)
        raise
    if row is None:  # a concurrent delivery stored it first: theirs stands
        return Judgment.objects.get(sample_id=sample_id, judge_id=judge.id)
    return Judgment(id=row[0], created_at=row[1], **fields)


# -- the judge job ------------------------------------------------------------------------


@dataclass
class _PairJob:
    """A claimed pair being judged: judgments so far (by judge id) and LLM calls to make."""

    claim: outbox.JudgeClaim
    config: PipelineConfig
    judgments: dict[int, Judgment] = field(default_factory=dict)
    calls: list[PairwiseCall] = field(default_factory=list)
    retry: JudgeRetry | None = None


_FINISH = """
UPDATE shadow_shadowsample s
SET judge_status = u.status, judge_error = u.error, verdict = u.verdict,
    materially_disagree = u.materially_disagree, judged_at = now()
FROM unnest(%(id)s::bigint[], %(attempt)s::int[], %(status)s::text[], %(error)s::text[], %(verdict)s::text[],
            %(materially_disagree)s::bool[]) AS u(id, attempt, status, error, verdict, materially_disagree)
WHERE s.id = u.id AND s.judge_status = 'running' AND s.judge_attempts = u.attempt
RETURNING s.id, s.decision_id
"""


def _finish_many(rows: list[tuple[int, int, str, bool | None, str]]) -> set[int]:
    """Close judge jobs: (sample id, attempt, verdict, materially_disagree, error) each; a
    verdict means done, none failed. Fenced by the attempt; the verdicts and the rollup's
    dirty marks commit together. Returns the ids this delivery closed."""
    if not rows:
        return set()
    rows = sorted(rows)
    params = {
        "id": [r[0] for r in rows],
        "attempt": [r[1] for r in rows],
        "status": [ShadowSample.DONE if r[2] else ShadowSample.FAILED for r in rows],
        "error": [r[4][:2000] for r in rows],
        "verdict": [r[2] for r in rows],
        "materially_disagree": [r[3] for r in rows],
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_FINISH, params)
        won = cursor.fetchall()
        if won:
            # The verdicts change their decisions' hourly rollups (last statement: see rollups/services.py).
            rollup_mark_dirty_for_decisions(decision_ids=[decision_id for _, decision_id in won])
    return {sample_id for sample_id, _ in won}


def _pair_job_open(claim: outbox.JudgeClaim, max_attempts: int) -> _PairJob | str:
    """Deterministic judges first (the first that decides gives the verdict); otherwise
    prepare every active LLM judge's call and run the recorded judges. Judges that already
    judged the pair (an earlier delivery) are reused, as UNIQUE (sample, judge) guarantees.
    Returns the job, or the reason the pair cannot be judged."""
    primary, shadow = claim.response, claim.shadow_response
    if primary is None or shadow is None:
        return "the primary answer is missing (redacted or never sent)" if primary is None else "no shadow answer"
    config = shadow_selectors.pipeline_config(
        application_id=claim.application_id, fingerprint=claim.fingerprint, with_judges=True
    )
    if not config.judges:
        return "no active judge is configured for this application"
    sample_id, application_id = claim.sample_id, claim.application_id
    question = _question(claim)
    existing = {j.judge_id: j for j in Judgment.objects.filter(sample_id=sample_id)} if claim.has_judgments else {}
    job = _PairJob(claim, config)
    for judge in config.judges:
        if judge.kind not in Judge.DETERMINISTIC:
            continue
        judgment = existing.get(judge.id)
        if judgment is None:
            decided = deterministic.JUDGES[judge.kind](primary, shadow, question, judge.config)
            if decided is None:
                continue
            result = JudgeResult(
                verdict=decided.verdict, materially_disagree=decided.materially_disagree, rationale=decided.rationale
            )
            judgment = _judgment_store(sample_id, application_id, judge, result)
        job.judgments[judge.id] = judgment
        return job
    for judge in config.judges:
        if judge.kind in Judge.DETERMINISTIC:
            continue
        if judge.id in existing:
            job.judgments[judge.id] = existing[judge.id]
            continue
        if judge.kind == Judge.KIND_PAIRWISE_LLM:
            try:
                prepared = pairwise_judge_prepare(
                    judge=judge,
                    sample_id=sample_id,
                    attempt=claim.attempt,
                    application_id=application_id,
                    question=question,
                    primary=primary,
                    shadow=shadow,
                    config=config,
                    final_attempt=claim.attempt >= max_attempts,
                )
            except JudgeRetry as exc:  # the budget is only held by calls in flight: later
                job.retry = exc
                continue
            except budget.JobLost:
                # The claim that took the pair over released what this attempt reserved;
                # the finish, fenced by the attempt, will be a no-op ("superseded").
                return "superseded: another delivery took the pair over"
            if isinstance(prepared, PairwiseCall):
                job.calls.append(prepared)
                continue
            result = prepared
        else:
            result = recorded_judge_run(judge=judge, decision=claim, question=question, primary=primary, shadow=shadow)
        job.judgments[judge.id] = _judgment_store(sample_id, application_id, judge, result)
    return job


def pair_judges_execute(*, sample_ids: list[int], max_attempts: int = 1) -> dict[int, outbox.JobOutcome]:
    """Judge a batch of shadowed pairs with their applications' active judges.

    1. Claim the judge jobs and load the pairs in one statement, which also releases the
       budget a previous attempt still held (a judged pair, or one running elsewhere, is
       "skipped").
    2. Per pair (`_pair_job_open`): deterministic judges decide when they can; otherwise
       the LLM judges' calls are prepared (budget reserved) and recorded judges run.
    3. Every LLM judgment of the batch runs at once (both orders of each side by side)
       and is stored with its budget settled. A transient provider failure, while the
       job has had fewer than `max_attempts` attempts, returns the pair to enqueued as
       "retry" (judgments already stored are kept and reused next time).
    4. A pair's verdict is its first successful judgment in judge order; with none, the
       job fails with the reasons. All the batch's verdicts and rollup dirty marks commit
       in one transaction.
    Database round trips per pair with one LLM judge: reserve, settle+store; plus one
    claim and one finishing transaction per batch.
    """
    outcomes = {sample_id: outbox.JobOutcome("skipped") for sample_id in sample_ids}
    finishing: list[tuple[int, int, str, bool | None, str]] = []
    jobs: list[_PairJob] = []
    for claim in outbox.judge_claims_load(sample_ids=sample_ids):
        opened = _pair_job_open(claim, max_attempts)
        if isinstance(opened, str):
            finishing.append((claim.sample_id, claim.attempt, "", None, opened))
        else:
            jobs.append(opened)
    calls = [call for job in jobs for call in job.calls]
    by_sample = {job.claim.sample_id: job for job in jobs}
    unsettled = list(calls)
    try:
        attempts = int(getattr(settings, "SHADOW_PROVIDER_ATTEMPTS", 4))
        results = run_concurrently([call.orders_run(attempts) for call in calls]) if calls else []
        unexpected = next((r for r in results if isinstance(r, BaseException)), None)
        if unexpected is not None:
            raise unexpected
        for call, (orders, latency_ms) in zip(calls, results, strict=True):
            job = by_sample[call.sample_id]
            try:
                result = pairwise_judge_combine(
                    call, orders, latency_ms, final_attempt=job.claim.attempt >= max_attempts
                )
            except JudgeRetry as exc:  # raised with the call settled
                unsettled.remove(call)
                job.retry = exc
                continue
            unsettled.remove(call)  # the store settles it, whatever happens
            job.judgments[call.judge.id] = _judgment_store(call.sample_id, job.claim.application_id, call.judge, result)
    except BaseException:
        budget.budget_release(call.reservation for call in unsettled)
        raise
    for job in jobs:
        sample_id, attempt = job.claim.sample_id, job.claim.attempt
        if job.retry is not None:
            ShadowSample.objects.filter(pk=sample_id, judge_status=ShadowSample.RUNNING, judge_attempts=attempt).update(
                judge_status=ShadowSample.ENQUEUED, judge_lease_at=timezone.now(), judge_error=job.retry.reason[:2000]
            )
            outcomes[sample_id] = outbox.JobOutcome("retry", job.retry.reason, attempt, job.retry.retry_after)
            continue
        ordered = [job.judgments[j.id] for j in job.config.judges if j.id in job.judgments]
        decisive = next((j for j in ordered if j.status == Judgment.OK), None)
        if decisive is None:
            reason = "; ".join(f"{j.judge_id}: {j.error}" for j in ordered) or "no judge could decide this pair"
            finishing.append((sample_id, attempt, "", None, reason))
        else:
            finishing.append((sample_id, attempt, decisive.verdict, decisive.materially_disagree, ""))
    won = _finish_many(finishing)
    for sample_id, attempt, verdict, _, reason in finishing:
        if sample_id not in won:
            status = "superseded"
        else:
            status = "done" if verdict else "failed"
        outcomes[sample_id] = outbox.JobOutcome(status, reason, attempt, verdict=verdict)
    return outcomes


def pair_judge_execute(*, sample_id: int) -> outbox.JobOutcome:
    """One judge job, no retries (replay, tests): `pair_judges_execute` of one id."""
    return pair_judges_execute(sample_ids=[sample_id])[sample_id]
