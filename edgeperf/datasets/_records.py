"""Value objects of the data model: one measurement, one device.

Both validate on construction, so an object that exists is a valid one. Units
live in names: the metric is ``latency_ms`` or ``energy_mj``, never a bare
``latency``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from edgeperf.errors import DataValidationError

__all__ = ["METRICS", "Measurement", "DeviceSpec", "PROVENANCE_FIELDS"]

#: Metric name -> human description. The unit is part of the name.
METRICS: dict[str, str] = {
    "latency_ms": "time of one forward pass, milliseconds",
    "energy_mj": "energy of one forward pass, millijoules",
    "power_mw": "mean power during the timed runs, milliwatts",
    "memory_mb": "peak memory of one forward pass, megabytes",
    "accuracy_top1": "top-1 accuracy, percent (an optimisation objective, not a device measurement)",
}

#: Optional columns of a tidy table, each with the Python type it holds.
PROVENANCE_FIELDS: dict[str, type] = {
    "runtime": str,
    "runtime_version": str,
    "batch_size": int,
    "threads": int,
    "runs": int,
    "std": float,
    "p10": float,
    "p90": float,
    "cv": float,
    "timestamp": str,
    "edgeperf_version": str,
}


def _check_finite_positive(value: float, what: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DataValidationError(f"expected a number, got {value!r}", field=what) from None
    if math.isnan(value) or math.isinf(value):
        raise DataValidationError(f"expected a finite number, got {value!r}", field=what)
    if value <= 0:
        raise DataValidationError(
            f"expected a value > 0, got {value!r} (public benchmarks use -1 or 0 for a failed "
            "measurement: leave the cell empty instead)",
            field=what,
        )
    return value


@dataclass(frozen=True)
class Measurement:
    """One measured value of one architecture on one device.

    ``value`` is in the unit named by ``metric`` (``latency_ms`` -> milliseconds).
    Everything after ``value`` is optional provenance.
    """

    space: str
    arch: str
    device: str
    metric: str
    value: float
    runtime: str | None = None
    runtime_version: str | None = None
    batch_size: int | None = None
    threads: int | None = None
    runs: int | None = None
    std: float | None = None
    p10: float | None = None
    p90: float | None = None
    cv: float | None = None
    timestamp: str | None = None
    edgeperf_version: str | None = None

    def __post_init__(self) -> None:
        for name in ("space", "arch", "device"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise DataValidationError(f"expected a non-empty string, got {v!r}", field=name)
            # surrounding blanks are never part of a name: tables strip them too
            object.__setattr__(self, name, v.strip())
        if self.metric not in METRICS:
            raise DataValidationError(
                f"unknown metric {self.metric!r}; expected one of {sorted(METRICS)}", field="metric"
            )
        object.__setattr__(self, "value", _check_finite_positive(self.value, "value"))
        for name in ("batch_size", "threads", "runs"):
            v = getattr(self, name)
            if v is not None and (int(v) != v or v < 1):
                raise DataValidationError(f"expected a positive integer, got {v!r}", field=name)
        for name in ("std", "p10", "p90", "cv"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(float(v)) or v < 0):
                raise DataValidationError(f"expected a finite number >= 0, got {v!r}", field=name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with every field (``None`` for absent provenance)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DeviceSpec:
    """A device as data: a name plus whatever static features are known.

    A device known only from a public table has just a name; a device profiled
    by edgeperf carries its CPU, memory and runtime settings. Frequencies are in
    MHz, memory in MB (units in the names). ``extra`` holds anything else as
    JSON-compatible values.
    """

    name: str
    kind: str | None = None  # "cpu", "gpu", "phone", "npu", ...
    soc: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_max_freq_mhz: tuple[float, ...] | None = None  # one per core, or per cluster
    memory_mb: float | None = None
    gpu: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    batch_size: int | None = None
    os: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataValidationError(f"expected a non-empty device name, got {self.name!r}", field="name")
        for name in ("cpu_cores", "threads", "batch_size"):
            v = getattr(self, name)
            if v is not None and (int(v) != v or v < 1):
                raise DataValidationError(f"expected a positive integer, got {v!r}", field=name)
        if self.memory_mb is not None and not self.memory_mb > 0:
            raise DataValidationError(f"expected memory_mb > 0, got {self.memory_mb!r}", field="memory_mb")
        if self.cpu_max_freq_mhz is not None:
            freqs = tuple(float(f) for f in self.cpu_max_freq_mhz)
            if any(not f > 0 for f in freqs):
                raise DataValidationError(f"expected frequencies > 0 MHz, got {freqs}", field="cpu_max_freq_mhz")
            object.__setattr__(self, "cpu_max_freq_mhz", freqs)
        try:
            json.dumps(dict(self.extra))
        except TypeError as exc:
            raise DataValidationError(f"expected JSON-compatible values: {exc}", field="extra") from None
        object.__setattr__(self, "extra", dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["cpu_max_freq_mhz"] is not None:
            d["cpu_max_freq_mhz"] = list(d["cpu_max_freq_mhz"])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeviceSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DataValidationError(
                f"unknown device fields {sorted(unknown)}; expected some of {sorted(known)} "
                "(put anything else under 'extra')"
            )
        if "name" not in data:
            raise DataValidationError("missing the device name", field="name")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> "DeviceSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataValidationError(f"expected a JSON object describing a device: {exc}") from None
        if not isinstance(data, dict):
            raise DataValidationError(f"expected a JSON object describing a device, got {type(data).__name__}")
        return cls.from_dict(data)
