"""Regularised (aging) evolution (Real et al., AAAI 2019) for many devices at once.

One population serves every device: each cycle, every device runs its own tournaments on
the shared population (fitness: the objective among designs within that device's budget,
then closeness to the budget) and mutates the winners; all children are evaluated in one
batch, for every device, and join the population while the oldest members leave. A design
good for one device is a parent for the others, so devices with similar budgets share work.
"""

from __future__ import annotations

import numpy as np

from edgeperf.errors import InvalidParameterError
from edgeperf.optimize.optimizers import register
from edgeperf.optimize.optimizers._base import Optimizer, Problem

#: Tries to mutate a parent into an architecture not evaluated yet before drawing a random one.
_MUTATION_TRIES = 8
#: Cycles in a row that add nothing new before the search stops (a finite space is exhausted).
_STALL_CYCLES = 3


@register("evolution")
class RegularizedEvolution(Optimizer):
    """Parameters: ``population`` (members alive at once), ``sample_size`` (tournament size),
    ``batch`` (children per cycle, spread over the devices)."""

    def __init__(self, *, population: int = 100, sample_size: int = 20, batch: int = 32):
        for name, v in (("population", population), ("sample_size", sample_size), ("batch", batch)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise InvalidParameterError(f"expected {name} >= 2, got {v!r}")
        self.population, self.sample_size, self.batch = population, sample_size, batch

    def run(self, problem: Problem, *, n_evaluations: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        space = problem.space
        sizes = [len(options) for _, options in space.choices]
        start = min(self.population, n_evaluations)
        population = list(problem.evaluate(space.sample(start, seed=seed, unique=True)))
        per_device = max(1, self.batch // len(problem.devices))
        stalled = 0
        while problem.n_evaluated < n_evaluations and stalled < _STALL_CYCLES:
            members = np.asarray(population)
            children = []
            for j in range(len(problem.devices)):
                for _ in range(per_device):
                    entrants = rng.choice(members, size=min(self.sample_size, len(members)), replace=False)
                    parent = entrants[int(np.argmax(problem.fitness(entrants, j)))]
                    children.append(self._mutate(space, problem.archs[parent], sizes, rng, problem.position))
            children = list(dict.fromkeys(c for c in children if c not in problem.position))
            children = children[: n_evaluations - problem.n_evaluated]
            stalled = stalled + 1 if not children else 0
            if children:
                population.extend(problem.evaluate(children))
                population = population[-self.population :]  # aging: the oldest leave

    @staticmethod
    def _mutate(space, arch: str, sizes: list[int], rng, seen) -> str:
        """Change one decision to another option (retrying towards an unseen architecture)."""
        choices = list(space.to_choices(arch))
        for _ in range(_MUTATION_TRIES):
            child = list(choices)
            k = int(rng.integers(len(sizes)))
            child[k] = int((child[k] + rng.integers(1, sizes[k])) % sizes[k])
            out = space.from_choices(child)
            if out not in seen:
                return out
        return space.sample(1, seed=int(rng.integers(2**31)))[0]
