"""Optimizers: how a search explores a space. ``exhaustive`` scores every architecture of a
finite space (NAS-Bench-201) in one pass; ``evolution`` is regularised evolution (Real et al.,
AAAI 2019) with one population shared by all devices; ``random`` is the baseline.

>>> from edgeperf.optimize import optimizers
>>> optimizers.names()
['evolution', 'exhaustive', 'random']
"""

from __future__ import annotations

from edgeperf.registry import Registry
from edgeperf.optimize.optimizers._base import Optimizer, Problem

__all__ = ["Optimizer", "Problem", "register", "get", "names"]

_REGISTRY = Registry("optimizer", base=Optimizer)
#: Class decorator: make an :class:`Optimizer` subclass available under ``name``.
register = _REGISTRY.register
names = _REGISTRY.names
#: A new instance of the class registered as ``name``, built with ``params``.
get = _REGISTRY.create


from edgeperf.optimize.optimizers import _evolution, _exhaustive, _random  # noqa: E402,F401
