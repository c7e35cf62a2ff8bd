"""Discovery core: which slices of traffic regret more than the rest? Pure: no Django.

Input is a judged sample of cheap-routed decisions: a 0/1 regret outcome y_i (the
strong answer was better), the inclusion probability π_i of each sampled decision
and its attributes. Output is every frequent slice, tested against its
complement, with the false discovery rate controlled and the findings ranked.

1. Candidates. Every frequent single value of an attribute (`channel == "api"`),
   plus any extra single slices the caller passes (an application's declared
   dimensions, e.g. prompt-token buckets), plus every two-way cross of single
   slices on different attributes. "Frequent" means an estimated share of
   (cheap-routed) traffic ≥ `min_share`, estimated by Horvitz–Thompson:
   Σ_S w / Σ w with w = 1/π. Slices selecting exactly the same sampled units are
   tested once (the simplest rule is kept).
2. Tests. Each slice with a Kish effective sample size ≥ `min_n_eff` (and a
   complement at least as large) gets the one-sided design-based z-test of
   `slice_vs_complement_test` (alternative "greater": the slice regrets more),
   so over-sampled rare slices count with their real weight.
3. False discovery rate. Benjamini–Hochberg at `q` over all tested slices. The
   tests are positively dependent (nested slices share units; a slice's excess
   raises every superset), the PRDS case where BH still controls the FDR
   (Benjamini & Yekutieli 2001, Theorem 1.2).
4. Ranking by impact = traffic share × (slice regret − complement regret): the
   share of all decisions whose regret the slice explains. A superset of a bad
   slice B has the *same* expected impact as B (it adds traffic and dilutes the
   excess in equal measure), so impact alone cannot tell `channel == "api"` from
   `channel == "api" and user_tier == "enterprise"`. A significant slice S that
   strictly contains a significant slice B is therefore marked *explained by B*
   when its remainder S∖B shows no excess of its own over S's complement (the
   same test, within the domain outside B, Bonferroni-corrected over the pairs
   examined, so that a remainder must clearly regret more to keep S on its own).
   Unexplained findings are ranked first by impact, then the explained ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from router_ops.stats.multiplicity import benjamini_hochberg, slice_vs_complement_test
from router_ops.stats.weighted import kish_effective_n, weighted_rate
from segments import dsl

DEFAULT_Q = 0.05
DEFAULT_MIN_SHARE = 0.01
DEFAULT_MIN_N_EFF = 30.0
MAX_VALUES_PER_ATTRIBUTE = 50
MAX_SINGLES = 200
MAX_CROSSES = 2000
MAX_ATTRIBUTE_DEPTH = 3


@dataclass(frozen=True)
class Candidate:
    """A slice to test: `rule` (segment language) selects the sampled units in `mask`.

    `group` names what the slice is about (an attribute path): crosses combine
    slices of different groups only.
    """

    rule: str
    label: str
    group: str
    mask: NDArray[np.bool_] = field(repr=False, compare=False)
    kind: str = "single"
    node: dsl.Node | None = field(default=None, repr=False, compare=False)

    def restricted(self, index: NDArray) -> Candidate:
        """The same slice over a subset of the units (`index` selects them)."""
        return Candidate(self.rule, self.label, self.group, self.mask[index], self.kind, self.node)


@dataclass(frozen=True)
class Finding:
    rule: str
    label: str
    kind: str
    traffic_share: float
    regret: float
    regret_low: float
    regret_high: float
    complement_regret: float
    excess_regret: float
    p_value: float
    adjusted_p_value: float
    n: int
    n_eff: float
    impact: float
    significant: bool
    explained_by: str = ""
    rank: int | None = None


@dataclass(frozen=True)
class ScanResult:
    """All tested slices (ranked findings first) and what the scan saw."""

    findings: list[Finding]
    samples: int
    n_eff: float
    overall_regret: float | None
    candidates: int
    tested: int
    q: float

    @property
    def discoveries(self) -> list[Finding]:
        return [f for f in self.findings if f.significant]


# --- candidates ----------------------------------------------------------------------------


def _literal(value) -> dsl.Literal | None:
    """A JSON scalar as a rule literal; None for what the language cannot name."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= 500 else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return None


def _leaves(attributes: Mapping, prefix: tuple[str, ...] = ()):
    for key, value in attributes.items():
        if not isinstance(key, str):
            continue
        keys = (*prefix, key)
        if isinstance(value, Mapping):
            if len(keys) < MAX_ATTRIBUTE_DEPTH:
                yield from _leaves(value, keys)
            continue
        literal = _literal(value)
        if literal is not None:
            yield keys, literal


