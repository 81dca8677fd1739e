"""Per-target search: which non-overlapping blocks to replace, and by which alternative.

Estimates are additive (the paper's assumption): a student's latency is the teacher's minus, for
each replaced block, the block's latency plus its alternative's; its drop is the sum of the
alternatives' individual drops (each measured with only that block replaced). The score of a set is

    VIOLATION_WEIGHT * max(0, latency - budget) / budget  +  lambda * drop

minimised by simulated annealing from a greedy start (best latency saved per unit of drop first,
until the budget is met; when that misses the budget, the fastest set, found exactly by dynamic
programming). The state reported is the best one within budget, if any was visited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgeperf.errors import BudgetInfeasibleError, InvalidParameterError

__all__ = ["Candidate", "SearchResult", "anneal", "min_latency", "score"]

#: Weight of the relative budget violation: 1% over budget costs as much as a drop of 1.0 (KL in
#: nats) at lambda 1, so summed drops never make an over-budget set look better than a fitting one.
VIOLATION_WEIGHT = 100.0
#: Denominator guard for the greedy efficiency (ms saved per unit of drop).
_EPS_DROP = 1e-6


@dataclass(frozen=True)
class Candidate:
    """One replacement: block ``[start, end)`` by alternative ``alt``, changing latency by
    ``delta_ms`` (negative = faster) and costing ``drop``."""

    alt: str
    start: int
    end: int
    delta_ms: float
    drop: float


@dataclass
class SearchResult:
    chosen: list[Candidate]
    est_latency_ms: float
    est_drop: float
    score: float
    feasible: bool
    steps: int
    accepted: int
    history: list[float] = field(default_factory=list)  # best score every 1% of the run
    #: The ``keep`` best distinct sets within budget that the run visited, best first (``chosen``
    #: is the first when any fitted): candidates for a joint re-estimate of the whole student.
    runners_up: list[list[Candidate]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "chosen": [c.alt for c in self.chosen],
            "est_latency_ms": self.est_latency_ms,
            "est_drop": self.est_drop,
            "score": self.score,
            "feasible": self.feasible,
            "steps": self.steps,
            "accepted": self.accepted,
            "runners_up": [[c.alt for c in s] for s in self.runners_up],
        }


def _overlap(a: Candidate, b: Candidate) -> bool:
    return a.start < b.end and b.start < a.end


def score(chosen, base_ms: float, budget_ms: float, lam: float) -> tuple[float, float, float]:
    """``(score, estimated latency ms, estimated drop)`` of a set of candidates."""
    lat = base_ms + sum(c.delta_ms for c in chosen)
    drop = sum(c.drop for c in chosen)
    return VIOLATION_WEIGHT * max(0.0, lat - budget_ms) / budget_ms + lam * drop, lat, drop


def min_latency(candidates, base_ms: float) -> tuple[float, list[Candidate]]:
    """The lowest estimated latency any non-overlapping set reaches (exact dynamic programme over
    cut points) and that set."""
    if not candidates:
        return base_ms, []
    last = max(c.end for c in candidates)
    best = [0.0] * (last + 1)
    pick: list[Candidate | None] = [None] * (last + 1)
    ending = {}
    for c in candidates:
        ending.setdefault(c.end, []).append(c)
    for k in range(1, last + 1):
        best[k], pick[k] = best[k - 1], None
        for c in ending.get(k, ()):
            if best[c.start] + c.delta_ms < best[k]:
                best[k], pick[k] = best[c.start] + c.delta_ms, c
    chosen, k = [], last
    while k > 0:
        if pick[k] is None:
            k -= 1
        else:
            chosen.append(pick[k])
            k = pick[k].start
    return base_ms + best[last], chosen[::-1]


def _repair(chosen, by_efficiency, base_ms, budget_ms):
    """Add the most efficient non-overlapping replacements until the estimate fits the budget."""
    lat = base_ms + sum(c.delta_ms for c in chosen)
    for c in by_efficiency:
        if lat <= budget_ms:
            break
        if c not in chosen and not any(_overlap(c, o) for o in chosen):
            chosen = chosen + [c]
            lat += c.delta_ms
    return chosen


def _propose(current, candidates, rng, by_efficiency, base_ms, budget_ms):
    """Drop one replacement, or swap one in (evicting what it overlaps) and repair the budget: a
    swap alone would have to cross over-budget states to get from one fitting set to another."""
    if current and rng.random() < 0.3:
        k = rng.integers(len(current))
        return current[:k] + current[k + 1 :]
    c = candidates[rng.integers(len(candidates))]
    if c in current:
        return None
    return _repair([o for o in current if not _overlap(o, c)] + [c], by_efficiency, base_ms, budget_ms)


def _by_efficiency(candidates):
    useful = [c for c in candidates if c.delta_ms < 0]
    return sorted(useful, key=lambda c: c.delta_ms / (max(c.drop, 0.0) + _EPS_DROP))


def _initial_temperature(current, candidates, rng, base_ms, budget_ms, lam, probes: int = 200) -> float:
    """The median score increase of random moves from the start: uphill moves of typical size are
    accepted with probability 1/e at first, whatever the units of latency and drop."""
    s0 = score(current, base_ms, budget_ms, lam)[0]
    ups, by_eff = [], _by_efficiency(candidates)
    for _ in range(probes):
        p = _propose(current, candidates, rng, by_eff, base_ms, budget_ms)
        if p is not None:
            d = score(p, base_ms, budget_ms, lam)[0] - s0
            if d > 0:
                ups.append(d)
    return float(np.median(ups)) if ups else 1.0


class _Best:
    """The ``keep`` lowest-scoring distinct sets within budget seen so far."""

    def __init__(self, keep: int):
        self.keep = keep
        self.sets: dict[frozenset, tuple[float, list[Candidate]]] = {}

    def offer(self, chosen, s: float) -> None:
        key = frozenset(c.alt for c in chosen)
        if key in self.sets or self.keep < 1:
            return
        if len(self.sets) >= self.keep:
            worst = max(self.sets, key=lambda k: self.sets[k][0])
            if self.sets[worst][0] <= s:
                return
            del self.sets[worst]
        self.sets[key] = (s, sorted(chosen, key=lambda c: c.start))

    def ranked(self) -> list[list[Candidate]]:
        return [v[1] for v in sorted(self.sets.values(), key=lambda v: v[0])]


def anneal(candidates, *, base_ms: float, budget_ms: float, lam: float = 1.0, steps: int = 5000,
           t_start: float | None = None, t_end_ratio: float = 1e-5, seed: int = 0, keep: int = 1) -> SearchResult:
    """Simulated annealing over sets of non-overlapping candidates (see the module docstring).

    The temperature falls geometrically from ``t_start`` (default: the median uphill move from the
    greedy start) to ``t_start * t_end_ratio``. ``keep``: how many of the best distinct sets within
    budget to return in ``runners_up``.

    Raises :class:`BudgetInfeasibleError` when even the fastest combination (found exactly by
    :func:`min_latency`) is estimated over ``budget_ms``.
    """
    if not budget_ms > 0 or steps < 0 or lam < 0 or not 0 < t_end_ratio <= 1 or (t_start is not None and t_start <= 0):
        raise InvalidParameterError(
            f"expected budget_ms > 0, steps >= 0, lam >= 0 and positive temperatures; got {budget_ms}, {steps}, {lam}"
        )
    candidates = list(candidates)
    fastest, fastest_set = min_latency(candidates, base_ms)
    if fastest > budget_ms:
        raise BudgetInfeasibleError(
            f"no combination of the house's {len(candidates)} alternatives meets {budget_ms:.3f} ms: the fastest "
            f"is estimated at {fastest:.3f} ms (teacher {base_ms:.3f} ms); raise the budget or add lighter "
            "alternatives (more donors, higher pruning ratios)"
        )
    rng = np.random.default_rng(seed)
    by_eff = _by_efficiency(candidates)
    current = _repair([], by_eff, base_ms, budget_ms)  # the greedy start
    if score(current, base_ms, budget_ms, lam)[1] > budget_ms:
        current = fastest_set
    cur_score, lat, _ = score(current, base_ms, budget_ms, lam)
    best, best_score, best_feasible = list(current), cur_score, lat <= budget_ms
    top = _Best(keep)
    if best_feasible:
        top.offer(current, cur_score)
    accepted, history = 0, []
    temp = t_start or _initial_temperature(current, candidates, rng, base_ms, budget_ms, lam)
    decay = t_end_ratio ** (1.0 / max(1, steps))
    for step in range(steps):
        proposal = _propose(current, candidates, rng, by_eff, base_ms, budget_ms)
        if proposal is None:
            temp *= decay
            continue
        new_score, lat, _ = score(proposal, base_ms, budget_ms, lam)
        if new_score <= cur_score or rng.random() < math.exp(-(new_score - cur_score) / temp):
            current, cur_score = proposal, new_score
            accepted += 1
            feasible = lat <= budget_ms
            if feasible:
                top.offer(current, cur_score)
            if (feasible and not best_feasible) or (feasible == best_feasible and cur_score < best_score):
                best, best_score, best_feasible = list(current), cur_score, feasible
        temp *= decay
        if steps >= 100 and step % (steps // 100) == 0:
            history.append(best_score)
    best.sort(key=lambda c: c.start)
    s, lat, drop = score(best, base_ms, budget_ms, lam)
    return SearchResult(best, lat, drop, s, lat <= budget_ms, steps, accepted, history, top.ranked())
