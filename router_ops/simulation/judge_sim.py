"""The pairwise judge format, and the simulated judge that answers it.

Judge prompt (the rubric around it is free; the simulated judge reads only the
three marked blocks, found anywhere in the messages, system or user):

    [The Start of Question]
    <the user's prompt>
    [The End of Question]

    [The Start of Answer A]
    <first answer>
    [The End of Answer A]

    [The Start of Answer B]
    <second answer>
    [The End of Answer B]

Judge reply: free text whose last line matching `Verdict: A`, `Verdict: B` or
`Verdict: tie` (case-insensitive, alone on its line) is the verdict. A reply
with no such line is unparseable: a judge failure, never a verdict. The
simulated judge says "Cannot judge: …" (no verdict line) when it has no grade.

Pure Python, no Django imports.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from router_ops.simulation import scenario
from router_ops.simulation.routellm import ReplayBook

VERDICT_A = "A"
VERDICT_B = "B"
VERDICT_TIE = "tie"
VERDICTS = (VERDICT_A, VERDICT_B, VERDICT_TIE)

JUDGE_INSTRUCTION = (
    "Please act as an impartial judge and compare the two answers to the user's question below. "
    "Consider correctness, completeness and whether the requested format is followed. "
    "Do not let the order of the answers, their length or style influence you. "
    "Explain briefly, then end your reply with one final line, exactly one of: "
    "'Verdict: A', 'Verdict: B', 'Verdict: tie'."
)

_BLOCK = "[The {edge} of {name}]"
_VERDICT_LINE = re.compile(r"^[ \t*_]*verdict[ \t*_]*:[ \t*_]*(a|b|tie)[ \t*_.]*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class JudgePrompt:
    question: str
    answer_a: str
    answer_b: str


def judge_prompt_build(
    question: str, answer_a: str, answer_b: str, *, instruction: str = JUDGE_INSTRUCTION
) -> list[dict]:
    """Chat messages asking a judge to compare answer A with answer B."""
    body = "\n\n".join(
        f"{_BLOCK.format(edge='Start', name=name)}\n{text}\n{_BLOCK.format(edge='End', name=name)}"
        for name, text in (("Question", question), ("Answer A", answer_a), ("Answer B", answer_b))
    )
    return [{"role": "system", "content": instruction}, {"role": "user", "content": body}]


def _marker(edge: str, name: str) -> str:
    return _BLOCK.format(edge=edge, name=name)


def judge_prompt_parse(text: str) -> JudgePrompt | None:
    """The question and both answers from a judge prompt, or None if any block is missing.

    Answers may quote anything, even a marker: the question ends at its first end
    marker, answer B starts at the last "Start of Answer B", and answer A ends at the
    last "End of Answer A" before that.
    """
    q_start = text.find(_marker("Start", "Question"))
    q_end = text.find(_marker("End", "Question"), q_start + 1) if q_start >= 0 else -1
    a_start = text.find(_marker("Start", "Answer A"), q_end + 1) if q_end >= 0 else -1
    b_start = text.rfind(_marker("Start", "Answer B"))
    if min(q_start, q_end, a_start, b_start) < 0 or b_start < a_start:
        return None
    a_end = text.rfind(_marker("End", "Answer A"), a_start, b_start)
    b_end = text.rfind(_marker("End", "Answer B"))
    if a_end < 0 or b_end < b_start:
        return None
    return JudgePrompt(
        question=text[q_start + len(_marker("Start", "Question")) : q_end].strip("\n"),
        answer_a=text[a_start + len(_marker("Start", "Answer A")) : a_end].strip("\n"),
        answer_b=text[b_start + len(_marker("Start", "Answer B")) : b_end].strip("\n"),
    )


def judge_reply_parse(reply: str) -> str | None:
    """The verdict ("A", "B" or "tie") from the reply's last verdict line; None when there is none."""
    matches = _VERDICT_LINE.findall(reply or "")
    if not matches:
        return None
    last = matches[-1].lower()
    return VERDICT_TIE if last == "tie" else last.upper()


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class JudgeSettings:
    seed: int = 7
    noise: float = 0.0  # probability that the verdict is replaced by a random one
    position_bias: float = 0.0  # probability that the verdict is "A" whatever the answers


GARBAGE_REPLY = "Both answers have their merits and I would rather not pick one. It depends on the reader."


def _verdict_from_grades(grade_a: float, grade_b: float) -> str:
    if grade_a > grade_b:
        return VERDICT_A
    if grade_b > grade_a:
        return VERDICT_B
    return VERDICT_TIE


def _grade_text(grade: float) -> str:
    return f"{grade:g}"


def simulated_judge_reply(prompt_text: str, settings: JudgeSettings, replay: ReplayBook | None = None) -> str:
    """The simulated judge's reply to a judge prompt (the whole prompt text, all messages).

    1. Parse the three blocks; a prompt without them cannot be judged.
    2. Grade each answer: replay → the recorded grade of that answer to that question
       (unknown or failed → cannot judge); otherwise → scenario.answer_grade
       (text the scenario did not write → tie).
    3. Compare the grades; then noise and position bias, each fixed by (seed, prompt),
       so asking twice gives the same reply and swapping the answers may not.
    """
    parsed = judge_prompt_parse(prompt_text)
    if parsed is None:
        return "Cannot judge: the prompt lacks the [The Start of Question] / Answer A / Answer B blocks."
    if replay is not None:
        grades = []
        for label, answer in (("A", parsed.answer_a), ("B", parsed.answer_b)):
            known, grade = replay.grade_find(parsed.question, answer)
            if not known:
                return f"Cannot judge: answer {label} is not a recorded answer to this question."
            if grade is None:
                return f"Cannot judge: the recorded grade of answer {label} is missing."
            grades.append(grade)
        grade_a, grade_b = grades
        rationale = f"Answer A: recorded grade {_grade_text(grade_a)}. Answer B: recorded grade {_grade_text(grade_b)}."
    else:
        sim_a, sim_b = scenario.answer_grade(parsed.answer_a), scenario.answer_grade(parsed.answer_b)
        if sim_a is None or sim_b is None:
            grade_a = grade_b = 0
            rationale = "I cannot tell these answers apart in quality."
        else:
            grade_a, grade_b = sim_a, sim_b
            rationale = f"Answer A: grade {grade_a}/10. Answer B: grade {grade_b}/10."
    verdict = _verdict_from_grades(grade_a, grade_b)
    if _unit(settings.seed, "noise", prompt_text) < settings.noise:
        verdict = VERDICTS[int(_unit(settings.seed, "noise-pick", prompt_text) * 3)]
    if _unit(settings.seed, "position", prompt_text) < settings.position_bias:
        verdict = VERDICT_A
    return f"{rationale}\nVerdict: {verdict}"
