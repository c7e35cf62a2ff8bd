"""Loaders for the RouteLLM evaluation files (real third-party traffic for replay).

The files stay where they are (e.g. ../shared/data/routellm, read-only, Apache-2.0):
every function takes the directory as an argument and copies nothing.

- MT-Bench: `mt_bench/question.jsonl` (80 questions, two user turns each) and
  `mt_bench/judgements.jsonl` (GPT-4 single-answer grades per question, turn and
  model). A model's answer is only stored inside the judge's prompt:
  turn 1 between "[The Start of Assistant's Answer]" / "[The End of Assistant's Answer]";
  turn 2 as a transcript between "<|The Start of Assistant A's Conversation with User|>" /
  "<|The End of Assistant A's Conversation with User|>", in "### User:" /
  "### Assistant A:" sections, of which the second assistant section answers turn 2.
  A score of -1 means the judgement failed: it becomes a missing grade (None).
- GSM8K: `gsm8k/gsm8k_responses.csv`: prompt, one True/False correctness column
  per model and each model's response (column `<model>_response`).

Pure Python, no Django imports.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STRONG_MODEL = "gpt-4-1106-preview"
CHEAP_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MODEL_BY_TIER = {"cheap": CHEAP_MODEL, "strong": STRONG_MODEL}

DATASETS = ("mt_bench", "gsm8k")

_ANSWER_START = "[The Start of Assistant's Answer]"
_ANSWER_END = "[The End of Assistant's Answer]"
_CONVERSATION_START = "<|The Start of Assistant A's Conversation with User|>"
_CONVERSATION_END = "<|The End of Assistant A's Conversation with User|>"
_TRANSCRIPT_HEADING = re.compile(r"\n### (User|Assistant A):\n")

# Comparison outcomes of the strong answer against the cheap one.
STRONG_BETTER = "strong_better"
TIE = "tie"
CHEAP_BETTER = "cheap_better"


class RouteLLMFormatError(ValueError):
    """A RouteLLM file does not have the shape this loader knows."""


@dataclass(frozen=True)
class MtBenchRecord:
    question_id: int
    turn: int  # 1 or 2
    category: str
    prompt: str  # the user turn being answered
    turns: tuple[str, ...]  # every user turn up to and including this one
    cheap_answer: str
    strong_answer: str
    cheap_grade: float | None  # 1–10; None when the recorded judgement failed (-1)
    strong_grade: float | None

    def answer(self, tier: str) -> str:
        return self.strong_answer if tier == "strong" else self.cheap_answer

    def grade(self, tier: str) -> float | None:
        return self.strong_grade if tier == "strong" else self.cheap_grade

    @property
    def outcome(self) -> str | None:
        """strong_better / tie / cheap_better, or None when a grade is missing."""
        return outcome_compare(self.strong_grade, self.cheap_grade)


@dataclass(frozen=True)
class Gsm8kRecord:
    index: int  # row number in the csv, from 0
    prompt: str
    cheap_answer: str
    strong_answer: str
    cheap_correct: bool
    strong_correct: bool

    def answer(self, tier: str) -> str:
        return self.strong_answer if tier == "strong" else self.cheap_answer

    def grade(self, tier: str) -> float:
        """Correctness as a grade (1 or 0) so both datasets compare the same way."""
        return float(self.strong_correct if tier == "strong" else self.cheap_correct)

    @property
    def category(self) -> str:
        return "gsm8k"

    @property
    def outcome(self) -> str:
        return outcome_compare(self.grade("strong"), self.grade("cheap"))


def outcome_compare(strong: float | None, cheap: float | None) -> str | None:
    if strong is None or cheap is None:
        return None
    if strong > cheap:
        return STRONG_BETTER
    if strong < cheap:
        return CHEAP_BETTER
    return TIE


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RouteLLMFormatError(f"{path}:{number}: not JSON ({exc})") from None
    return rows


def _between(text: str, start: str, end: str, where: str) -> str:
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise RouteLLMFormatError(f"{where}: markers {start!r} … {end!r} not found")
    return rest.partition(end)[0]


def mt_bench_answer_extract(user_prompt: str, turn: int, *, where: str = "judge prompt") -> str:
    """The graded model's answer to `turn`, from the judge prompt that holds it."""
    if turn == 1:
        return _between(user_prompt, _ANSWER_START, _ANSWER_END, where).strip("\n")
    transcript = _between(user_prompt, _CONVERSATION_START, _CONVERSATION_END, where)
    parts = _TRANSCRIPT_HEADING.split("\n" + transcript.strip("\n") + "\n")
    roles, texts = parts[1::2], parts[2::2]
    answers = [text for role, text in zip(roles, texts, strict=True) if role == "Assistant A"]
    if len(answers) < turn:
        raise RouteLLMFormatError(f"{where}: transcript has {len(answers)} assistant turns, wanted turn {turn}")
    return answers[turn - 1].strip("\n")


