"""The search-space extension point.

A search space knows how to read and write its architecture strings, how to
turn them into fixed-length feature vectors, how to sample them and how to
build a runnable torch module for one of them. Adding a space means one new
module with a :class:`SearchSpace` subclass and one ``register`` call.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from edgeperf.errors import ArchitectureError, InvalidParameterError, UnknownNameError

__all__ = ["SearchSpace", "check_arch_text", "MAX_ARCH_CHARS"]

#: Longest architecture string a parser reads (the canonical ones are < 400 characters): longer
#: input is refused before any parsing, so a pasted file or a hostile string cannot cost much.
MAX_ARCH_CHARS = 4096


def check_arch_text(arch, what: str) -> str:
    """``arch`` if it is a string of at most :data:`MAX_ARCH_CHARS`; else :class:`ArchitectureError`."""
    if not isinstance(arch, str):
        raise ArchitectureError(f"expected {what}, got {type(arch).__name__}")
    if len(arch) > MAX_ARCH_CHARS:
        raise ArchitectureError(
            f"expected {what} of at most {MAX_ARCH_CHARS} characters, got {len(arch)} starting {arch[:60]!r}"
        )
    return arch


class SearchSpace(abc.ABC):
    """Abstract base class of a search space.

    Subclasses set :attr:`name` and implement the abstract methods. Parsed
    architectures are immutable, hashable Python objects private to the space;
    the public currency everywhere else is the canonical string.
    """

    #: Registry name, e.g. ``"nasbench201"``.
    name: str = ""
    #: One line saying what the space is.
    description: str = ""
    #: Encodings this space provides; the first is the default.
    encodings: tuple[str, ...] = ("onehot",)

    # ---- strings -------------------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, arch: str) -> Any:
        """Parse an architecture string; raise :class:`ArchitectureError` naming what is wrong."""

    @abc.abstractmethod
    def to_string(self, parsed: Any) -> str:
        """The canonical string of a parsed architecture."""

    def canonical(self, arch: str) -> str:
        """Parse then print: the one spelling of ``arch`` used in tables and models."""
        return self.to_string(self.parse(arch))

    def validate(self, archs: Iterable[str]) -> list[str]:
        """Canonical strings of ``archs``; the error names the position of the first bad one."""
        out = []
        for i, a in enumerate(archs):
            try:
                out.append(self.canonical(a))
            except ArchitectureError as exc:
                raise ArchitectureError(f"architecture #{i}: {exc}") from None
        return out

    def is_valid(self, arch: str) -> bool:
        try:
            self.parse(arch)
        except ArchitectureError:
            return False
        return True

    # ---- encodings -----------------------------------------------------------------------
    def encode(self, archs: str | Sequence[str], encoding: str | None = None) -> np.ndarray:
        """Feature matrix ``(n, encoding_dim)`` of float32 for ``archs`` (a 1-D vector for one string)."""
        encoding = encoding or self.encodings[0]
        if encoding not in self.encodings:
            raise UnknownNameError(f"encoding of space {self.name!r}", encoding, self.encodings)
        single = isinstance(archs, str)
        items = [archs] if single else list(archs)
        rows = np.empty((len(items), self.encoding_dim(encoding)), dtype=np.float32)
        encode_one = getattr(self, f"_encode_{encoding}")
        for i, a in enumerate(items):
            try:
                parsed = self.parse(a)
            except ArchitectureError as exc:
                raise ArchitectureError(f"architecture #{i}: {exc}") from None
            rows[i] = encode_one(parsed)
        return rows[0] if single else rows

    @abc.abstractmethod
    def encoding_dim(self, encoding: str | None = None) -> int:
        """Length of the feature vector of ``encoding``."""

    def feature_names(self, encoding: str | None = None) -> list[str]:
        """Names of the encoding's columns (generic ``f0..`` unless a space says better)."""
        return [f"f{i}" for i in range(self.encoding_dim(encoding))]

    # ---- sampling ------------------------------------------------------------------------
    #: Number of architectures in the space, or ``None`` when too large to count.
    size: int | None = None

    def sample(self, n: int, *, seed: int | None = None, unique: bool = False) -> list[str]:
        """``n`` canonical strings drawn uniformly at random (reproducible for a given seed).

        ``unique=True`` never repeats an architecture (a draw without replacement); asking for
        more than :attr:`size` architectures then raises :class:`InvalidParameterError`.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InvalidParameterError(f"expected a number of architectures >= 0, got {n!r}")
        n = int(n)
        rng = np.random.default_rng(seed)
        if not unique:
            return self._draw(rng, n)
        if self.size is not None and n > self.size:
            raise InvalidParameterError(
                f"cannot draw {n} distinct architectures from space {self.name!r}: it holds only {self.size}"
            )
        if self.size is not None and n > self.size // 2:  # rejection would stall: permute the space
            everything = list(self.enumerate())
            return [everything[i] for i in rng.permutation(len(everything))[:n]]
        seen: dict[str, None] = {}
        while len(seen) < n:
            seen.update(dict.fromkeys(self._draw(rng, n - len(seen))))
        return list(seen)[:n]

    @abc.abstractmethod
    def _draw(self, rng: np.random.Generator, n: int) -> list[str]:
        """``n`` canonical strings drawn uniformly (with repeats) from ``rng``."""

    # ---- decisions (what a NAS algorithm chooses) ------------------------------------------
    @property
    @abc.abstractmethod
    def choices(self) -> tuple[tuple[str, tuple], ...]:
        """The space's decisions in order: ``(decision_name, options)`` pairs.

        Every architecture is one option index per decision (:meth:`to_choices`); every
        tuple of indices is an architecture (:meth:`from_choices`).
        """

    @abc.abstractmethod
    def _choice_values(self, parsed) -> tuple:
        """The chosen option (a value of ``choices[i][1]``) of each decision of a parsed arch."""

    @abc.abstractmethod
    def _from_choice_values(self, values: tuple):
        """The parsed architecture of one option value per decision."""

    def to_choices(self, arch: str) -> tuple[int, ...]:
        """Option index of each decision of ``arch`` (see :attr:`choices`)."""
        values = self._choice_values(self.parse(arch))
        index = self.__dict__.get("_option_index")
        if index is None:  # option value -> index, per decision (a memo of :attr:`choices`)
            index = self.__dict__["_option_index"] = [{v: i for i, v in enumerate(o)} for _, o in self.choices]
        return tuple([m[v] for m, v in zip(index, values)])

    def feature_decisions(self, encoding: str | None = None) -> "tuple[tuple[int, ...], ...] | None":
        """For each column of ``encoding``, the decisions (indices into :attr:`choices`) whose
        options determine it: the column is a function of those options alone. ``None`` when the
        space does not say (the default); predictors then evaluate encoded rows only."""
        return None

    def from_choices(self, indices) -> str:
        """The canonical string of one option index per decision (validated)."""
        decisions = self.choices
        try:
            items = list(indices)
        except TypeError:
            raise ArchitectureError(f"expected {len(decisions)} option indices, got {indices!r:.80}") from None
        if len(items) != len(decisions):
            raise ArchitectureError(f"expected {len(decisions)} option indices (one per decision), got {len(items)}")
        values = []
        for (name, options), i in zip(decisions, items):
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(options):
                raise ArchitectureError(
                    f"decision {name!r}: expected an option index in 0..{len(options) - 1}, got {i!r}"
                )
            values.append(options[int(i)])
        # Every value is one of its decision's options, so the printed string is canonical.
        return self.to_string(self._from_choice_values(tuple(values)))

    def enumerate(self) -> Iterator[str]:
        """Every architecture of a finite, enumerable space, in the space's official order."""
        raise NotImplementedError(f"space {self.name!r} is too large to enumerate; use sample()")

    def _network_costs(self, parsed):
        """``(per-position costs, whole-network cost)`` of a parsed architecture."""
        raise NotImplementedError(f"space {self.name!r} has no analytic cost model")

    def costs(self, arch: str):
        """Analytic whole-network cost (``macs``, ``params``, ``mem_bytes``) of ``arch``."""
        return self._network_costs(self.parse(arch))[1]

    def cost_matrix(self, archs) -> np.ndarray:
        """``(n, 3)`` float64 whole-network costs, columns ``macs, params, mem_bytes``.

        ``archs`` are strings or rows of the ``onehot`` encoding (vectorised: a table
        lookup per layer position, no parsing).
        """
        if isinstance(archs, np.ndarray):
            if archs.ndim != 2 or archs.shape[1] != self.encoding_dim("onehot"):
                raise ArchitectureError(
                    f"expected one-hot rows of shape (n, {self.encoding_dim('onehot')}), got {archs.shape}"
                )
            return self._onehot_costs(archs)
        return np.array([[c.macs, c.params, c.mem_bytes] for c in map(self.costs, archs)], dtype=np.float64)

    def _onehot_costs(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"space {self.name!r} has no vectorised cost model")

    # ---- models --------------------------------------------------------------------------
    def input_shape(self, arch: str, *, batch_size: int = 1) -> tuple[int, ...]:
        """Shape of the model's input tensor (NCHW)."""
        raise NotImplementedError

    def build_module(self, arch: str, *, num_classes: int | None = None):
        """A ``torch.nn.Module`` in eval mode that follows the space's published definition."""
        raise NotImplementedError(f"space {self.name!r} cannot build torch modules yet")

    def export_onnx(self, arch: str, path: str | Path, *, batch_size: int = 1) -> Path:
        """Build the module for ``arch`` and export it to ONNX at ``path``; returns the path."""
        from edgeperf.spaces._export import export_module_onnx

        module = self.build_module(arch)
        return export_module_onnx(module, self.input_shape(arch, batch_size=batch_size), path)

    def __repr__(self) -> str:
        return f"<SearchSpace {self.name}>"
