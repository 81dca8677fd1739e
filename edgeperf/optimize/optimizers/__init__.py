"""Optimizers: how a search explores a space. ``exhaustive`` scores every architecture of a
finite space (NAS-Bench-201) in one pass; ``evolution`` is regularised evolution (Real et al.,
AAAI 2019) with one population shared by all devices; ``random`` is the baseline.

>>> from edgeperf.optimize import optimizers
>>> optimizers.names()
['evolution', 'exhaustive', 'random']
"""

from __future__ import annotations

from edgeperf.errors import UnknownNameError
from edgeperf.optimize.optimizers._base import Optimizer, Problem

__all__ = ["Optimizer", "Problem", "register", "get", "names"]

_REGISTRY: dict[str, type[Optimizer]] = {}


def register(name: str):
    """Class decorator: make an :class:`Optimizer` subclass available under ``name``."""

    def deco(cls: type[Optimizer]) -> type[Optimizer]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def names() -> list[str]:
    """Registered optimizer names."""
    return sorted(_REGISTRY)


def get(name: str, **params) -> Optimizer:
    """A new instance of the optimizer registered as ``name``."""
    if name not in _REGISTRY:
        raise UnknownNameError("optimizer", name, _REGISTRY)
    return _REGISTRY[name](**params)


from edgeperf.optimize.optimizers import _evolution, _exhaustive, _random  # noqa: E402,F401