def _grade(score: object) -> float | None:
    value = float(score)  # type: ignore[arg-type]
    return None if value < 0 else value


def mt_bench_load(data_dir: str | Path) -> list[MtBenchRecord]:
    """One record per (question, turn), sorted by question id then turn.

    1. Read the questions (category, user turns).
    2. Read the judgements of the strong and the cheap model; extract each answer from
       the judge prompt and map score -1 to None.
    3. Join: every question-turn needs both models' judgements, or the file is malformed.
    """
    base = Path(data_dir) / "mt_bench"
    questions = {row["question_id"]: row for row in _read_jsonl(base / "question.jsonl")}
    judged: dict[tuple[int, int, str], tuple[str, float | None]] = {}
    for row in _read_jsonl(base / "judgements.jsonl"):
        if row["model"] not in (STRONG_MODEL, CHEAP_MODEL):
            continue
        key = (row["question_id"], int(row["turn"]), row["model"])
        where = f"judgements.jsonl question {key[0]} turn {key[1]} model {key[2]}"
        if key in judged:
            raise RouteLLMFormatError(f"{where}: judged twice")
        judged[key] = (mt_bench_answer_extract(row["user_prompt"], key[1], where=where), _grade(row["score"]))

    records = []
    for question_id in sorted(questions):
        question = questions[question_id]
        for turn in range(1, len(question["turns"]) + 1):
            cheap = judged.get((question_id, turn, CHEAP_MODEL))
            strong = judged.get((question_id, turn, STRONG_MODEL))
            if cheap is None or strong is None:
                raise RouteLLMFormatError(f"question {question_id} turn {turn}: a model's judgement is missing")
            records.append(
                MtBenchRecord(
                    question_id=question_id,
                    turn=turn,
                    category=question["category"],
                    prompt=question["turns"][turn - 1],
                    turns=tuple(question["turns"][:turn]),
                    cheap_answer=cheap[0],
                    strong_answer=strong[0],
                    cheap_grade=cheap[1],
                    strong_grade=strong[1],
                )
            )
    return records


def _bool(value: str, where: str) -> bool:
    if value.strip() == "True":
        return True
    if value.strip() == "False":
        return False
    raise RouteLLMFormatError(f"{where}: expected True/False, got {value!r}")


def gsm8k_load(data_dir: str | Path) -> list[Gsm8kRecord]:
    path = Path(data_dir) / "gsm8k" / "gsm8k_responses.csv"
    records = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"prompt", CHEAP_MODEL, STRONG_MODEL, f"{CHEAP_MODEL}_response", f"{STRONG_MODEL}_response"}
        missing = needed - set(reader.fieldnames or ())
        if missing:
            raise RouteLLMFormatError(f"{path}: missing columns {sorted(missing)}")
        for index, row in enumerate(reader):
            where = f"{path} row {index}"
            records.append(
                Gsm8kRecord(
                    index=index,
                    prompt=row["prompt"],
                    cheap_answer=row[f"{CHEAP_MODEL}_response"],
                    strong_answer=row[f"{STRONG_MODEL}_response"],
                    cheap_correct=_bool(row[CHEAP_MODEL], where),
                    strong_correct=_bool(row[STRONG_MODEL], where),
                )
            )
    return records


