"""Random search: the baseline every other optimizer must beat."""

from __future__ import annotations

from edgeperf.optimize.optimizers import register
from edgeperf.optimize.optimizers._base import Optimizer, Problem


@register("random")
class RandomSearch(Optimizer):
    """``n_evaluations`` distinct uniformly drawn architectures."""

    def run(self, problem: Problem, *, n_evaluations: int, seed: int) -> None:
        space = problem.space
        n = n_evaluations if space.size is None else min(n_evaluations, space.size)
        problem.evaluate(space.sample(n, seed=seed, unique=True))
