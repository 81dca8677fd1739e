"""Profilers: measure latency (and energy) of architectures on real runtimes and devices."""

from __future__ import annotations

from edgeperf.errors import UnknownNameError
from edgeperf.profilers._base import Profiler
from edgeperf.profilers._protocol import MeasurementProtocol, TimingStats

__all__ = ["Profiler", "MeasurementProtocol", "TimingStats", "register", "get", "names"]

_REGISTRY: dict[str, type[Profiler]] = {}


def register(cls: type[Profiler]) -> type[Profiler]:
    """Class decorator: make a profiler available under ``cls.kind``."""
    _REGISTRY[cls.kind] = cls
    return cls


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(kind: str) -> type[Profiler]:
    """The profiler class registered as ``kind``."""
    if kind not in _REGISTRY:
        raise UnknownNameError("profiler", kind, _REGISTRY)
    return _REGISTRY[kind]
