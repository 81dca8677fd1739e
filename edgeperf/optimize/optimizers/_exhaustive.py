"""Exhaustive search: every architecture of a finite space, evaluated in one batch."""

from __future__ import annotations

import functools

from edgeperf.optimize.optimizers import register
from edgeperf.optimize.optimizers._base import Optimizer, Problem

#: Spaces up to this size are enumerated (NAS-Bench-201 has 15,625 cells).
MAX_EXHAUSTIVE_SIZE = 200_000


@register("exhaustive")
class Exhaustive(Optimizer):
    """Exact: the archive holds the whole space, so each device gets its true predicted optimum."""

    def supports(self, space) -> bool:
        return space.size is not None and space.size <= MAX_EXHAUSTIVE_SIZE

    def run(self, problem: Problem, *, n_evaluations: int, seed: int) -> None:
        problem.evaluate(_enumeration(problem.space))


@functools.lru_cache(maxsize=4)
def _enumeration(space) -> tuple[str, ...]:
    """Every architecture of a finite space (a memo: spaces are immutable singletons), as one
    tuple: the same object on every search, so objectives remember its scores
    (:meth:`~edgeperf.optimize.objectives.Objective.score`)."""
    return tuple(space.enumerate())
