"""Deterministic judges: cheap comparisons that decide a pair when they can. Pure.

Each returns a `Decided` (verdict, materially_disagree, rationale) or None when it
cannot tell, in which case the next judge (eventually the LLM judge) decides.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from dataclasses import dataclass

PRIMARY_BETTER = "primary_better"
EQUIVALENT = "equivalent"
SHADOW_BETTER = "shadow_better"


@dataclass(frozen=True)
class Decided:
    verdict: str
    materially_disagree: bool
    rationale: str


_SPACE = re.compile(r"\s+")
_PUNCT_EDGES = string.punctuation + "“”‘’«»…"


def normalise(text: str) -> str:
    """Case-folded, NFKC, whitespace collapsed, punctuation stripped from the ends."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return _SPACE.sub(" ", text).strip().strip(_PUNCT_EDGES).strip()


def exact_match(primary: str, shadow: str, prompt: str = "", config: dict | None = None) -> Decided | None:
    if primary == shadow:
        return Decided(EQUIVALENT, False, "The answers are identical.")
    return None


def normalised_match(primary: str, shadow: str, prompt: str = "", config: dict | None = None) -> Decided | None:
    if normalise(primary) == normalise(shadow):
        return Decided(EQUIVALENT, False, "The answers are identical after normalisation.")
    return None


_NUMBER = r"[-+]?\$?\s?\d[\d,]*(?:\.\d+)?"
_FINAL_MARKERS = (
    re.compile(r"####\s*(" + _NUMBER + ")"),
    re.compile(r"\\boxed\{\s*(" + _NUMBER + r")\s*\}"),
    re.compile(r"(?:final answer|the answer is|answer:)\s*(?:is\s*)?[:=]?\s*(" + _NUMBER + ")", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)


def final_number(text: str) -> float | None:
    """The final numeric answer: after '####', in \\boxed{}, after 'the answer is', else the last number."""
    for pattern in _FINAL_MARKERS:
        found = pattern.findall(text or "")
        if found:
            return _to_float(found[-1])
    numbers = _ANY_NUMBER.findall(text or "")
    return _to_float(numbers[-1]) if numbers else None


def _to_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", "").replace("$", "").replace(" ", ""))
    except ValueError:
        return None


def numeric_answer(primary: str, shadow: str, prompt: str = "", config: dict | None = None) -> Decided | None:
    """Equal final numbers → equivalent. Different ones say the answers disagree, not which
    is right, so they decide nothing unless `config["reference"]` gives the right number."""
    a, b = final_number(primary), final_number(shadow)
    if a is None or b is None:
        return None
    tolerance = float((config or {}).get("tolerance", 1e-9))
    if abs(a - b) <= tolerance * max(1.0, abs(a), abs(b)):
        return Decided(EQUIVALENT, False, f"Both final answers are {a:g}.")
    reference = (config or {}).get("reference")
    if reference is not None:
        if abs(a - float(reference)) <= tolerance * max(1.0, abs(a)):
            return Decided(PRIMARY_BETTER, True, f"Primary {a:g} matches the reference; shadow says {b:g}.")
        if abs(b - float(reference)) <= tolerance * max(1.0, abs(b)):
            return Decided(SHADOW_BETTER, True, f"Shadow {b:g} matches the reference; primary says {a:g}.")
    return None


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*?)\n```\s*$", re.DOTALL | re.IGNORECASE)


def json_parses(text: str) -> bool:
    body = (text or "").strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict | list)


def json_valid(primary: str, shadow: str, prompt: str = "", config: dict | None = None) -> Decided | None:
    """One answer valid JSON and the other not → the valid one is better. Applies only
    when the prompt asks for JSON (unless `config["always"]`)."""
    if not (config or {}).get("always") and "json" not in (prompt or "").lower():
        return None
    a, b = json_parses(primary), json_parses(shadow)
    if a and not b:
        return Decided(PRIMARY_BETTER, True, "Only the primary answer is valid JSON.")
    if b and not a:
        return Decided(SHADOW_BETTER, True, "Only the shadow answer is valid JSON.")
    return None


JUDGES = {
    "exact_match": exact_match,
    "normalised_match": normalised_match,
    "numeric_answer": numeric_answer,
    "json_valid": json_valid,
}