def attribute_candidates(
    attributes: Sequence[Mapping],
    inclusion_probabilities: ArrayLike,
    *,
    min_share: float = DEFAULT_MIN_SHARE,
) -> list[Candidate]:
    """One candidate per (attribute path, scalar value) whose estimated traffic share is
    ≥ `min_share`, at most MAX_VALUES_PER_ATTRIBUTE per path, most frequent first."""
    w = 1.0 / np.asarray(inclusion_probabilities, dtype=float)
    total = float(w.sum())
    if total <= 0:
        return []
    # (keys, literal) -> list of unit indexes; the literal's type is part of the key
    # (the string "1" and the number 1 are different values, as in the rule language).
    units: dict[tuple, list[int]] = {}
    for i, attrs in enumerate(attributes):
        if isinstance(attrs, Mapping):
            for keys, literal in _leaves(attrs):
                units.setdefault((keys, type(literal).__name__, literal), []).append(i)
    by_path: dict[tuple[str, ...], list[tuple[float, dsl.Literal, list[int]]]] = {}
    for (keys, _, literal), idx in units.items():
        share = float(w[idx].sum()) / total
        if share >= min_share - 1e-12:
            by_path.setdefault(keys, []).append((share, literal, idx))
    out: list[Candidate] = []
    n = len(w)
    for keys, values in sorted(by_path.items()):
        path = dsl.Path(None, keys)
        name = dsl.render_path(path)
        values.sort(key=lambda item: (-item[0], str(item[1])))
        for _share, literal, idx in values[:MAX_VALUES_PER_ATTRIBUTE]:
            mask = np.zeros(n, dtype=bool)
            mask[idx] = True
            node = dsl.Compare(path, "==", literal)
            rule = dsl.render(node)
            out.append(Candidate(rule=rule, label=rule, group=name, mask=mask, node=node))
    return out


def _and(a: Candidate, b: Candidate) -> tuple[str, dsl.Node]:
    node = dsl.And((a.node or dsl.parse(a.rule), b.node or dsl.parse(b.rule)))
    return dsl.render(node), node


def cross_candidates(
    singles: Sequence[Candidate], inclusion_probabilities: ArrayLike, *, min_share: float = DEFAULT_MIN_SHARE
) -> list[Candidate]:
    """Two-way crosses of single slices on different groups with share ≥ `min_share`
    (largest first, at most MAX_CROSSES)."""
    w = 1.0 / np.asarray(inclusion_probabilities, dtype=float)
    total = float(w.sum())
    if total <= 0:
        return []
    found = []
    for i, a in enumerate(singles):
        for b in singles[i + 1 :]:
            if a.group == b.group:
                continue
            mask = a.mask & b.mask
            share = float(w[mask].sum()) / total
            if share >= min_share - 1e-12:
                found.append((share, a, b, mask))
    found.sort(key=lambda item: -item[0])
    out = []
    for _, a, b, mask in found[:MAX_CROSSES]:
        rule, node = _and(a, b)
        out.append(Candidate(rule, f"{a.label} and {b.label}", f"{a.group}×{b.group}", mask, "cross", node))
    return out


