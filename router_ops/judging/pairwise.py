"""The pairwise LLM judge's prompt and reply format, and the swap rule. Pure.

Prompt: the rubric as the system message, then the question and two answers in
"[The Start of …]" / "[The End of …]" blocks (the MT-Bench pairwise layout).
Reply: free text whose last line `Verdict: A`, `Verdict: B` or `Verdict: tie`
(case-insensitive, alone on its line) is the verdict; a reply without one is
unparseable, never a verdict.

The pair is judged twice, primary as A then shadow as A. Agreeing orders give the
verdict; disagreeing ones give `equivalent` and are counted as position-inconsistent
(Zheng et al. 2023, "Judging LLM-as-a-judge", §3.4 on position bias).
"""

from __future__ import annotations

import re

PRIMARY_FIRST = "primary_first"
SHADOW_FIRST = "shadow_first"
ORDERS = (PRIMARY_FIRST, SHADOW_FIRST)

PRIMARY_BETTER = "primary_better"
EQUIVALENT = "equivalent"
SHADOW_BETTER = "shadow_better"

DEFAULT_RUBRIC = (
    "Please act as an impartial judge and compare the two answers to the user's question below. "
    "Consider correctness, completeness, helpfulness and whether the requested format is followed. "
    "Do not let the order of the answers, their length or style influence you. "
    "Explain briefly, then end your reply with one final line, exactly one of: "
    "'Verdict: A', 'Verdict: B', 'Verdict: tie'."
)

_VERDICT_LINE = re.compile(r"^[ \t*_]*verdict[ \t*_]*:[ \t*_]*(a|b|tie)[ \t*_.]*$", re.IGNORECASE | re.MULTILINE)


def _block(name: str, text: str) -> str:
    return f"[The Start of {name}]\n{text}\n[The End of {name}]"


def judge_messages(rubric: str, question: str, answer_a: str, answer_b: str) -> list[dict]:
    body = "\n\n".join((_block("Question", question), _block("Answer A", answer_a), _block("Answer B", answer_b)))
    return [{"role": "system", "content": rubric}, {"role": "user", "content": body}]


def order_messages(rubric: str, question: str, primary: str, shadow: str, order: str) -> list[dict]:
    if order == PRIMARY_FIRST:
        return judge_messages(rubric, question, primary, shadow)
    return judge_messages(rubric, question, shadow, primary)


def reply_parse(reply: str) -> str | None:
    """ "A", "B" or "tie" from the last verdict line, or None."""
    matches = _VERDICT_LINE.findall(reply or "")
    if not matches:
        return None
    last = matches[-1].lower()
    return "tie" if last == "tie" else last.upper()


def order_verdict(letter: str, order: str) -> str:
    """A letter verdict of one order as primary_better / equivalent / shadow_better."""
    if letter == "tie":
        return EQUIVALENT
    primary_is_a = order == PRIMARY_FIRST
    return PRIMARY_BETTER if (letter == "A") == primary_is_a else SHADOW_BETTER


def swap_combine(first: str, second: str) -> tuple[str, bool]:
    """(verdict, swap_consistent) from the two orders' verdicts."""
    if first == second:
        return first, True
    return EQUIVALENT, False


def rationale_of(reply: str) -> str:
    """The reply without its verdict line."""
    return _VERDICT_LINE.sub("", reply or "").strip()
