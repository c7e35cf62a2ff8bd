"""The daily budget against a real Postgres row: threads with their own database
connections race to reserve, and a reservation whose worker died comes back when its
job is claimed again."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from router_ops.applications.models import ModelEndpoint
from router_ops.judging import services as judging_services
from router_ops.judging.models import Judgment
from router_ops.shadow import budget, outbox
from router_ops.shadow import services as shadow_services
from router_ops.shadow.models import BudgetDay, ShadowRun, ShadowSample
from router_ops.shadow.providers import ChatResult
from tests.shadow.conftest import endpoints_create, ingest_and_sample, judges_create, policy_set, sim_decisions

CALL_MAX = Decimal("0.0110")
MAX_TOKENS = 1024


def running_jobs(application, count: int) -> list[int]:
    """`count` shadow jobs held by their first attempt, as a task holds them after its claim."""
    ingest_and_sample(application, sim_decisions(count))
    ShadowSample.objects.update(status="running", attempts=1, lease_at=timezone.now())
    return list(ShadowSample.objects.order_by("id").values_list("id", flat=True))


def reserve(app_id: int, sample_id: int, amount: Decimal = CALL_MAX, attempt: int = 1):
    return budget.budget_reserve(
        application_id=app_id, amount=amount, kind=budget.KIND_SHADOW, sample_id=sample_id, attempt=attempt
    )


def leases_expire(ids: list[int], *, judge: bool = False) -> None:
    """The worker holding these jobs died a while ago (SHADOW_LEASE_S is 1 s in these tests)."""
    column = "judge_lease_at" if judge else "lease_at"
    ShadowSample.objects.filter(pk__in=ids).update(**{column: timezone.now() - timedelta(minutes=1)})


def recorded(kind: str, ids) -> dict[int, Decimal]:
    """What each job's current attempt holds, as its row records it."""
    return dict(ShadowSample.objects.filter(pk__in=ids).values_list("id", f"{kind}_reserved_usd"))


def reserved_usd() -> Decimal:
    return BudgetDay.objects.get().reserved_usd


@pytest.fixture
def shadow_jobs(owner, sim, settings):
    """Two sampled decisions of an application whose endpoints answer over HTTP."""
    settings.SHADOW_LEASE_S = 1
    _, base_url = sim
    endpoints_create(owner.application, base_url)
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ingest_and_sample(owner.application, sim_decisions(2))
    return list(ShadowSample.objects.order_by("id").values_list("id", flat=True))


@pytest.fixture
def shadowed_pairs(owner, sim, settings):
    """20 sampled decisions, shadowed, with a normalised-match and a pairwise LLM judge: ready to judge."""
    settings.SHADOW_LEASE_S = 1
    _, base_url = sim
    eps = endpoints_create(owner.application, base_url)
    judges_create(owner.application, eps["judge"])
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    ingest_and_sample(owner.application, sim_decisions(20))
    pairs = list(ShadowSample.objects.order_by("id").values_list("id", flat=True))
    shadow_services.shadow_runs_execute(sample_ids=pairs)
    return pairs


