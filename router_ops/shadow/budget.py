"""The daily budget per application, enforced with conditional writes on the ledger.

A call first *reserves* its maximum cost: one statement (an upsert whose DO UPDATE
is conditional) that adds the amount only if spent + reserved + amount still fits
under the cap. Postgres serialises concurrent updates of the row, and each re-checks the condition against the row as committed
by the one before, so however many workers race, the sum of reservations never
passes the cap. After the call the reservation is *settled*: released and replaced
by the actual cost. Spend therefore exceeds the cap only if a call costs more than
its reserved maximum, i.e. by less than one call's cost.

A reservation is held by a job attempt (a ShadowSample row and its attempt number, the
outbox's fencing number), and the row records what its current attempt holds, so that
a worker killed between reserve and settle does not keep the budget until the day ends:

1. Reserving locks the row, checks the attempt, adds the amount to the ledger and to the
   row's `shadow_reserved_usd` / `judge_reserved_usd`, in one statement. An attempt whose
   job was taken over reserves nothing (`JobLost`).
2. Settling subtracts the amount from the row, fenced by the attempt, and releases it
   from the ledger only if that subtraction happened; the actual cost is booked either way.
3. A claim that starts a new attempt (outbox.py) releases whatever the row still records
   from the ledger, and zeroes it, in the claiming statement.

A reservation is thus released exactly once, by whoever removes it from its row: a killed
worker's reservation comes back when its lease goes stale and the job is claimed again,
and an attempt that finishes after losing its lease books its cost without releasing
again what the claim released. Its call was then not covered by a reservation, so the cap
can be passed by that call's cost; the lease is longer than a run so that it does not happen.

A refusal is final only when the budget is *spent*: while calls in flight hold it (a
worst-case reservation is many times a real call's cost), `budget_fits_when_settled` says
so and the job is retried later instead of failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal

from django.db import connection
from django.utils import timezone

from router_ops.shadow.models import SamplingPolicy

KIND_SHADOW = "shadow"
KIND_JUDGE = "judge"
_QUANTUM = Decimal("0.00000001")

# Per kind of job: its status and attempt columns and its reservation record on the
# ShadowSample row, and the ledger's spend column.
_COLUMNS = {
    KIND_SHADOW: {
        "status": "status",
        "attempts": "attempts",
        "held": "shadow_reserved_usd",
        "held_day": "shadow_reserved_day",
        "spent": "shadow_spent_usd",
    },
    KIND_JUDGE: {
        "status": "judge_status",
        "attempts": "judge_attempts",
        "held": "judge_reserved_usd",
        "held_day": "judge_reserved_day",
        "spent": "judge_spent_usd",
    },
}


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(_QUANTUM, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class Reservation:
    application_id: int
    day: date
    amount: Decimal
    kind: str  # KIND_SHADOW or KIND_JUDGE
    sample_id: int  # the job attempt holding it
    attempt: int


class JobLost(Exception):
    """The job was taken over (its lease went stale) before this attempt reserved: the
    attempt must stop, and whatever it reserved before is released by the new claim."""


# One statement, in autocommit:
# - `job` locks the job's row if this attempt still holds it. The attempt's reservations all
#   go to one day, that of its first (a pair's judges reserve one after another, perhaps
#   across midnight), so the row records one amount and one day.
# - `ledger` creates the day's row or adds to it, in both cases only if spent + reserved +
#   amount still fits under the cap (the policy's, unless the caller passes one). ON CONFLICT
#   DO UPDATE locks the row and evaluates its WHERE against the latest committed version,
#   exactly like a conditional UPDATE; a first reservation racing another's INSERT waits
#   for it and then takes the DO UPDATE branch.
# - `held` records the reservation on the job's row.
# Rows are locked job first, ledger second, as every statement here does.
_RESERVE = """
WITH job AS (
    SELECT CASE WHEN {held} > 0 THEN {held_day} ELSE %(day)s::date END AS day
    FROM shadow_shadowsample
    WHERE id = %(sample)s AND {status} = 'running' AND {attempts} = %(attempt)s
    FOR UPDATE
), cap AS (
    SELECT coalesce(%(cap)s::numeric,
                    (SELECT daily_budget_usd FROM shadow_samplingpolicy WHERE application_id = %(app)s),
                    %(default_cap)s) AS usd
), ledger AS (
    INSERT INTO shadow_budgetday AS b (
        application_id, day, reserved_usd, shadow_spent_usd, judge_spent_usd, calls, refused
    )
    SELECT %(app)s, job.day, %(amount)s, 0, 0, 1, 0 FROM job, cap WHERE %(amount)s <= cap.usd
    ON CONFLICT (application_id, day) DO UPDATE
    SET reserved_usd = b.reserved_usd + EXCLUDED.reserved_usd, calls = b.calls + 1
    WHERE b.shadow_spent_usd + b.judge_spent_usd + b.reserved_usd + EXCLUDED.reserved_usd <= (SELECT usd FROM cap)
    RETURNING b.day
), held AS (
    UPDATE shadow_shadowsample s SET {held} = s.{held} + %(amount)s, {held_day} = ledger.day
    FROM ledger WHERE s.id = %(sample)s
)
SELECT EXISTS (SELECT 1 FROM job), (SELECT day FROM ledger)
"""

_REFUSED = """
INSERT INTO shadow_budgetday AS b (application_id, day, reserved_usd, shadow_spent_usd, judge_spent_usd, calls, refused)
VALUES (%(app)s, %(day)s, 0, 0, 0, 0, 1)
ON CONFLICT (application_id, day) DO UPDATE SET refused = b.refused + 1
"""


def budget_reserve(
    *, application_id: int, amount: float | Decimal, kind: str, sample_id: int, attempt: int, cap: Decimal | None = None
) -> Reservation | None:
    """Reserve `amount` (the call's maximum cost) under today's cap for the job's attempt;
    None when it does not fit, JobLost when the attempt no longer holds the job.
    One round trip when it fits; the locks are held for that statement only."""
    day = timezone.now().date()
    amount = _money(amount)
    default_cap = SamplingPolicy._meta.get_field("daily_budget_usd").default
    params = {
        "app": application_id,
        "day": day,
        "amount": amount,
        "cap": cap,
        "default_cap": default_cap,
        "sample": sample_id,
        "attempt": attempt,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE.format(**_COLUMNS[kind]), params)
        ours, reserved_on = cursor.fetchone()
        if not ours:
            raise JobLost(f"{kind} job of sample {sample_id}: attempt {attempt} was taken over")
        if reserved_on is not None:
            return Reservation(application_id, reserved_on, amount, kind, sample_id, attempt)
        cursor.execute(_REFUSED, params)
    return None


_FITS_WHEN_SETTLED = """
SELECT coalesce((SELECT shadow_spent_usd + judge_spent_usd FROM shadow_budgetday
                 WHERE application_id = %(app)s AND day = %(day)s), 0) + %(amount)s
       <= coalesce(%(cap)s::numeric,
                   (SELECT daily_budget_usd FROM shadow_samplingpolicy WHERE application_id = %(app)s),
                   %(default_cap)s)
"""


def budget_fits_when_settled(*, application_id: int, amount: float | Decimal, cap: Decimal | None = None) -> bool:
    """After a refusal: would `amount` fit under the cap beside what is really spent today,
    i.e. is the budget only *held* by calls in flight (whose worst-case reservations are
    many times their real cost)? Then the job should try again later rather than fail."""
    params = {
        "app": application_id,
        "day": timezone.now().date(),
        "amount": _money(amount),
        "cap": cap,
        "default_cap": SamplingPolicy._meta.get_field("daily_budget_usd").default,
    }
    with connection.cursor() as cursor:
        cursor.execute(_FITS_WHEN_SETTLED, params)
        return bool(cursor.fetchone()[0])


# Settling, as CTEs of one statement: `held` takes the reservation off the job's row if the
# attempt still holds the job; `settle` books the actual cost and releases the reservation
# only if `held` (or the caller's own fence) did. Otherwise the claim that took the job over
# has released it already. GREATEST only keeps the CHECK (reserved_usd >= 0) from failing a
# statement if the ledger was edited by hand: correctness rests on the fence, not on it.
_HELD = """held AS (
    UPDATE shadow_shadowsample SET {held} = {held} - %(reserved)s
    WHERE id = %(sample)s AND {status} = 'running' AND {attempts} = %(attempt)s
    RETURNING 1
)"""
_SETTLE = """settle AS (
    UPDATE shadow_budgetday
    SET reserved_usd = GREATEST(reserved_usd - CASE WHEN EXISTS (SELECT 1 FROM {fence}) THEN %(reserved)s ELSE 0 END, 0),
        {spent} = {spent} + %(actual)s
    WHERE application_id = %(app)s AND day = %(day)s
)"""


def settle_statement(*, reservation: Reservation, actual: float | Decimal, fence: str = "") -> tuple[str, dict]:
    """`budget_settle` as CTEs (`held AS (…), settle AS (…)`) for the WITH of a caller's own
    finishing statement (one round trip for settle + result). Parameter names are prefixed
    `settle_` so they cannot clash with the caller's.

    A caller whose statement already ends the attempt with an UPDATE of the job's row (a
    row can be updated only once per statement) names that CTE as `fence` and gets the
    `settle` CTE alone: the fence must check the attempt, clear the row's reservation and
    return a row only when it did."""
    columns = _COLUMNS[reservation.kind]
    ctes = [_SETTLE.format(fence=fence or "held", **columns)]
    if not fence:
        ctes.insert(0, _HELD.format(**columns))
    sql = ", ".join(ctes).replace("%(", "%(settle_")
    params = {
        "settle_reserved": reservation.amount,
        "settle_actual": _money(actual),
        "settle_app": reservation.application_id,
        "settle_day": reservation.day,
        "settle_sample": reservation.sample_id,
        "settle_attempt": reservation.attempt,
    }
    return sql, params


def budget_settle(*, reservation: Reservation, actual: float | Decimal) -> None:
    """Release the reservation (if its attempt still holds the job) and book the actual
    cost (0 for a call that failed)."""
    sql, params = settle_statement(reservation=reservation, actual=actual)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {sql} SELECT 1", params)


def budget_release(reservations) -> None:
    """Give back reservations whose calls were never answered (an unexpected error in the
    batch): book nothing. Had this failed too, the next claim of their jobs releases them."""
    for reservation in reservations:
        budget_settle(reservation=reservation, actual=0)


# For a claim statement (outbox.py) that starts new attempts: release from the ledger what
# the claimed rows' previous attempts still held. Expects a CTE `prior(application_id, day,
# usd)` of the rows as they were before the claim (the claim zeroes their records). Rows
# holding nothing touch no ledger row, so a normal claim costs nothing more. The ledger
# rows are locked in (application, day) order first: a batch may hold reservations of two
# days (a job killed before midnight) or two applications, and two claims locking the same
# two rows in opposite orders would deadlock.
RELEASE_PRIOR_SQL = """
UPDATE shadow_budgetday b SET reserved_usd = GREATEST(b.reserved_usd - r.usd, 0)
FROM (
    SELECT l.id, held.usd
    FROM (SELECT application_id, day, sum(usd) AS usd FROM prior WHERE usd > 0 GROUP BY application_id, day) held
    JOIN shadow_budgetday l ON l.application_id = held.application_id AND l.day = held.day
    ORDER BY l.application_id, l.day
    FOR UPDATE OF l
) r
WHERE b.id = r.id
"""


def call_cost_max(endpoint, messages: list[dict], max_tokens: int) -> float:
    """An upper bound of a call's cost. A byte-level BPE token is at least one byte, so
    the prompt has at most as many tokens as UTF-8 bytes (plus per-message overhead);
    the completion at most max_tokens."""
    size = sum(len(str(message.get("content") or "").encode()) for message in messages)
    prompt_tokens = size + 8 * len(messages) + 16
    return endpoint.cost_usd(prompt_tokens, max_tokens)
