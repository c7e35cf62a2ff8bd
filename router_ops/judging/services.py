"""Writes of the judging app: judges, and judging a (primary, shadow) pair."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
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
from router_ops.shadow.providers import ProviderError, chat_complete
from router_ops.shadow.selectors import PipelineConfig

logger = logging.getLogger(__name__)

JUDGE_MAX_TOKENS = 512
# The two orders of a pairwise judgment run side by side; these threads do HTTP only
# (budget and database work stay on the task's thread and its connection).
_order_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="judge-order")


class JudgeRetry(Exception):
    """A transient provider failure of an LLM judge: the task should try again later."""

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


def judges_ordered(*, application_id: int) -> list[Judge]:
    """Active judges, deterministic ones first (they decide cheaply when they can)."""
    judges = list(Judge.objects.filter(application_id=application_id, active=True).order_by("id"))
    return sorted(judges, key=lambda j: (j.kind not in Judge.DETERMINISTIC, j.id))


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


def _order_run(endpoint, messages: list[dict], attempts: int) -> dict:
    """One order: call, parse, and on an unparseable reply ask once more. HTTP only."""
    replies, cost, latency, calls = [], 0.0, 0.0, 0
    for _ in range(2):
        try:
            result = chat_complete(endpoint, messages, max_tokens=JUDGE_MAX_TOKENS, max_attempts=attempts)
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


def pairwise_judge_run(
    *,
    judge: Judge,
    application_id: int,
    question: str,
    primary: str,
    shadow: str,
    final_attempt: bool,
    config: PipelineConfig | None = None,
) -> JudgeResult:
    """Judge the pair twice, order swapped, both orders concurrently.

    1. Resolve the judge's model endpoint and rubric version (from `config` when given).
    2. Reserve budget for the worst case (2 orders × (1 call + 1 re-ask)).
    3. Run both orders; an unparseable reply is asked once more, then is a failure.
    4. Agreeing orders give the verdict; disagreeing ones `equivalent`, swap_consistent=False.
    A transient provider failure raises JudgeRetry unless this is the final attempt.
    The returned result carries its reservation: `_judgment_store` settles it in the
    statement that stores the judgment (every other exit settles here).
    """
    if config is not None:
        endpoint = config.endpoints_by_name.get(judge.model)
        rubric = config.prompts.get(judge.prompt_version)
    else:
        endpoint = ModelEndpoint.objects.filter(application_id=application_id, name=judge.model).first()
        rubric = JudgePrompt.objects.filter(version=judge.prompt_version).values_list("text", flat=True).first()
    if endpoint is None:
        return JudgeResult(error=f"judge model '{judge.model}' is not a configured model endpoint")
    if rubric is None:
        return JudgeResult(error=f"judge prompt version '{judge.prompt_version}' does not exist")
    messages = {order: pairwise.order_messages(rubric, question, primary, shadow, order) for order in pairwise.ORDERS}
    worst = 2 * sum(budget.call_cost_max(endpoint, m, JUDGE_MAX_TOKENS) for m in messages.values())
    reservation = budget.budget_reserve(application_id=application_id, amount=worst)
    if reservation is None:
        return JudgeResult(error="budget: the application's daily shadow budget is spent")
    attempts = int(getattr(settings, "SHADOW_PROVIDER_ATTEMPTS", 4))
    started = time.perf_counter()
    outcomes = {}
    try:
        # The second order on the pool, the first on this thread: one thread hand-off, not two.
        second = _order_pool.submit(_order_run, endpoint, messages[pairwise.SHADOW_FIRST], attempts)
        try:
            first = _order_run(endpoint, messages[pairwise.PRIMARY_FIRST], attempts)
        finally:
            second_outcome = second.result()
        outcomes = {pairwise.PRIMARY_FIRST: first, pairwise.SHADOW_FIRST: second_outcome}
    except BaseException:
        budget.budget_settle(reservation=reservation, actual=0, kind=budget.KIND_JUDGE)
        raise
    spent = sum(o["cost"] for o in outcomes.values())
    result = JudgeResult(
        replies=[{"order": order, "replies": outcomes[order]["replies"]} for order in pairwise.ORDERS],
        calls=sum(o["calls"] for o in outcomes.values()),
        cost_usd=spent,
        latency_ms=(time.perf_counter() - started) * 1000,
        reservation=reservation,
    )
    errors = [o["error"] for o in outcomes.values() if "error" in o]
    if errors:
        error = errors[0]
        if error.retryable and not final_attempt:
            budget.budget_settle(reservation=reservation, actual=spent, kind=budget.KIND_JUDGE)
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
        settle_sql, settle_params = budget.settle_statement(
            reservation=result.reservation, actual=result.cost_usd, kind=budget.KIND_JUDGE
        )
        settle = f"settle AS ({settle_sql}), "
        params.update(settle_params)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_JUDGMENT_INSERT.format(settle=settle), params)
            row = cursor.fetchone()
    except BaseException:  # the statement rolled back, settle included: settle alone
        if result.reservation is not None:
            budget.budget_settle(reservation=result.reservation, actual=result.cost_usd, kind=budget.KIND_JUDGE)
        raise
    if row is None:  # a concurrent delivery stored it first: theirs stands
        return Judgment.objects.get(sample_id=sample_id, judge_id=judge.id)
    return Judgment(id=row[0], created_at=row[1], **fields)


# -- the judge job ------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeOutcome:
    status: str  # skipped | done | failed | superseded
    verdict: str = ""
    reason: str = ""


_FINISH = """
UPDATE shadow_shadowsample
SET judge_status = %(status)s, judge_error = %(error)s, verdict = %(verdict)s,
    materially_disagree = %(materially_disagree)s, judged_at = now()
