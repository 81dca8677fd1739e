"""Energy meters read around a profiler's timed rounds.

``get(name, **kwargs)`` builds one: ``rapl`` (Linux powercap), ``nvml`` (NVIDIA GPUs),
``android-battery`` (phone fuel gauge over adb), ``jetson-ina3221`` (Jetson power monitors).
Meters reading sysfs take ``root=`` (default ``/``) so tests can point them at a fake tree.
"""

from __future__ import annotations

from edgeperf.errors import EnergyMeterUnavailableError, UnknownNameError
from edgeperf.profilers.energy._android import AndroidBatteryMeter
from edgeperf.profilers.energy._base import CounterMeter, EnergyMeter, EnergyReading, SamplingMeter
from edgeperf.profilers.energy._jetson import JetsonMeter
from edgeperf.profilers.energy._nvml import NvmlMeter
from edgeperf.profilers.energy._rapl import RaplMeter

__all__ = [
    "EnergyMeter", "EnergyReading", "CounterMeter", "SamplingMeter", "EnergyMeterUnavailableError",
    "RaplMeter", "NvmlMeter", "AndroidBatteryMeter", "JetsonMeter", "register", "get", "names",
]

_REGISTRY: dict[str, type[EnergyMeter]] = {}


def register(cls: type[EnergyMeter]) -> type[EnergyMeter]:
    """Class decorator: make a meter available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (RaplMeter, NvmlMeter, AndroidBatteryMeter, JetsonMeter):
    register(_cls)


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str, **kwargs) -> EnergyMeter:
    """A new meter registered as ``name``, built with ``kwargs`` (e.g. ``root=``, ``serial=``)."""
    if name not in _REGISTRY:
        raise UnknownNameError("energy meter", name, _REGISTRY)
    return _REGISTRY[name](**kwargs)
