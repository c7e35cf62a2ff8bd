"""The recorded judge: grades that come with replayed answers instead of a model call.

A judge of kind `recorded` names its grade source in `config["source"]`; a source
turns (question, answer, decision) into a grade, or None when there is none (a
RouteLLM grade of -1 means the recorded judgement failed: it is None, and the
pair is a judge failure, never a verdict). Sources are pluggable:
`grade_source_register("name", factory)` where `factory(config) -> GradeSource`.

Built in:
- `routellm`: `{"source": "routellm", "data_dir": "…/routellm", "datasets": ["mt_bench"]}`,
  grades looked up in the RouteLLM files by question and answer text (loaded once per process);
- `attributes`: `{"source": "attributes", "primary": "primary_grade", "shadow": "shadow_grade"}`,
  grades supplied by the client with the decision's attributes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from router_ops.judging.deterministic import EQUIVALENT, PRIMARY_BETTER, SHADOW_BETTER


class GradeSource(Protocol):
    def grade(self, *, question: str, answer: str, role: str, attributes: dict) -> float | None: ...


class GradeSourceError(ValueError):
    """The judge's config names no usable grade source."""


_factories: dict[str, Callable[[dict], GradeSource]] = {}
_instances: dict[str, GradeSource] = {}
_lock = threading.Lock()


def grade_source_register(name: str, factory: Callable[[dict], GradeSource]) -> None:
    _factories[name] = factory


def grade_source(config: dict) -> GradeSource:
    """The source a config names, built once per process and config."""
    name = (config or {}).get("source")
    if name not in _factories:
        raise GradeSourceError(f"unknown grade source {name!r}; known: {', '.join(sorted(_factories))}")
    key = json.dumps(config, sort_keys=True)
    with _lock:
        source = _instances.get(key)
        if source is None:
            source = _instances[key] = _factories[name](config)
    return source


@dataclass(frozen=True)
class RecordedVerdict:
    verdict: str | None  # None: a grade is missing
    primary_grade: float | None
    shadow_grade: float | None

    @property
    def rationale(self) -> str:
        return f"Recorded grades: primary {self.primary_grade}, shadow {self.shadow_grade}."


def recorded_compare(primary_grade: float | None, shadow_grade: float | None) -> RecordedVerdict:
    if primary_grade is None or shadow_grade is None or primary_grade < 0 or shadow_grade < 0:
        return RecordedVerdict(None, primary_grade, shadow_grade)
    if primary_grade > shadow_grade:
        verdict = PRIMARY_BETTER
    elif shadow_grade > primary_grade:
        verdict = SHADOW_BETTER
    else:
        verdict = EQUIVALENT
    return RecordedVerdict(verdict, primary_grade, shadow_grade)


class RouteLLMGrades:
    def __init__(self, config: dict):
        from router_ops.simulation.routellm import DATASETS, replay_book_load

        if not config.get("data_dir"):
            raise GradeSourceError("the routellm grade source needs config.data_dir")
        self.book = replay_book_load(config["data_dir"], config.get("datasets") or DATASETS)

    def grade(self, *, question: str, answer: str, role: str, attributes: dict) -> float | None:
        known, grade = self.book.grade_find(question, answer)
        return grade if known else None


class AttributeGrades:
    def __init__(self, config: dict):
        self.keys = {"primary": config.get("primary", "primary_grade"), "shadow": config.get("shadow", "shadow_grade")}

    def grade(self, *, question: str, answer: str, role: str, attributes: dict) -> float | None:
        value = (attributes or {}).get(self.keys[role])
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return None if value < 0 else float(value)


grade_source_register("routellm", RouteLLMGrades)
grade_source_register("attributes", AttributeGrades)