def shadow_jobs_open(ids: list[int]) -> list:
    """A worker claims the jobs and reserves their calls (then, in these tests, dies)."""
    return [
        shadow_services._shadow_job_open(claim, MAX_TOKENS, max_attempts=1)
        for claim in outbox.shadow_claims_load(sample_ids=ids)
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_overspend_the_cap(owner):
    policy_set(owner.application, daily_budget_usd=Decimal("1.00"), base_rate=1.0, reverse_rate=1.0)
    app_id = owner.application.id
    jobs = running_jobs(owner.application, 16)
    made = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        try:
            while True:
                reservation = reserve(app_id, jobs[seed])
                if reservation is None:
                    return
                actual = CALL_MAX * Decimal(str(rng.uniform(0.4, 1.0)))
                budget.budget_settle(reservation=reservation, actual=actual)
                with lock:
                    made.append(actual)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    day = BudgetDay.objects.get(application=owner.application)
    assert day.reserved_usd == 0
    assert set(recorded("shadow", jobs).values()) == {0}
    assert day.shadow_spent_usd == pytest.approx(sum(made), abs=Decimal("0.0000001") * len(made))
    assert day.shadow_spent_usd <= Decimal("1.00")  # calls cost at most what they reserved
    assert day.shadow_spent_usd > Decimal("1.00") - 16 * CALL_MAX  # and the budget was used
    assert day.calls == len(made)
    assert day.refused >= 16


@pytest.mark.django_db(transaction=True)
def test_a_call_costing_more_than_reserved_overshoots_by_less_than_one_call(owner):
    policy_set(owner.application, daily_budget_usd=Decimal("0.10"), base_rate=1.0, reverse_rate=1.0)
    app_id = owner.application.id
    (job,) = running_jobs(owner.application, 1)
    reservations = []
    while (r := reserve(app_id, job)) is not None:
        reservations.append(r)
    assert len(reservations) == 9  # 9 × 0.011 = 0.099 ≤ 0.10 < 10 × 0.011
    for r in reservations[:-1]:
        budget.budget_settle(reservation=r, actual=CALL_MAX)
    budget.budget_settle(reservation=reservations[-1], actual=CALL_MAX * 2)
    day = BudgetDay.objects.get(application=owner.application)
    assert day.spent_usd == Decimal("0.11")
    assert day.spent_usd - Decimal("0.10") < 2 * CALL_MAX
    assert reserve(app_id, job, Decimal("0.000001")) is None


@pytest.mark.django_db
def test_an_attempt_that_lost_its_job_reserves_nothing(owner):
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0)
    (job,) = running_jobs(owner.application, 1)
    ShadowSample.objects.filter(pk=job).update(attempts=2)  # another delivery took it over
    with pytest.raises(budget.JobLost):
        reserve(owner.application.id, job)
    assert not BudgetDay.objects.exists()  # neither reserved nor counted as refused
    assert recorded("shadow", [job]) == {job: 0}


@pytest.mark.django_db
def test_a_killed_shadow_jobs_reservation_comes_back_when_the_job_is_claimed_again(shadow_jobs):
    first, second = shadow_jobs
    held = {job.claim.sample_id: job.reservation.amount for job in shadow_jobs_open(shadow_jobs)}
    assert reserved_usd() == sum(held.values()) > 0
    assert recorded("shadow", shadow_jobs) == held

    leases_expire([first])
    (claim,) = outbox.shadow_claims_load(sample_ids=shadow_jobs)  # the second is still in flight
    assert (claim.sample_id, claim.attempt) == (first, 2)
    assert reserved_usd() == held[second]
    assert recorded("shadow", shadow_jobs) == {first: 0, second: held[second]}

    leases_expire(shadow_jobs)  # the new delivery died before reserving; then both run
    outcomes = shadow_services.shadow_runs_execute(sample_ids=shadow_jobs)
    assert {(o.status, o.attempt) for o in outcomes.values()} == {("done", 3), ("done", 2)}
    day = BudgetDay.objects.get()
    assert day.reserved_usd == 0
    assert day.shadow_spent_usd == sum(ShadowRun.objects.values_list("cost_usd", flat=True))
    assert recorded("shadow", shadow_jobs) == {first: 0, second: 0}


@pytest.mark.django_db
def test_an_attempt_finishing_after_a_takeover_books_its_cost_and_releases_nothing(shadow_jobs):
    first, second = shadow_jobs
    late, _ = shadow_jobs_open(shadow_jobs)
    held_second = recorded("shadow", [second])[second]
    leases_expire([first])
    outbox.shadow_claims_load(sample_ids=[first])  # releases the first attempt's reservation

    # That attempt was only slow: its answer arrives now.
    answer = ChatResult(
        "late", prompt_tokens=10, completion_tokens=5, latency_ms=1.0, cost_usd=0.0001, model="m", attempts=1
    )
    outcome = shadow_services._shadow_job_close(late, answer, redact=str, max_attempts=1)
    assert outcome.status == "superseded"
    day = BudgetDay.objects.get()
    assert day.reserved_usd == held_second  # released once, by the claim: not held_second - held_first
    assert day.shadow_spent_usd == Decimal("0.0001")  # the call was paid for
    assert not ShadowRun.objects.exists()