def outcome_counts(records: Iterable[MtBenchRecord | Gsm8kRecord]) -> dict[str, dict[str, int]]:
    """Per category (and "all"): counts of strong_better / tie / cheap_better / missing / n."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        for category in (record.category, "all"):
            row = counts.setdefault(category, {STRONG_BETTER: 0, TIE: 0, CHEAP_BETTER: 0, "missing": 0, "n": 0})
            row[record.outcome or "missing"] += 1
            row["n"] += 1
    return counts


class ReplayBook:
    """Recorded answers and grades, looked up by the text a model or a judge would see.

    Answers are found by the conversation's user turns (all of them, then the last
    one alone); grades by (question, answer text), so the judge scores exactly the
    recorded answer and nothing else.
    """

    def __init__(self, records: Iterable[MtBenchRecord | Gsm8kRecord]):
        self.records: list[MtBenchRecord | Gsm8kRecord] = list(records)
        self._by_turns: dict[tuple[str, ...], MtBenchRecord | Gsm8kRecord] = {}
        self._by_prompt: dict[str, list[MtBenchRecord | Gsm8kRecord]] = {}
        self._grades: dict[tuple[str, str], list[float | None]] = {}
        self._grades_by_answer: dict[str, list[float | None]] = {}
        for record in self.records:
            turns = record.turns if isinstance(record, MtBenchRecord) else (record.prompt,)
            self._by_turns[tuple(_norm(t) for t in turns)] = record
            self._by_prompt.setdefault(_norm(record.prompt), []).append(record)
            for tier in ("cheap", "strong"):
                answer = _norm(record.answer(tier))
                self._grades.setdefault((_norm(record.prompt), answer), []).append(record.grade(tier))
                self._grades_by_answer.setdefault(answer, []).append(record.grade(tier))

    def __len__(self) -> int:
        return len(self.records)

    def record_find(self, user_turns: list[str]) -> MtBenchRecord | Gsm8kRecord | None:
        """The record answering these user turns (a single last turn is enough when unambiguous)."""
        if not user_turns:
            return None
        exact = self._by_turns.get(tuple(_norm(t) for t in user_turns))
        if exact is not None:
            return exact
        candidates = self._by_prompt.get(_norm(user_turns[-1]), [])
        return candidates[0] if len(candidates) == 1 else None

    def grade_find(self, question: str, answer: str) -> tuple[bool, float | None]:
        """(known, grade): known is False when this answer to this question is not recorded;
        grade is None when it is recorded but its judgement failed."""
        grades = self._grades.get((_norm(question), _norm(answer)))
        if not grades:
            # The judge may have been shown the whole conversation as the question:
            # an answer text recorded once is still unambiguous.
            grades = self._grades_by_answer.get(_norm(answer))
            if grades is not None and len(grades) != 1:
                grades = None
        if not grades:
            return False, None
        if len(set(grades)) != 1:  # the same text recorded with different grades: refuse to guess
            return True, None
        return True, grades[0]


def _norm(text: str) -> str:
    return text.strip()


def replay_book_load(data_dir: str | Path, datasets: Iterable[str] = DATASETS) -> ReplayBook:
    """A ReplayBook over the named datasets found in `data_dir` (missing files are an error)."""
    records: list[MtBenchRecord | Gsm8kRecord] = []
    for name in datasets:
        if name == "mt_bench":
            records.extend(mt_bench_load(data_dir))
        elif name == "gsm8k":
            records.extend(gsm8k_load(data_dir))
        else:
            raise ValueError(f"unknown RouteLLM dataset {name!r}; known: {', '.join(DATASETS)}")
    return ReplayBook(records)