def distinct_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Drop slices that select no unit, every unit, or exactly the units of an earlier one."""
    seen: set[bytes] = set()
    out = []
    for candidate in candidates:
        count = int(candidate.mask.sum())
        if count == 0 or count == candidate.mask.size:
            continue
        key = np.packbits(candidate.mask).tobytes()
        if key in seen:
            continue
        seen.add(key)
        out.append(candidate)
    return out


# --- the scan ----------------------------------------------------------------------------------


def scan_slices(
    outcomes: ArrayLike,
    inclusion_probabilities: ArrayLike,
    attributes: Sequence[Mapping],
    *,
    extra_singles: Sequence[Candidate] = (),
    q: float = DEFAULT_Q,
    min_share: float = DEFAULT_MIN_SHARE,
    min_n_eff: float = DEFAULT_MIN_N_EFF,
    crosses: bool = True,
) -> ScanResult:
    """Test every frequent single slice and two-way cross against its complement (see module doc)."""
    if len(attributes) != np.size(outcomes):
        raise ValueError("outcomes, inclusion probabilities and attributes must have the same length")
    singles = [*attribute_candidates(attributes, inclusion_probabilities, min_share=min_share), *extra_singles]
    return scan_candidates(
        outcomes, inclusion_probabilities, singles, q=q, min_share=min_share, min_n_eff=min_n_eff, crosses=crosses
    )


def scan_candidates(
    outcomes: ArrayLike,
    inclusion_probabilities: ArrayLike,
    singles: Sequence[Candidate],
    *,
    q: float = DEFAULT_Q,
    min_share: float = DEFAULT_MIN_SHARE,
    min_n_eff: float = DEFAULT_MIN_N_EFF,
    crosses: bool = True,
) -> ScanResult:
    """Steps 1 (from given single slices: frequency filter, crosses) to 4 of the module doc."""
    y = np.asarray(outcomes, dtype=float)
    pi = np.asarray(inclusion_probabilities, dtype=float)
    if y.shape != pi.shape:
        raise ValueError("outcomes, inclusion probabilities and attributes must have the same length")
    if not 0.0 < q < 1.0:
        raise ValueError("q must lie in (0, 1)")
    n = y.size
    if n == 0:
        return ScanResult([], 0, 0.0, None, 0, 0, q)
    w = 1.0 / pi
    total_w = float(w.sum())
    overall = weighted_rate(y, pi)

    singles = [c for c in singles if float(w[c.mask].sum()) / total_w >= min_share - 1e-12]
    singles = distinct_candidates(singles)[:MAX_SINGLES]
    candidates = singles + (cross_candidates(singles, pi, min_share=min_share) if crosses else [])
    candidates = distinct_candidates(candidates)

    tested: list[tuple[Candidate, object, float, float]] = []
    for candidate in candidates:
        n_eff = kish_effective_n(w[candidate.mask])
        if n_eff < min_n_eff or kish_effective_n(w[~candidate.mask]) < min_n_eff:
            continue
        test = slice_vs_complement_test(y, pi, candidate.mask, alternative="greater")
        if test.difference is None:
            continue
        share = float(w[candidate.mask].sum()) / total_w
        tested.append((candidate, test, n_eff, share))

    if not tested:
        return ScanResult([], n, overall.n_eff, overall.estimate, len(candidates), 0, q)
    bh = benjamini_hochberg([t.p_value for _, t, _, _ in tested], alpha=q)

    rows = []
    for (candidate, test, n_eff, share), reject, adjusted in zip(tested, bh.reject, bh.adjusted, strict=True):
        rows.append(
            {
                "candidate": candidate,
                "test": test,
                "n_eff": n_eff,
                "share": share,
                "impact": share * test.difference,
                "significant": bool(reject),
                "adjusted": float(adjusted),
                "explained_by": "",
            }
        )
    _explain_away(rows, y, pi, q)
    _follow_explanations(rows)

    significant = [r for r in rows if r["significant"]]
    significant.sort(key=lambda r: (bool(r["explained_by"]), -r["impact"], r["adjusted"], r["candidate"].rule))
    ranks = {id(r): i + 1 for i, r in enumerate(significant)}
    others = sorted((r for r in rows if not r["significant"]), key=lambda r: (r["adjusted"], -r["impact"]))
    findings = []
    for r in significant + others:
        candidate, test = r["candidate"], r["test"]
        rate = weighted_rate(y, pi, candidate.mask)
        findings.append(
            Finding(
                rule=candidate.rule,
                label=candidate.label,
                kind=candidate.kind,
                traffic_share=r["share"],
                regret=float(test.slice_rate),
                regret_low=rate.low,
                regret_high=rate.high,
                complement_regret=float(test.complement_rate),
                excess_regret=float(test.difference),
                p_value=float(test.p_value),
                adjusted_p_value=r["adjusted"],
                n=int(candidate.mask.sum()),
                n_eff=r["n_eff"],
                impact=r["impact"],
                significant=r["significant"],
                explained_by=r["explained_by"],
                rank=ranks.get(id(r)),
            )
        )
    return ScanResult(findings, n, overall.n_eff, overall.estimate, len(candidates), len(tested), q)


def _explain_away(rows: list[dict], y: NDArray, pi: NDArray, q: float) -> None:
    """Mark each significant slice that a significant strict sub-slice accounts for (module doc, step 4)."""
    significant = [r for r in rows if r["significant"]]
    pairs = []
    for s in significant:
        s_mask = s["candidate"].mask
        s_count = int(s_mask.sum())
        for b in significant:
            b_mask = b["candidate"].mask
            if b is s or int(b_mask.sum()) >= s_count or (b_mask & ~s_mask).any():
                continue
            pairs.append((s, b))
    if not pairs:
        return
    alpha = q / len(pairs)
    for s, b in sorted(pairs, key=lambda pair: -pair[1]["impact"]):
        if s["explained_by"]:
            continue
        remainder = s["candidate"].mask & ~b["candidate"].mask
        # Within the units outside B: does S∖B regret more than everything outside S?
        test = slice_vs_complement_test(y, pi, remainder, ~b["candidate"].mask, alternative="greater")
        if test.p_value > alpha:
            s["explained_by"] = b["candidate"].rule


def _follow_explanations(rows: list[dict]) -> None:
    """S explained by B, itself explained by C: name C, the slice that accounts for both."""
    by_rule = {r["candidate"].rule: r for r in rows}
    for r in rows:
        seen = {r["candidate"].rule}
        target = r["explained_by"]
        while target and by_rule[target]["explained_by"] and by_rule[target]["explained_by"] not in seen:
            seen.add(target)
            target = by_rule[target]["explained_by"]
        r["explained_by"] = target