@pytest.mark.django_db
def test_a_reservation_is_released_from_the_day_it_was_made_on(owner, settings):
    settings.SHADOW_LEASE_S = 1
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    app_id = owner.application.id
    old, other = running_jobs(owner.application, 2)
    reserve(app_id, old)
    yesterday = timezone.now().date() - timedelta(days=1)
    # Made just before midnight: the ledger's row and the job's record are yesterday's.
    BudgetDay.objects.update(day=yesterday)
    ShadowSample.objects.filter(pk=old).update(shadow_reserved_day=yesterday)
    assert reserve(app_id, old).day == yesterday  # the attempt's reservations stay on one day
    assert reserve(app_id, other).day == timezone.now().date()

    leases_expire([old])
    outbox.shadow_claims_load(sample_ids=[old])
    days = dict(BudgetDay.objects.values_list("day", "reserved_usd"))
    assert days == {yesterday: 0, timezone.now().date(): CALL_MAX}


@pytest.mark.django_db
def test_a_killed_judge_jobs_reservation_comes_back_when_the_pair_is_claimed_again(shadowed_pairs):
    pairs = shadowed_pairs
    shadow_spent = BudgetDay.objects.get().shadow_spent_usd

    # A worker claims the pairs, reserves their LLM judgments and dies.
    opened = [
        judging_services._pair_job_open(claim, max_attempts=1) for claim in outbox.judge_claims_load(sample_ids=pairs)
    ]
    held = {job.claim.sample_id: sum(call.reservation.amount for call in job.calls) for job in opened if job.calls}
    assert len(held) > 1
    assert reserved_usd() == sum(held.values())
    assert {k: v for k, v in recorded("judge", pairs).items() if v} == held

    first = min(held)
    leases_expire([first], judge=True)
    (claim,) = outbox.judge_claims_load(sample_ids=pairs)
    assert (claim.sample_id, claim.attempt) == (first, 2)
    assert reserved_usd() == sum(held.values()) - held[first]
    assert recorded("judge", [first]) == {first: 0}

    leases_expire(pairs, judge=True)
    outcomes = judging_services.pair_judges_execute(sample_ids=pairs)
    assert {o.status for o in outcomes.values()} == {"done"}
    day = BudgetDay.objects.get()
    assert day.reserved_usd == 0
    assert day.shadow_spent_usd == shadow_spent
    assert day.judge_spent_usd == sum(Judgment.objects.values_list("cost_usd", flat=True))
    assert set(recorded("judge", pairs).values()) == {0}


# -- a budget held by calls in flight is not a spent one ----------------------------------


def cap_of(usd: Decimal) -> Decimal:
    """A daily budget the policy accepts (4 decimal places), rounded up."""
    return usd.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def worst_case(sample_id: int) -> Decimal:
    """What a shadow run of the sample reserves (its endpoint's price × the prompt and SHADOW_MAX_TOKENS)."""
    sample = ShadowSample.objects.select_related("decision").get(pk=sample_id)
    endpoint = (
        ModelEndpoint.objects.filter(application_id=sample.application_id, tier=sample.shadow_tier)
        .order_by("name")
        .first()
    )
    messages = shadow_services.decision_messages(sample.decision)
    return budget._money(budget.call_cost_max(endpoint, messages, django_settings.SHADOW_MAX_TOKENS))


@pytest.mark.django_db
def test_a_budget_held_by_calls_in_flight_makes_a_shadow_job_retry_not_fail(shadow_jobs, owner):
    first, second = shadow_jobs
    (in_flight,) = shadow_jobs_open([first])  # its worst case is reserved, nothing is spent
    # Either call fits alone, not both: the second is refused while the first is in flight.
    slack = Decimal("0.0001")  # for what the first call really costs
    policy_set(
        owner.application, daily_budget_usd=cap_of(max(in_flight.reservation.amount, worst_case(second)) + slack)
    )
    outcome = shadow_services.shadow_runs_execute(sample_ids=[second], max_attempts=3)[second]
    assert (outcome.status, outcome.reason) == ("retry", shadow_services.BUDGET_HELD)
    row = ShadowSample.objects.get(pk=second)
    assert (row.status, row.error) == ("enqueued", shadow_services.BUDGET_HELD)
    assert BudgetDay.objects.get().refused == 1

    # The call in flight costs what calls really cost (far below its reservation): room again.
    budget.budget_settle(reservation=in_flight.reservation, actual=slack / 2)
    assert shadow_services.shadow_runs_execute(sample_ids=[second], max_attempts=3)[second].status == "done"


