"""The daily budget per application, enforced with conditional UPDATEs on the ledger.

A call first *reserves* its maximum cost: one UPDATE that adds the amount only if
spent + reserved + amount still fits under the cap. Postgres serialises concurrent
UPDATEs of the row, and each re-checks the condition against the row as committed
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

from django.db import connection, transaction
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


_ENSURE = """
INSERT INTO shadow_budgetday (application_id, day, reserved_usd, shadow_spent_usd, judge_spent_usd, calls, refused)
VALUES (%(app)s, %(day)s, 0, 0, 0, 0, 0)
ON CONFLICT (application_id, day) DO NOTHING
"""

_RESERVE = """
UPDATE shadow_budgetday
SET reserved_usd = reserved_usd + %(amount)s, calls = calls + 1
WHERE application_id = %(app)s AND day = %(day)s
  AND shadow_spent_usd + judge_spent_usd + reserved_usd + %(amount)s <= %(cap)s
"""

_REFUSED = "UPDATE shadow_budgetday SET refused = refused + 1 WHERE application_id = %(app)s AND day = %(day)s"


def budget_reserve(*, application_id: int, amount: float | Decimal, cap: Decimal | None = None) -> Reservation | None:
    """Reserve `amount` (the call's maximum cost) under today's cap; None when it does not fit."""
    day = timezone.now().date()
    amount = _money(amount)
    if cap is None:
        cap = budget_cap(application_id=application_id)
    params = {"app": application_id, "day": day, "amount": amount, "cap": cap}
    # Its own short transaction: the row lock is held for two statements, never during the call.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_ENSURE, params)
        cursor.execute(_RESERVE, params)
        if cursor.rowcount == 1:
            return Reservation(application_id, day, amount)
        cursor.execute(_REFUSED, params)
    return None


_SETTLE = """
UPDATE shadow_budgetday
SET reserved_usd = GREATEST(reserved_usd - %(reserved)s, 0), {column} = {column} + %(actual)s
WHERE application_id = %(app)s AND day = %(day)s
"""


def budget_settle(*, reservation: Reservation, actual: float | Decimal, kind: str) -> None:
    """Release the reservation and book the actual cost (0 for a call that failed)."""
    column = {KIND_SHADOW: "shadow_spent_usd", KIND_JUDGE: "judge_spent_usd"}[kind]
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
