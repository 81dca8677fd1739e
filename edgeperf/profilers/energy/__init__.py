"""Energy meters read around a profiler's timed rounds.

``get(name, **kwargs)`` builds one: ``rapl`` (Linux powercap), ``nvml`` (NVIDIA GPUs),
``android-battery`` (phone fuel gauge over adb), ``jetson-ina3221`` (Jetson power monitors).
Meters reading sysfs take ``root=`` (default ``/``) so tests can point them at a fake tree.
"""

from __future__ import annotations

from edgeperf.errors import EnergyMeterUnavailableError
from edgeperf.profilers.energy._android import AndroidBatteryMeter
from edgeperf.profilers.energy._base import CounterMeter, EnergyMeter, EnergyReading, SamplingMeter
from edgeperf.profilers.energy._jetson import JetsonMeter
from edgeperf.profilers.energy._nvml import NvmlMeter
from edgeperf.profilers.energy._rapl import RaplMeter
from edgeperf.registry import Registry

__all__ = [
    "EnergyMeter", "EnergyReading", "CounterMeter", "SamplingMeter", "EnergyMeterUnavailableError",
    "RaplMeter", "NvmlMeter", "AndroidBatteryMeter", "JetsonMeter", "register", "get", "names",
    "meter_class",
]

_REGISTRY = Registry("energy meter", base=EnergyMeter)
#: Class decorator: make a meter available under ``cls.name``.
register = _REGISTRY.register
#: Registered meter names.
names = _REGISTRY.names
#: The meter class registered as ``name``.
meter_class = _REGISTRY.cls

for _cls in (RaplMeter, NvmlMeter, AndroidBatteryMeter, JetsonMeter):
    register(_cls)


def get(name: str, **kwargs) -> EnergyMeter:
    """A new meter registered as ``name``, built with ``kwargs`` (e.g. ``root=``, ``serial=``)."""
    return _REGISTRY.create(name, **kwargs)
