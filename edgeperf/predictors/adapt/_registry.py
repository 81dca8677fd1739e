"""The registry of adaptation strategies (name -> class)."""

from __future__ import annotations

from edgeperf.predictors.adapt._base import AdaptStrategy
from edgeperf.registry import Registry

__all__ = ["register", "get", "names"]

_STRATEGIES = Registry("adapt strategy", base=AdaptStrategy)
#: Class decorator: register an :class:`AdaptStrategy` subclass under ``name``.
register = _STRATEGIES.register
#: The strategy class registered as ``name`` (:class:`UnknownNameError` otherwise).
get = _STRATEGIES.cls
#: Registered strategy names, sorted.
names = _STRATEGIES.names
