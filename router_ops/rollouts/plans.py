"""Rollout plans: the default stages and the validation of a custom plan. Pure: no Django.

Default (DESIGN.md §6): dark → 1 % → 5 % → 25 % → 50 % → 100 %. Each stage runs at
least a day (one full weekly-cycle day of traffic: a stage that only saw the night
shift has not seen the enterprise API burst), and people approve the steps that
change who is exposed most: the first real users (1 %), a quarter of traffic (25 %)
and everyone (100 %). δ = 0.01 tolerates at most one extra quality loss per hundred
requests in any segment; α = 0.05 per stage, family-wise across segments (Holm).
"""

from __future__ import annotations

AUTO = "auto"
MANUAL = "manual"
MAX_STAGES = 10
MAX_DURATION_S = 30 * 24 * 3600

DAY = 24 * 3600

DEFAULT_PLAN: tuple[dict, ...] = (
    # The dark stage judges the candidate's shadow decisions: where most of the evidence comes from.
    {"name": "dark", "weight_bp": 0, "min_duration_s": DAY, "min_judged_per_segment": 400, "advance": MANUAL},
    {"name": "1%", "weight_bp": 100, "min_duration_s": DAY, "min_judged_per_segment": 200, "advance": MANUAL},
    {"name": "5%", "weight_bp": 500, "min_duration_s": DAY, "min_judged_per_segment": 300, "advance": AUTO},
    {"name": "25%", "weight_bp": 2500, "min_duration_s": DAY, "min_judged_per_segment": 400, "advance": MANUAL},
    {"name": "50%", "weight_bp": 5000, "min_duration_s": DAY, "min_judged_per_segment": 500, "advance": AUTO},
    # At 100 % no baseline traffic is left to compare: the stage is a soak before the baseline retires.
    {"name": "100%", "weight_bp": 10000, "min_duration_s": DAY, "min_judged_per_segment": 0, "advance": MANUAL},
)
DEFAULT_MARGIN = 0.01
DEFAULT_ALPHA = 0.05

FIELDS = ("name", "weight_bp", "min_duration_s", "min_judged_per_segment", "margin", "alpha", "advance")


class PlanError(ValueError):
    """`errors` maps a stage index (or "stages") to messages, ready for a 400 body."""

    def __init__(self, errors: dict):
        super().__init__(str(errors))
        self.errors = errors


def stage_name(weight_bp: int) -> str:
    return "dark" if weight_bp == 0 else f"{weight_bp / 100:g}%"


def _default_for(weight_bp: int) -> dict:
    for stage in DEFAULT_PLAN:
        if stage["weight_bp"] == weight_bp:
            return stage
    # A weight the default plan lacks borrows the nearest default stage at or below it.
    below = [s for s in DEFAULT_PLAN if s["weight_bp"] <= weight_bp]
    return below[-1]


def _number(value, kind, low, high, *, low_open=False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        return f"must be {'a number' if kind is float else 'an integer'}"
    if (value <= low if low_open else value < low) or value > high:
        return f"must be in {'(' if low_open else '['}{low}, {high}]"
    return None


def plan_build(stages: list[dict] | None) -> list[dict]:
    """A complete, validated plan from `stages` (None: the default plan).

    1. Each stage needs `weight_bp`; other fields default from the default stage of
       that weight (or the nearest one below), the name from the weight.
    2. Weights rise strictly and end at 10000; only the first stage may be dark (0).
    3. The first stage is entered by the request's approval, so it is manual.
    """
    if stages is None:
        return [{**s, "margin": DEFAULT_MARGIN, "alpha": DEFAULT_ALPHA} for s in DEFAULT_PLAN]
    if not isinstance(stages, list) or not stages:
        raise PlanError({"stages": ["Give a non-empty list of stages, or omit it for the default plan."]})
    if len(stages) > MAX_STAGES:
        raise PlanError({"stages": [f"At most {MAX_STAGES} stages."]})
    errors: dict = {}
    plan: list[dict] = []
    for index, raw in enumerate(stages):
        problems: dict[str, list[str]] = {}
        if not isinstance(raw, dict):
            errors[str(index)] = {"non_field_errors": ["Must be an object."]}
            continue
        unknown = sorted(set(raw) - set(FIELDS))
        for name in unknown:
            problems[name] = ["Unknown field."]
        weight = raw.get("weight_bp")
        if weight is None:
            problems["weight_bp"] = ["This field is required."]
        elif message := _number(weight, int, 0, 10000):
            problems["weight_bp"] = [message]
        if problems:
            errors[str(index)] = problems
            continue
        stage = {
            **_default_for(weight),
            "margin": DEFAULT_MARGIN,
            "alpha": DEFAULT_ALPHA,
            "name": stage_name(weight),
            **raw,
        }
        if index == 0 and "advance" not in raw:
            stage["advance"] = MANUAL
        checks = {
            "min_duration_s": _number(stage["min_duration_s"], int, 0, MAX_DURATION_S),
            "min_judged_per_segment": _number(stage["min_judged_per_segment"], int, 0, 1_000_000),
            "margin": _number(stage["margin"], float, 0, 1),
            "alpha": _number(stage["alpha"], float, 0, 0.5, low_open=True),
        }
        problems = {name: [message] for name, message in checks.items() if message}
        if stage["advance"] not in (AUTO, MANUAL):
            problems["advance"] = ['Must be "auto" or "manual".']
        if not isinstance(stage["name"], str) or not 1 <= len(stage["name"]) <= 32:
            problems["name"] = ["Must be a string of 1 to 32 characters."]
        if problems:
            errors[str(index)] = problems
            continue
        plan.append(stage)
    if errors:
        raise PlanError(errors)
    weights = [s["weight_bp"] for s in plan]
    if any(b <= a for a, b in zip(weights, weights[1:], strict=False)):
        errors["stages"] = ["Weights must rise strictly from stage to stage (only the first stage may be dark)."]
    elif weights[-1] != 10000:
        errors["stages"] = ["The last stage must serve the candidate to everyone (weight_bp 10000)."]
    names = [s["name"] for s in plan]
    if len(set(names)) != len(names):
        errors.setdefault("stages", []).append("Stage names must be unique.")
    if plan[0]["advance"] != MANUAL:
        errors.setdefault("stages", []).append(
            'The first stage is entered by the approval of the request: its advance must be "manual".'
        )
    if errors:
        raise PlanError(errors)
    return plan
