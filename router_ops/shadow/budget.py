"""The daily budget per application, enforced with conditional writes on the ledger.

A call first *reserves* its maximum cost: one statement (an upsert whose DO UPDATE
is conditional) that adds the amount only if spent + reserved + amount still fits
under the cap. Postgres serialises concurrent updates of the row, and each re-checks the condition against the row as committed
by the one before, so however many workers race, the sum of reservations never
passes the cap. After the call the reservation is *settled*: released and replaced
by the actual cost. Spend therefore exceeds the cap only if a call costs more than
its reserved maximum, i.e. by less than one call's cost.

A worker killed between reserve and settle leaves its reservation held until the
day ends: the budget errs on the side of spending less.
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


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(_QUANTUM, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class Reservation:
    application_id: int
    day: date
    amount: Decimal


def budget_cap(*, application_id: int) -> Decimal:
    cap = (
        SamplingPolicy.objects.filter(application_id=application_id).values_list("daily_budget_usd", flat=True).first()
    )
    return cap if cap is not None else SamplingPolicy._meta.get_field("daily_budget_usd").default


# One statement, in autocommit: create today's row or add to it, in both cases only if
# spent + reserved + amount still fits under the cap (the policy's, read in the same
# statement, unless the caller passes one). ON CONFLICT DO UPDATE locks the row and
# evaluates its WHERE against the latest committed version, exactly like the conditional
# UPDATE it replaces; a first reservation racing another's INSERT waits for it and
# then takes the DO UPDATE branch.
_RESERVE = """
INSERT INTO shadow_budgetday AS b (application_id, day, reserved_usd, shadow_spent_usd, judge_spent_usd, calls, refused)
SELECT %(app)s, %(day)s, %(amount)s, 0, 0, 1, 0
FROM (SELECT coalesce(%(cap)s::numeric,
                      (SELECT daily_budget_usd FROM shadow_samplingpolicy WHERE application_id = %(app)s),
                      %(default_cap)s) AS cap) AS p
WHERE %(amount)s <= p.cap
ON CONFLICT (application_id, day) DO UPDATE
SET reserved_usd = b.reserved_usd + EXCLUDED.reserved_usd, calls = b.calls + 1
WHERE b.shadow_spent_usd + b.judge_spent_usd + b.reserved_usd + EXCLUDED.reserved_usd <= coalesce(
    %(cap)s::numeric,
    (SELECT daily_budget_usd FROM shadow_samplingpolicy WHERE application_id = %(app)s),
    %(default_cap)s)
RETURNING 1
"""

_REFUSED = """
INSERT INTO shadow_budgetday AS b (application_id, day, reserved_usd, shadow_spent_usd, judge_spent_usd, calls, refused)
VALUES (%(app)s, %(day)s, 0, 0, 0, 0, 1)
ON CONFLICT (application_id, day) DO UPDATE SET refused = b.refused + 1
"""


def budget_reserve(*, application_id: int, amount: float | Decimal, cap: Decimal | None = None) -> Reservation | None:
    """Reserve `amount` (the call's maximum cost) under today's cap; None when it does not fit.
    One round trip when it fits; the lock on the day's row is held for that statement only."""
    day = timezone.now().date()
    amount = _money(amount)
    default_cap = SamplingPolicy._meta.get_field("daily_budget_usd").default
    params = {"app": application_id, "day": day, "amount": amount, "cap": cap, "default_cap": default_cap}
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE, params)
        if cursor.fetchone() is not None:
            return Reservation(application_id, day, amount)
        cursor.execute(_REFUSED, params)
    return None


_SETTLE = """
UPDATE shadow_budgetday
SET reserved_usd = GREATEST(reserved_usd - %(reserved)s, 0), {column} = {column} + %(actual)s
WHERE application_id = %(app)s AND day = %(day)s
"""
_COLUMNS = {KIND_SHADOW: "shadow_spent_usd", KIND_JUDGE: "judge_spent_usd"}


def settle_statement(*, reservation: Reservation, actual: float | Decimal, kind: str) -> tuple[str, dict]:
    """`budget_settle` as SQL and parameters, for a caller that runs it as a CTE of its own
    finishing statement (one round trip for settle + result). Parameter names are prefixed
    `settle_` so they cannot clash with the caller's."""
    column = _COLUMNS[kind]
    sql = _SETTLE.format(column=column).replace("%(", "%(settle_")
    params = {
        "settle_reserved": reservation.amount,
        "settle_actual": _money(actual),
        "settle_app": reservation.application_id,
        "settle_day": reservation.day,
    }
    return sql, params


def budget_settle(*, reservation: Reservation, actual: float | Decimal, kind: str) -> None:
    """Release the reservation and book the actual cost (0 for a call that failed)."""
    column = _COLUMNS[kind]
    with connection.cursor() as cursor:
        cursor.execute(
            _SETTLE.format(column=column),
            {
                "reserved": reservation.amount,
                "actual": _money(actual),
                "app": reservation.application_id,
                "day": reservation.day,
            },
        )


def call_cost_max(endpoint, messages: list[dict], max_tokens: int) -> float:
    """An upper bound of a call's cost. A byte-level BPE token is at least one byte, so
    the prompt has at most as many tokens as UTF-8 bytes (plus per-message overhead);
    the completion at most max_tokens."""
    size = sum(len(str(message.get("content") or "").encode()) for message in messages)
    prompt_tokens = size + 8 * len(messages) + 16
    return endpoint.cost_usd(prompt_tokens, max_tokens)
