"""The simulated world shared by the demo traffic generator and the simulated provider.

Pure and deterministic: the same seed gives the same traffic, and the same
(prompt, tier) always gives an answer of the same quality, whichever process
asks. The provider sees only the prompt, as a real model would; it recovers the
request's kind from the prompt's template (`prompt_kind`).

The seed's story is in it: about 3 % of traffic comes from enterprise admins
running scripted bulk queries over the API (`python-requests`). Their prompts
look short and easy to the router, so most go to the cheap tier, which answers
them badly (regret ≈ 35 % against ≈ 8 % elsewhere).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    """A kind of request: who sends it and how hard it really is for each tier."""

    name: str
    share: float
    attributes: dict  # attribute -> list of values (one is drawn per request)
    templates: tuple[str, ...]
    prompt_tokens: tuple[int, int]
    # Probability that a tier's answer is bad (the hidden difficulty).
    p_bad: dict = field(default_factory=dict)
    # The router's view: mean of its score (higher = harder = send strong).
    score_mean: float = 0.4


KINDS: tuple[Kind, ...] = (
    Kind(
        name="consumer-chat",
        share=0.52,
        attributes={
            "channel": ["ui"],
            "user_tier": ["free"],
            "client": ["web/3.4", "ios/2.9", "android/2.8"],
            "locale": ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES"],
            "tenant": ["public"],
        },
        templates=(
            "How do I reset my password for account {n}?",
            "Summarise this note in two lines: meeting moved to {n} pm.",
            "What is a good name for a cat who likes boxes ({n})?",
        ),
        prompt_tokens=(20, 300),
        p_bad={"cheap": 0.09, "strong": 0.03},
        score_mean=0.30,
    ),
    Kind(
        name="pro-analysis",
        share=0.25,
        attributes={
            "channel": ["ui"],
            "user_tier": ["pro"],
            "client": ["web/3.4", "desktop/1.12"],
            "locale": ["en-US", "de-DE", "ja-JP"],
            "tenant": ["public"],
        },
        templates=(
            "Compare these two pricing plans and explain the trade-offs for a team of {n}.",
            "Debug this Python traceback: KeyError: 'user_{n}' in handler.py line 88.",
            "Write a SQL query returning the top {n} customers by revenue last quarter.",
        ),
        prompt_tokens=(200, 2500),
        p_bad={"cheap": 0.22, "strong": 0.05},
        score_mean=0.60,
    ),
    Kind(
        name="team-api",
        share=0.12,
        attributes={
            "channel": ["api"],
            "user_tier": ["team"],
            "client": ["node-fetch/3.3", "openai-python/1.51"],
            "locale": ["en-US"],
            "tenant": ["globex", "initech", "umbrella"],
        },
        templates=(
            "Classify the sentiment of this review #{n}: 'Arrived late but works fine.'",
            "Translate to German: 'Your order {n} has shipped.'",
        ),
        prompt_tokens=(30, 600),
        p_bad={"cheap": 0.07, "strong": 0.03},
        score_mean=0.35,
    ),
    Kind(
        name="enterprise-ui",
        share=0.08,
        attributes={
            "channel": ["ui"],
            "user_tier": ["enterprise"],
            "client": ["web/3.4"],
            "locale": ["en-US", "en-GB"],
            "tenant": ["acme", "hooli", "stark"],
        },
        templates=("Draft a policy memo on data retention for region {n}.",),
        prompt_tokens=(300, 3000),
        p_bad={"cheap": 0.18, "strong": 0.04},
        score_mean=0.65,
    ),
    # The seed's story: short, templated, machine-generated prompts the router
    # thinks are easy, but whose strict output format the cheap model gets wrong.
    Kind(
        name="enterprise-scripted-api",
        share=0.03,
        attributes={
            "channel": ["api"],
            "user_tier": ["enterprise"],
            "client": ["python-requests/2.32", "python-requests/2.31"],
            "locale": ["en-US"],
            "tenant": ["acme", "hooli", "stark"],
        },
        templates=(
            "BULK-EXTRACT record={n}: return JSON with keys id, owner, status, renewal_date.",
            "BULK-RECONCILE batch={n}: list ledger rows whose totals differ, as CSV.",
        ),
        prompt_tokens=(40, 200),
        p_bad={"cheap": 0.40, "strong": 0.05},
        score_mean=0.28,
    ),
)

KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
TIERS = ("cheap", "strong")


@dataclass(frozen=True)
class SimRequest:
    index: int
    kind: str
    unit_id: str
    attributes: dict
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    router_score: float

    def routed_to(self, threshold: float) -> str:
        return "strong" if self.router_score >= threshold else "cheap"


def _unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by its inputs (the same in every process)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Scenario:
    """Seeded traffic: `request(i)` is the i-th request, the same for every run with that seed."""

    def __init__(self, seed: int = 7, kinds: tuple[Kind, ...] = KINDS, units_per_kind: int = 400):
        total = sum(kind.share for kind in kinds)
        self.seed = seed
        self.kinds = kinds
        self.units_per_kind = units_per_kind
        self._cumulative = []
        running = 0.0
        for kind in kinds:
            running += kind.share / total
            self._cumulative.append((running, kind))

    def request(self, index: int) -> SimRequest:
        rng = random.Random(f"{self.seed}:{index}")
        draw = rng.random()
        kind = next((k for bound, k in self._cumulative if draw < bound), self._cumulative[-1][1])
        attributes = {name: rng.choice(values) for name, values in kind.attributes.items()}
        n = rng.randint(1, 9999)
        prompt = rng.choice(kind.templates).format(n=n)
        prompt_tokens = rng.randint(*kind.prompt_tokens)
        score = min(1.0, max(0.0, rng.gauss(kind.score_mean, 0.15)))
        return SimRequest(
            index=index,
            kind=kind.name,
            unit_id=f"u_{kind.name[:3]}{rng.randrange(self.units_per_kind):04d}",
            attributes=attributes,
            prompt=prompt,
            prompt_tokens=prompt_tokens,
            completion_tokens=rng.randint(50, 600),
            router_score=round(score, 4),
        )


def prompt_kind(prompt: str) -> Kind | None:
    """Which kind of request a prompt came from, by its template (None if unknown)."""
    for kind in KINDS:
        for template in kind.templates:
            head = template.split("{n}")[0]
            if head and prompt.startswith(head):
                return kind
    return None


def answer_is_good(prompt: str, tier: str, seed: int = 7) -> bool:
    """Whether the given tier answers this prompt well: fixed per (seed, prompt, tier).

    Prompts of unknown kind are answered well with probability 0.9 (cheap) / 0.97 (strong).
    """
    kind = prompt_kind(prompt)
    p_bad = kind.p_bad.get(tier, 0.05) if kind else (0.10 if tier == "cheap" else 0.03)
    return _unit_hash(seed, tier, prompt) >= p_bad


GOOD_MARK = "[sim-grade:9]"
BAD_MARK = "[sim-grade:3]"


def simulated_answer(prompt: str, tier: str, seed: int = 7) -> str:
    """The simulated model's answer. Its quality is `answer_is_good`; the hidden grade
    mark at the end lets the simulated judge (and tests) grade it without knowing the tier."""
    head = prompt[:60]
    if answer_is_good(prompt, tier, seed):
        return f"Here is a complete answer to: {head!r}. Every requested item is covered. {GOOD_MARK}"
    return f"A partial answer to: {head!r}. Some requested items are missing or malformed. {BAD_MARK}"


def answer_grade(answer: str) -> int | None:
    """The hidden grade of a simulated answer, or None for text not made by `simulated_answer`."""
    if answer.endswith(GOOD_MARK):
        return 9
    if answer.endswith(BAD_MARK):
        return 3
    return None