@pytest.mark.django_db
def test_a_spent_budget_fails_the_job_at_once_and_a_held_one_on_the_last_attempt(shadow_jobs, owner):
    first, second = shadow_jobs
    (in_flight,) = shadow_jobs_open([first])
    cap = cap_of(max(in_flight.reservation.amount, worst_case(second)))
    policy_set(owner.application, daily_budget_usd=cap)
    outcome = shadow_services.shadow_runs_execute(sample_ids=[second], max_attempts=1)[second]
    assert (outcome.status, outcome.reason) == ("failed", shadow_services.BUDGET_SPENT)  # no attempt left

    ShadowSample.objects.filter(pk=second).update(status="pending", error="")
    budget.budget_settle(reservation=in_flight.reservation, actual=cap)  # really spent now
    outcome = shadow_services.shadow_runs_execute(sample_ids=[second], max_attempts=5)[second]
    assert (outcome.status, outcome.reason) == ("failed", shadow_services.BUDGET_SPENT)


@pytest.mark.django_db
def test_a_budget_held_by_calls_in_flight_makes_a_judge_job_retry_not_fail(shadowed_pairs, owner):
    pairs = shadowed_pairs
    opened = [judging_services._pair_job_open(c, max_attempts=1) for c in outbox.judge_claims_load(sample_ids=pairs)]
    held = {job.claim.sample_id: sum(call.reservation.amount for call in job.calls) for job in opened if job.calls}
    first = min(held)
    others = sum(held.values()) - held[first]
    assert others >= held[first]  # several pairs need the LLM judge, with similar worst cases
    # Room for what is spent, the others' calls in flight, and half of the first pair's worst case.
    policy_set(owner.application, daily_budget_usd=cap_of(BudgetDay.objects.get().spent_usd + others + held[first] / 2))

    leases_expire([first], judge=True)
    outcome = judging_services.pair_judges_execute(sample_ids=[first], max_attempts=3)[first]
    assert (outcome.status, outcome.reason) == ("retry", shadow_services.BUDGET_HELD)
    assert ShadowSample.objects.get(pk=first).judge_status == "enqueued"
    assert not Judgment.objects.filter(sample_id=first).exists()

    leases_expire(pairs, judge=True)
    outbox.judge_claims_load(sample_ids=[p for p in held if p != first])  # the others' reservations come back
    assert judging_services.pair_judges_execute(sample_ids=[first], max_attempts=3)[first].status == "done"


def _own_connection():
    """A second session on the test database, outside Django's connection handling."""
    import psycopg

    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"], port=s["PORT"] or None
    )


@pytest.mark.django_db(transaction=True)
def test_a_claim_locks_the_ledger_rows_it_releases_in_day_order(owner, settings):
    # A batch whose killed jobs hold reservations of several days (jobs killed before midnight).
    # Two claims locking the same ledger rows in different orders would deadlock, so a claim
    # takes them in (application, day) order: while it waits for the oldest row it holds none
    # of the others. Small batches happened to get that order from a sorted GROUP BY; the
    # claim runs here with sorting discouraged (as the planner may choose a hash aggregate for
    # big batches), where only an explicit order keeps it: a hash order puts the oldest of
    # eight days first one time in eight.
    import psycopg

    settings.SHADOW_LEASE_S = 1
    policy_set(owner.application, base_rate=1.0, reverse_rate=1.0, min_judged_per_segment=0)
    app_id = owner.application.id
    jobs = running_jobs(owner.application, 8)
    today = timezone.now().date()
    days = [today - timedelta(days=i) for i in range(len(jobs))]
    for job, day in zip(jobs, days, strict=True):
        BudgetDay.objects.create(application_id=app_id, day=day, reserved_usd=CALL_MAX)
        ShadowSample.objects.filter(pk=job).update(shadow_reserved_usd=CALL_MAX, shadow_reserved_day=day)
    leases_expire(jobs)
    claimed = []

    def claim() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET enable_sort = off")
            claimed.extend(c.sample_id for c in outbox.shadow_claims_load(sample_ids=jobs))
        finally:
            connection.close()

    lock_row = "SELECT 1 FROM shadow_budgetday WHERE application_id = %s AND day = %s FOR UPDATE"
    with _own_connection() as holder, _own_connection() as prober:
        holder.execute(lock_row, [app_id, min(days)])  # an open transaction holds the oldest row
        worker = threading.Thread(target=claim)
        worker.start()
        for _ in range(200):  # until the claim waits for a lock (at most 10 s)
            waiting = prober.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ["%shadow_budgetday%"],
            ).fetchone()[0]
            prober.rollback()
            if waiting:
                break
            threading.Event().wait(0.05)
        try:
            assert waiting, "the claim never waited for the oldest ledger row"
            for day in sorted(days)[1:]:
                try:
                    prober.execute(lock_row + " NOWAIT", [app_id, day])
                except psycopg.errors.LockNotAvailable:
                    pytest.fail(f"the claim holds the row of {day} while it waits for {min(days)}'s")
                finally:
                    prober.rollback()
        finally:
            holder.rollback()
            worker.join(10)
    assert sorted(claimed) == sorted(jobs)
    assert set(BudgetDay.objects.values_list("reserved_usd", flat=True)) == {0}


