"""The daily budget under concurrency: threads with their own database connections race
to reserve against a real Postgres row."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection

from router_ops.shadow import budget
from router_ops.shadow.models import BudgetDay
from tests.shadow.conftest import policy_set

CALL_MAX = Decimal("0.0110")


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_overspend_the_cap(owner):
    policy_set(owner.application, daily_budget_usd=Decimal("1.00"))
    app_id = owner.application.id
    made = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        try:
            while True:
                reservation = budget.budget_reserve(application_id=app_id, amount=CALL_MAX)
                if reservation is None:
                    return
                actual = CALL_MAX * Decimal(str(rng.uniform(0.4, 1.0)))
                budget.budget_settle(reservation=reservation, actual=actual, kind=budget.KIND_SHADOW)
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
    assert day.shadow_spent_usd == pytest.approx(sum(made), abs=Decimal("0.0000001") * len(made))
    assert day.shadow_spent_usd <= Decimal("1.00")  # calls cost at most what they reserved
    assert day.shadow_spent_usd > Decimal("1.00") - 16 * CALL_MAX  # and the budget was used
    assert day.calls == len(made)
    assert day.refused >= 16


@pytest.mark.django_db(transaction=True)
def test_a_call_costing_more_than_reserved_overshoots_by_less_than_one_call(owner):
    policy_set(owner.application, daily_budget_usd=Decimal("0.10"))
    app_id = owner.application.id
    reservations = []
    while (r := budget.budget_reserve(application_id=app_id, amount=CALL_MAX)) is not None:
        reservations.append(r)
    assert len(reservations) == 9  # 9 × 0.011 = 0.099 ≤ 0.10 < 10 × 0.011
    for r in reservations[:-1]:
        budget.budget_settle(reservation=r, actual=CALL_MAX, kind=budget.KIND_SHADOW)
    budget.budget_settle(reservation=reservations[-1], actual=CALL_MAX * 2, kind=budget.KIND_JUDGE)
    day = BudgetDay.objects.get(application=owner.application)
    assert day.spent_usd == Decimal("0.11")
    assert day.spent_usd - Decimal("0.10") < 2 * CALL_MAX
    assert budget.budget_reserve(application_id=app_id, amount=Decimal("0.000001")) is None
