"""Profilers: measure latency (and energy) of architectures on real runtimes and devices."""

from __future__ import annotations

from edgeperf.profilers._base import OpenModel, Profiler
from edgeperf.profilers._protocol import MeasurementProtocol, TimingStats
from edgeperf.profilers._runner import ProfileSummary, profile_archs, progress_bar, sample_archs
from edgeperf.registry import Registry

__all__ = [
    "Profiler", "OpenModel", "MeasurementProtocol", "TimingStats", "register", "get", "names",
    "profile_archs", "sample_archs", "ProfileSummary", "progress_bar", "energy",
]

_REGISTRY = Registry("profiler", key="kind", base=Profiler)
#: Class decorator: make a profiler available under ``cls.kind``.
register = _REGISTRY.register
#: Registered profiler kinds.
names = _REGISTRY.names
#: The profiler class registered as ``kind``.
get = _REGISTRY.cls


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
