"""The optimizer extension point, and the problem every optimizer drives.

A :class:`Problem` is one search over many devices at once: it evaluates batches of
architectures (objective score, and per device the latency checked against the budget) and
keeps every evaluation in its archive. An :class:`Optimizer` only decides which
architectures to evaluate next; picking each device's design from the archive is the same
for every optimizer (:meth:`Problem.best`), so optimizers differ in exploration only.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np

__all__ = ["Optimizer", "Problem"]


class Problem:
    """Evaluate architectures of ``space`` for ``devices`` under per-device budgets.

    ``latency_bound(archs) -> (point_ms, bound_ms)`` returns two ``(n_devices, n)`` arrays: the
    predicted latency and the value that must stay within the budget (a quantile or a
    margin above the prediction). ``extra_constraints(archs) -> bool (n_devices, n)`` adds
    constraints such as energy (``None``: none).
    """

    def __init__(self, *, space, devices: Sequence[str], budgets_ms: np.ndarray, score, latency_bound,
                 extra_constraints=None, energy=None, tolerance: float = 0.0):
        self.space = space
        self.tolerance = float(tolerance)  # see best()
        self.devices = list(devices)
        self.budgets_ms = np.asarray(budgets_ms, dtype=np.float64)
        self._score, self._latency_bound = score, latency_bound
        self._extra, self._energy = extra_constraints, energy
        self.archs: list[str] = []
        self.position: dict[str, int] = {}
        self._scores, self._point, self._bound, self._ok, self._energy_mj = [], [], [], [], []
        self._arrays = None  # concatenation of the lists above, rebuilt after each evaluate

    # ---- evaluation ----------------------------------------------------------------------
    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Evaluate the architectures not seen yet; returns the archive positions of ``archs``."""
        first = not self.archs
        distinct = tuple(dict.fromkeys(archs))
        new = distinct if first else tuple(a for a in distinct if a not in self.position)
        if new:
            # The first batch of distinct archs (an exhaustive search's whole space) is passed to
            # the objective and predictor as one tuple, so that they can recognise it.
            scores = self._score(archs if first and len(distinct) == len(archs) and isinstance(archs, tuple) else new)
            point, bound = self._latency_bound(new)
            ok = bound <= self.budgets_ms[:, None]
            if self._extra is not None:
                ok &= self._extra(new)
            self._energy_mj.append(self._energy(new) if self._energy is not None else None)
            start = len(self.archs)
            self.position.update(zip(new, range(start, start + len(new))))
            self.archs.extend(new)
            self._scores.append(scores)
            self._point.append(point)
            self._bound.append(bound)
            self._ok.append(ok)
            self._arrays = None
        if first and len(new) == len(archs):  # all of them new and distinct: positions 0..n-1
            return np.arange(len(new), dtype=np.int64)
        return np.array([self.position[a] for a in archs], dtype=np.int64)

    @property
    def n_evaluated(self) -> int:
        return len(self.archs)

    def arrays(self):
        """``(scores (n,), point_ms (d, n), bound_ms (d, n), feasible (d, n), energy_mj or None)``."""
        if self._arrays is None:
            d = len(self.devices)
            if not self._scores:
                empty = np.empty((d, 0))
                return np.empty(0), empty, empty, empty.astype(bool), None
            energy = None if self._energy_mj[0] is None else np.hstack(self._energy_mj)
            self._arrays = (np.concatenate(self._scores), np.hstack(self._point), np.hstack(self._bound),
                            np.hstack(self._ok), energy)
        return self._arrays

    # ---- choosing ------------------------------------------------------------------------
    def fitness(self, positions: np.ndarray, device_index: int) -> np.ndarray:
        """Higher is better: feasible designs by score, then infeasible ones by how close
        they come to the budget (so a population drifts towards feasibility)."""
        scores, _, bound, ok, _ = self.arrays()
        s, b, f = scores[positions], bound[device_index, positions], ok[device_index, positions]
        over = b / self.budgets_ms[device_index]
        floor = (s[f].min() if f.any() else 0.0) - 1.0
        return np.where(f, s, floor - over)

    def best(self):
        """Per device: archive position of the best feasible design, whether one exists, and the
        fastest design (used when nothing fits). Designs within ``tolerance`` (a share of the best
        feasible score's size) of the best count as tied, and of tied designs the one with the
        smallest latency bound wins: the most slack for a negligible loss of score."""
        scores, _, bound, ok, _ = self.arrays()
        masked = np.where(ok, scores[None, :], -np.inf)
        top = masked.max(axis=1, initial=-np.inf)
        near = top - self.tolerance * np.abs(np.where(np.isfinite(top), top, 0.0))
        tied = ok & (masked >= near[:, None])
        best = np.where(tied, bound, np.inf).argmin(axis=1)
        feasible = ok.any(axis=1)
        fastest = bound.argmin(axis=1)
        return np.where(feasible, best, fastest), feasible


class Optimizer(abc.ABC):
    """Abstract base class of an optimizer; subclasses are registered with ``register(name)``."""

    #: Registry name; set by ``register``.
    name: str = ""

    def supports(self, space) -> bool:
        """Whether this optimizer can search ``space`` (exhaustive search needs a finite one)."""
        return True

    @abc.abstractmethod
    def run(self, problem: Problem, *, n_evaluations: int, seed: int) -> None:
        """Evaluate up to ``n_evaluations`` architectures through ``problem.evaluate``."""

    def __repr__(self) -> str:
        return f"<Optimizer {self.name}>"
