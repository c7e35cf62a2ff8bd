"""Rollout plans: defaults and the validation of custom stages."""

from __future__ import annotations

import pytest

from router_ops.rollouts.plans import DEFAULT_PLAN, PlanError, plan_build


def test_default_plan():
    plan = plan_build(None)
    assert [(s["name"], s["weight_bp"]) for s in plan] == [
        ("dark", 0),
        ("1%", 100),
        ("5%", 500),
        ("25%", 2500),
        ("50%", 5000),
        ("100%", 10000),
    ]
    assert all(s["margin"] == 0.01 and s["alpha"] == 0.05 for s in plan)
    assert len(DEFAULT_PLAN) == 6


def test_custom_stages_fill_defaults_by_weight():
    plan = plan_build([{"weight_bp": 200}, {"weight_bp": 1000, "alpha": 0.01, "name": "tenth"}, {"weight_bp": 10000}])
    assert plan[0]["name"] == "2%" and plan[0]["advance"] == "manual"  # the first stage is entered by approval
    assert plan[1]["name"] == "tenth" and plan[1]["alpha"] == 0.01 and plan[1]["min_judged_per_segment"] == 300
    assert plan[2]["min_judged_per_segment"] == 0


@pytest.mark.parametrize(
    "stages,where,fragment",
    [
        ([], "stages", "non-empty"),
        ([{"weight_bp": 0}, {"weight_bp": 5000}], "stages", "weight_bp 10000"),
        ([{"weight_bp": 0}, {"weight_bp": 0}, {"weight_bp": 10000}], "stages", "rise strictly"),
        ([{"weight_bp": 0, "advance": "auto"}, {"weight_bp": 10000}], "stages", '"manual"'),
        ([{"weight_bp": 0, "alpha": 0}, {"weight_bp": 10000}], "0", "alpha"),
        ([{"weight_bp": 0, "margin": 2}, {"weight_bp": 10000}], "0", "margin"),
        ([{"weight_bp": 10001}], "0", "weight_bp"),
        ([{"name": "x"}], "0", "weight_bp"),
        ([{"weight_bp": 0, "name": "a"}, {"weight_bp": 10000, "name": "a"}], "stages", "unique"),
    ],
)
def test_invalid_plans(stages, where, fragment):
    with pytest.raises(PlanError) as refused:
        plan_build(stages)
    assert where in refused.value.errors
    assert fragment in str(refused.value.errors[where])
