"""Profilers: measure latency (and energy) of architectures on real runtimes and devices."""

from __future__ import annotations

from edgeperf.errors import UnknownNameError
from edgeperf.profilers._base import Profiler
from edgeperf.profilers._protocol import MeasurementProtocol, TimingStats
from edgeperf.profilers._runner import ProfileSummary, profile_archs, progress_bar, sample_archs

__all__ = [
    "Profiler", "MeasurementProtocol", "TimingStats", "register", "get", "names",
    "profile_archs", "sample_archs", "ProfileSummary", "progress_bar", "energy",
]

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


# Built-in local profilers register themselves on import. Their modules import only the
# standard library and edgeperf at import time: onnxruntime, torch and TVM load on first use.
from edgeperf.profilers import _onnxruntime, _torch, _tvm  # noqa: E402,F401
from edgeperf.profilers import adb as _adb  # noqa: E402,F401  (registers "android")


def __getattr__(name: str):
    # ``ep.profilers.energy`` without an explicit ``import edgeperf.profilers.energy``.
    if name == "energy":
        import importlib

        return importlib.import_module("edgeperf.profilers.energy")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