WHERE id = %(id)s AND judge_status = 'running' AND judge_attempts = %(attempt)s
RETURNING decision_id
"""


def _finish(sample_id: int, attempt: int, *, verdict: str, materially_disagree: bool | None, error: str) -> bool:
    status = ShadowSample.DONE if verdict else ShadowSample.FAILED
    params = {
        "id": sample_id,
        "attempt": attempt,
        "status": status,
        "error": error[:2000],
        "verdict": verdict,
        "materially_disagree": materially_disagree,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_FINISH, params)
        row = cursor.fetchone()
        if row is not None:
            # The verdict changes its decision's hourly rollup (last statement: see rollups/services.py).
            rollup_mark_dirty_for_decisions(decision_ids=[row[0]])
    return row is not None


def _model_judges_run(claim, sample_id, config, existing, question, primary, shadow, final_attempt) -> list[Judgment]:
    """Every active LLM and recorded judge on the pair (those that judged it already are reused)."""
    judgments: list[Judgment] = []
    for judge in config.judges:
        if judge.kind in Judge.DETERMINISTIC:
            continue
        judgment = existing.get(judge.id)
        if judgment is None:
            if judge.kind == Judge.KIND_PAIRWISE_LLM:
                result = pairwise_judge_run(
                    judge=judge,
                    application_id=claim.application_id,
                    question=question,
                    primary=primary,
                    shadow=shadow,
                    final_attempt=final_attempt,
                    config=config,
                )  # may raise JudgeRetry: judgments stored so far are kept and skipped next time
            else:
                result = recorded_judge_run(
                    judge=judge, decision=claim, question=question, primary=primary, shadow=shadow
                )
            judgment = _judgment_store(sample_id, claim.application_id, judge, result)
        judgments.append(judgment)
    return judgments


def pair_judge_execute(*, sample_id: int, final_attempt: bool = True) -> JudgeOutcome:
    """Judge one shadowed pair with the application's active judges.

    1. Claim the judge job and load the pair in the same statement (a judged or
       running pair makes this a no-op).
    2. Deterministic judges in order; the first that decides gives the verdict.
    3. Otherwise every active LLM and recorded judge judges the pair; judges that
       already judged it (an earlier delivery) are skipped, as UNIQUE (sample, judge)
       guarantees.
    4. The pair's verdict is the first successful judgment in judge order; with none
       the judge job fails with the reasons. The verdict and the rollup's dirty mark
       commit together.
    Database round trips on the happy path with one LLM judge: claim+load, reserve,
    settle+store, then BEGIN, finish, mark dirty, COMMIT.
    """
    claim = outbox.judge_claim_load(sample_id=sample_id)
    if claim is None:
        return JudgeOutcome("skipped")
    attempt = claim.attempt
    primary, shadow = claim.response, claim.shadow_response
    if primary is None or shadow is None:
        reason = "the primary answer is missing (redacted or never sent)" if primary is None else "no shadow answer"
        _finish(sample_id, attempt, verdict="", materially_disagree=None, error=reason)
        return JudgeOutcome("failed", reason=reason)
    config = shadow_selectors.pipeline_config(
        application_id=claim.application_id, fingerprint=claim.fingerprint, with_judges=True
    )
    if not config.judges:
        reason = "no active judge is configured for this application"
        _finish(sample_id, attempt, verdict="", materially_disagree=None, error=reason)
        return JudgeOutcome("failed", reason=reason)
    question = _question(claim)
    existing = {j.judge_id: j for j in Judgment.objects.filter(sample_id=sample_id)} if claim.has_judgments else {}
    judgments: list[Judgment] = []
    for judge in config.judges:
        if judge.kind not in Judge.DETERMINISTIC:
            continue
        judgment = existing.get(judge.id)
        if judgment is None:
            decided = deterministic.JUDGES[judge.kind](primary, shadow, question, judge.config)
            if decided is None:
                continue
            judgment = _judgment_store(
                sample_id,
                claim.application_id,
                judge,
                JudgeResult(
                    verdict=decided.verdict,
                    materially_disagree=decided.materially_disagree,
                    rationale=decided.rationale,
                ),
            )
        judgments.append(judgment)
        break
    if not judgments:
        try:
            judgments = _model_judges_run(claim, sample_id, config, existing, question, primary, shadow, final_attempt)
        except JudgeRetry as exc:
            ShadowSample.objects.filter(pk=sample_id, judge_status=ShadowSample.RUNNING, judge_attempts=attempt).update(
                judge_status=ShadowSample.ENQUEUED, judge_lease_at=timezone.now(), judge_error=exc.reason[:2000]
            )
            raise
    decisive = next((j for j in judgments if j.status == Judgment.OK), None)
    if decisive is None:
        reason = "; ".join(f"{j.judge_id}: {j.error}" for j in judgments) or "no judge could decide this pair"
        won = _finish(sample_id, attempt, verdict="", materially_disagree=None, error=reason)
        return JudgeOutcome("failed" if won else "superseded", reason=reason)
    won = _finish(
        sample_id, attempt, verdict=decisive.verdict, materially_disagree=decisive.materially_disagree, error=""
    )
    return JudgeOutcome("done" if won else "superseded", verdict=decisive.verdict)