@pytest.mark.django_db
def test_an_unexpected_error_while_storing_a_run_settles_its_call_at_once(shadow_jobs, monkeypatch):
    # A bug (injected here: the redaction of the second answer raises) breaks the batch after
    # the calls were answered. The first job is done; the second call was paid for, so its
    # cost is booked and its reservation given back at once (not held until the job's lease
    # expires), and the error reaches the task. The job runs again after its lease.
    first, second = shadow_jobs
    redactor = shadow_services.text_redactor

    def breaking_redactor(app_id):
        redact, answers = redactor(app_id), []

        def redact_or_break(text):
            answers.append(text)
            if len(answers) == 2:
                raise RuntimeError("a bug in redaction")
            return redact(text)

        return redact_or_break

    monkeypatch.setattr(shadow_services, "text_redactor", breaking_redactor)
    with pytest.raises(RuntimeError, match="a bug"):
        shadow_services.shadow_runs_execute(sample_ids=shadow_jobs)
    day = BudgetDay.objects.get()
    assert day.reserved_usd == 0
    assert recorded("shadow", shadow_jobs) == {first: 0, second: 0}
    assert ShadowRun.objects.get().sample_id == first
    assert day.shadow_spent_usd > ShadowRun.objects.get().cost_usd  # the second call is booked too
    assert ShadowSample.objects.get(pk=second).status == ShadowSample.RUNNING  # its lease brings it back

    monkeypatch.undo()
    leases_expire([second])
    assert shadow_services.shadow_runs_execute(sample_ids=[second])[second].status == "done"
    assert BudgetDay.objects.get().reserved_usd == 0


@pytest.mark.django_db
def test_an_unexpected_error_while_combining_a_judgment_gives_its_reservation_back(shadowed_pairs, monkeypatch):
    # A bug (injected here: combining the third pair's two orders raises) breaks the judge
    # batch after every call was answered. Judgments stored before it keep their cost; the
    # rest of the batch's reservations are given back at once, and the error reaches the task.
    combine, combined = judging_services.pairwise_judge_combine, []

    def combine_or_break(call, *args, **kwargs):
        combined.append(call.sample_id)
        if len(combined) == 3:
            raise RuntimeError("a bug while combining")
        return combine(call, *args, **kwargs)

    monkeypatch.setattr(judging_services, "pairwise_judge_combine", combine_or_break)
    with pytest.raises(RuntimeError, match="a bug"):
        judging_services.pair_judges_execute(sample_ids=shadowed_pairs)
    day = BudgetDay.objects.get()
    assert len(combined) == 3
    assert day.reserved_usd == 0
    assert set(recorded("judge", shadowed_pairs).values()) == {0}
    assert day.judge_spent_usd == sum(Judgment.objects.values_list("cost_usd", flat=True)) > 0

    monkeypatch.undo()
    leases_expire(shadowed_pairs, judge=True)
    outcomes = judging_services.pair_judges_execute(sample_ids=shadowed_pairs)
    assert {o.status for o in outcomes.values()} == {"done"}
    assert BudgetDay.objects.get().reserved_usd == 0
