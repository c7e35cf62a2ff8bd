"""Quality loss per request from judged shadow samples drawn with unequal probabilities π. Pure: no Django.

Loss of a request = it was served cheap AND the strong answer was judged better
(regret), so a router's loss per request = cheap share × regret among its cheap
requests. Samples are drawn with per-decision inclusion probabilities π (quota,
divergence and reverse rules, DESIGN.md §4), so a plain mean over judged samples
would over-count whatever was over-sampled.

Rate of a stratum (a set of requests with one sampling direction): the judged
samples are draws from the π-tilted distribution q ∝ π·f of the stratum's
traffic f (judging order is independent of the verdict), so with w = 1/π

    E_f[loss] = E_q[loss · w] / E_q[w]                      (Hájek 1971; Horvitz & Thompson 1952)

Both are means of bounded variables once divided by w_max, the largest weight seen:
x = loss·w/w_max ∈ [0, 1] and y = w/w_max ∈ (0, 1]. Each gets the anytime-valid
empirical-Bernstein confidence sequence of Waudby-Smith & Ramdas (2023, JRSS B,
Thm 2; router_ops/stats/sequential.py) and the ratio's bounds are [L_x/U_y, U_x/L_y]
(a union bound over the two sequences). With equal weights (a constant-rate design)
y ≡ 1 and this is the plain Bernoulli sequence on the losses. Caveat, stated in the
evidence: w_max is the largest weight *observed*, not a design constant; a later,
heavier sample rescales past observations (the sequence is recomputed from scratch
on every sweep, so the bound stays a function of the data seen so far).

Stratum shares are counted from decisions, every one of which is ingested: shares
are exact for the window's traffic (finite-population estimand) when `exact` is
set (the dark stage compares both routers on the very same requests), otherwise
they get the order-free stitched bound of Howard et al. (2021) on their counts
(a canary arm's cheap share is itself a sample of the traffic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from router_ops.stats.sequential import confidence_sequence

METHOD_WEIGHTED = (
    "Hájek-weighted regret (w = 1/π) with empirical-Bernstein confidence sequences on loss·w/w_max and "
    "w/w_max (Waudby-Smith & Ramdas 2023), times exact or stitched (Howard et al. 2021) traffic shares"
)


def stitched_radius(n: int, alpha: float) -> float:
    """Howard, Ramdas, McAuliffe & Sekhon (2021, Ann. Statist. 49(2), eq. 1.2) for a Bernoulli mean."""
    if n <= 0:
        return math.inf
    t = float(n)
    return 0.5 * 1.7 * math.sqrt((math.log(math.log(2 * t)) + 0.72 * math.log(5.2 / alpha)) / t)


def _cs(values: tuple[float, ...], level: float) -> tuple[float, float]:
    # The vectorised path (NumPy) of the same running-intersection sequence as the state fold.
    path = confidence_sequence(values, alpha=min(level, 0.999))
    return float(path.low[-1]), float(path.high[-1])


@dataclass(frozen=True)
class JudgedStream:
    """The judged samples of one stratum, in judgment order: loss ∈ {0, 1} and weight 1/π each."""

    losses: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def __post_init__(self):
        if len(self.losses) != len(self.weights):
            raise ValueError("one weight per loss")
        if any(w < 1 for w in self.weights):
            raise ValueError("weights are 1/π ≥ 1")

    @property
    def judged(self) -> int:
        return len(self.losses)

    @property
    def equal_weights(self) -> bool:
        return not self.weights or max(self.weights) - min(self.weights) <= 1e-12 * max(self.weights)

    @property
    def components(self) -> int:
        """How many confidence sequences the rate's bounds rest on (for the α split)."""
        return 1 if self.equal_weights else 2

    def rate(self) -> float | None:
        """Hájek estimate of the stratum's loss rate; None without judged samples."""
        if not self.losses:
            return None
        total = sum(self.weights)
        return sum(loss * w for loss, w in zip(self.losses, self.weights, strict=True)) / total

    def rate_bounds(self, level: float) -> tuple[float, float]:
        """Bounds on the rate, valid at level `level` per component CS (two-sided)."""
        if not self.losses:
            return 0.0, 1.0
        if self.equal_weights:
            return _cs(tuple(float(v) for v in self.losses), level)
        w_max = max(self.weights)
        x = tuple(loss * w / w_max for loss, w in zip(self.losses, self.weights, strict=True))
        y = tuple(w / w_max for w in self.weights)
        x_low, x_high = _cs(x, level)
        y_low, y_high = _cs(y, level)
        low = x_low / y_high if y_high > 0 else 0.0
        high = x_high / y_low if y_low > 0 else 1.0
        return max(0.0, min(1.0, low)), max(0.0, min(1.0, high))


@dataclass(frozen=True)
class LossTerm:
    """share × rate: `count` of `total` requests fall in the stratum whose loss rate `stream` estimates."""

    count: int
    total: int
    stream: JudgedStream
    exact: bool = True

    @property
    def components(self) -> int:
        if self.count == 0 and (self.exact or self.total == 0):
            return 0
        return self.stream.components + (0 if self.exact else 1)

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0

    def estimate(self) -> float | None:
        if self.count == 0:
            return 0.0
        rate = self.stream.rate()
        return None if rate is None else self.share * rate

    def bounds(self, level: float) -> tuple[float, float]:
        if self.count == 0 and (self.exact or self.total == 0):
            return 0.0, 0.0
        low_r, high_r = self.stream.rate_bounds(level)
        if self.exact:
            low_p = high_p = self.share
        else:
            radius = stitched_radius(self.total, level)
            low_p, high_p = max(0.0, self.share - radius), min(1.0, self.share + radius)
        return low_p * low_r, high_p * high_r


@dataclass(frozen=True)
class LossComparison:
    """candidate − baseline loss per request = Σ candidate terms − Σ baseline terms.

    Dark stage (paired, same requests): candidate terms = requests the baseline served
    strong and the candidate would serve cheap (their reverse-sample regret); baseline
    terms = requests the baseline served cheap and the candidate would serve strong
    (their regret). Requests both routers route alike differ by exactly 0.
    Canary stage (independent arms): one term per arm, cheap share × regret.
    `candidate_loss`/`baseline_loss`: the arms' own loss per request (for display).
    """

    candidate_terms: tuple[LossTerm, ...]
    baseline_terms: tuple[LossTerm, ...]
    candidate_loss: float | None = None
    baseline_loss: float | None = None
    paired: bool = False

    def estimate(self) -> float | None:
        parts_c = [t.estimate() for t in self.candidate_terms]
        parts_b = [t.estimate() for t in self.baseline_terms]
        if any(p is None for p in parts_c + parts_b):
            return None
        return sum(parts_c) - sum(parts_b)

    def bounds(self, alpha: float) -> tuple[float, float]:
        """Bounds on the difference at level α (two-sided, valid at all times at once).

        A wrong pass needs one of the K one-sided bounds on the upper side to miss
        (each at α/K), a wrong fail one on the lower side: each component sequence is
        two-sided at 2α/K, as in router_ops/stats/sequential.noninferiority (K = 2).
        """
        terms = self.candidate_terms + self.baseline_terms
        k = max(1, sum(t.components for t in terms))
        level = min(2 * alpha / k, 0.999)
        c = [t.bounds(level) for t in self.candidate_terms]
        b = [t.bounds(level) for t in self.baseline_terms]
        low = sum(lo for lo, _ in c) - sum(hi for _, hi in b)
        high = sum(hi for _, hi in c) - sum(lo for lo, _ in b)
        return low, high
