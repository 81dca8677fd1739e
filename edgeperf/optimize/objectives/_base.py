"""The objective extension point: what "best" means when a design is chosen.

An objective scores architectures of a search space; higher is better. Adding one means a
private module with an :class:`Objective` subclass decorated with ``register(name)``.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np

from edgeperf.errors import ArchitectureError, ObjectiveError

__all__ = ["Objective", "MEMO_MIN_ARCHS"]

#: Tuples of at least this many architectures have their scores remembered (see ``score``).
MEMO_MIN_ARCHS = 1000


class Objective(abc.ABC):
    """Abstract base class of an objective (higher score = better design).

    Subclasses set :attr:`name`, :attr:`kind` and :attr:`unit` and implement :meth:`_score`.
    """

    #: Registry name (``nb201-cifar10``, ``naswot``, ...); set by ``register``.
    name: str = ""
    #: ``accuracy`` (measured after training), ``proxy`` (zero-cost, at random init) or
    #: ``macs`` (compute as a stand-in for accuracy: the last resort).
    kind: str = "accuracy"
    #: Unit of the score, for tables.
    unit: str = ""
    #: Scoring a whole finite space (15,625 NB-201 cells) takes well under a second.
    cheap: bool = True

    def spaces(self) -> tuple[str, ...] | None:
        """Spaces this objective covers (``None``: any space)."""
        return None

    def check_space(self, space) -> None:
        """Raise :class:`ObjectiveError` unless the objective covers ``space``."""
        covered = self.spaces()
        if covered is not None and space.name not in covered:
            raise ObjectiveError(
                f"objective {self.describe()} does not cover space {space.name!r}; it covers "
                f"{', '.join(covered)}. Use a zero-cost proxy (proxy:naswot) or macs for {space.name}"
            )

    def score(self, archs: Sequence[str], *, space) -> np.ndarray:
        """Scores (float64, higher is better) of ``archs``, strings of ``space`` (any spelling).

        Raises :class:`ObjectiveError` when an architecture has no score (naming it).

        The scores of the last tuple of at least :data:`MEMO_MIN_ARCHS` architectures are
        remembered, keyed by that tuple object (immutable; an exhaustive search passes the same
        tuple of the whole space on every call), and returned as a copy when it comes again.
        """
        from edgeperf import spaces

        space = spaces.get(space)
        self.check_space(space)
        memo = self.__dict__.get("_tuple_memo")
        if memo is not None and memo[0] is archs and memo[1] == space.name:
            return memo[2].copy()
        given = archs
        archs = list(archs)
        # Callers mostly pass canonical strings (a search's 15,625 cells): score them as given and
        # canonicalise only what found no score (parsing everything would dominate a search).
        try:
            out = np.asarray(self._score(space, archs), dtype=np.float64)
        except ArchitectureError:
            out = np.full(len(archs), np.nan)
        if out.shape != (len(archs),):
            raise ObjectiveError(f"objective {self.describe()} returned shape {out.shape} for {len(archs)} archs")
        redo = np.flatnonzero(~np.isfinite(out))
        if len(redo):
            try:
                canon = space.validate([archs[i] for i in redo])
            except ArchitectureError as exc:
                raise ObjectiveError(f"objective {self.describe()}: {exc}") from None
            out[redo] = np.asarray(self._score(space, canon), dtype=np.float64)
        bad = ~np.isfinite(out)
        if bad.any():
            first = space.canonical(archs[int(np.flatnonzero(bad)[0])])
            raise ObjectiveError(
                f"objective {self.describe()} has no score for {int(bad.sum())} of {len(archs)} "
                f"{space.name} architectures, e.g. {first!r}; it does not cover the space"
            )
        if isinstance(given, tuple) and len(given) >= MEMO_MIN_ARCHS:
            self.__dict__["_tuple_memo"] = (given, space.name, out.copy())
        return out

    @abc.abstractmethod
    def _score(self, space, archs: list[str]) -> np.ndarray:
        """Scores of ``archs`` (NaN where there is none, e.g. a non-canonical spelling; may raise
        :class:`ArchitectureError` for a string that does not parse)."""

    def describe(self) -> str:
        return f"{self.name!r} ({self.kind}, {self.unit})"

    def __repr__(self) -> str:
        return f"<Objective {self.describe()}>"
