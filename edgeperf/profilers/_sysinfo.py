"""What the host machine is: CPU model, cores, frequencies, memory, OS.

Local profilers put these static features into their :class:`DeviceSpec`, so a
table profiled here carries the device features predictors use for unseen
devices. Every probe degrades to ``None`` instead of failing: a container
without cpufreq is still a machine we can profile.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HostInfo", "host_info"]

_CPUINFO = Path("/proc/cpuinfo")
_CPUFREQ = Path("/sys/devices/system/cpu")
_KHZ_PER_MHZ = 1000.0
_BYTES_PER_MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class HostInfo:
    """Static description of the machine running a local profiler."""

    cpu_model: str | None
    physical_cores: int | None
    logical_cores: int | None
    max_freq_mhz: tuple[float, ...] | None  # one per logical core, from sysfs cpufreq
    min_freq_mhz: tuple[float, ...] | None
    memory_mb: float | None
    os: str
    machine: str
    extra: dict[str, Any] = field(default_factory=dict)

    def spec_fields(self) -> dict[str, Any]:
        """Keyword arguments for :class:`edgeperf.datasets.DeviceSpec` (without the name)."""
        extra = {
            "physical_cores": self.physical_cores,
            "logical_cores": self.logical_cores,
            "machine": self.machine,
        }
        if self.min_freq_mhz:
            extra["cpu_min_freq_mhz"] = list(self.min_freq_mhz)
        extra.update(self.extra)
        return dict(
            kind="cpu",
            cpu_model=self.cpu_model,
            cpu_cores=self.physical_cores or self.logical_cores,
            cpu_max_freq_mhz=self.max_freq_mhz,
            memory_mb=self.memory_mb,
            os=self.os,
            extra=extra,
        )


def _cpu_model() -> str | None:
    try:
        for line in _CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; many ARM kernels say "Hardware" or "Processor".
            if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _read_khz(path: Path) -> float | None:
    try:
        value = float(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value / _KHZ_PER_MHZ if value > 0 else None


def _frequencies(logical: int | None) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    maxs, mins = [], []
    for cpu in range(logical or 0):
        base = _CPUFREQ / f"cpu{cpu}" / "cpufreq"
        hi, lo = _read_khz(base / "cpuinfo_max_freq"), _read_khz(base / "cpuinfo_min_freq")
        if hi is None:
            # No cpufreq (VMs, containers): report nothing rather than a guess.
            return None, None
        maxs.append(hi)
        mins.append(lo if lo is not None else hi)
    return (tuple(maxs) or None), (tuple(mins) or None)


def host_info() -> HostInfo:
    """Probe this machine (cheap: a few small file reads)."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        logical = psutil.cpu_count(logical=True)
        memory_mb = psutil.virtual_memory().total / _BYTES_PER_MB
    except ImportError:  # psutil is a dependency, but keep the probe usable without it
        physical, logical = None, os.cpu_count()
        memory_mb = None
    max_f, min_f = _frequencies(logical)
    return HostInfo(
        cpu_model=_cpu_model(),
        physical_cores=physical,
        logical_cores=logical,
        max_freq_mhz=max_f,
        min_freq_mhz=min_f,
        memory_mb=round(memory_mb, 1) if memory_mb else None,
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
    )


# ---- shared base of the local (this machine) runtimes ---------------------------------------

from edgeperf.profilers._base import Profiler  # noqa: E402  (after HostInfo: _base does not need it)

#: Threads of a local runtime unless told otherwise. One thread is the steadiest setting on a
#: shared machine (docs: per-session CV ~1% at 1 thread vs up to 42% using every vCPU).
DEFAULT_THREADS = 1
#: Seed of the random input tensor, so every run of an arch sees the same numbers.
INPUT_SEED = 0


class LocalProfiler(Profiler):
    """A runtime on this machine: fills the device descriptor from :func:`host_info`."""

    #: Python distribution whose version is the runtime version.
    runtime_package: str = ""

    def __init__(self, *, threads: int | None = DEFAULT_THREADS, **kwargs):
        from edgeperf.errors import DeviceUnavailableError, InvalidParameterError

        if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
            raise InvalidParameterError(f"expected threads >= 1 (or None for the runtime's default), got {threads!r}")
        super().__init__(threads=threads, **kwargs)
        reason = self.availability()
        if reason is not None:
            raise DeviceUnavailableError(f"{self.kind} cannot run here: {reason}")

    @classmethod
    def runtime_version(cls) -> str | None:
        from importlib import metadata

        try:
            return metadata.version(cls.runtime_package)
        except metadata.PackageNotFoundError:
            return None

    @classmethod
    def availability(cls) -> str | None:
        import importlib.util

        module = cls.runtime_module()
        if importlib.util.find_spec(module) is None:
            return f"Python module {module!r} is not installed (pip install {cls.runtime_package})"
        return None

    @classmethod
    def runtime_module(cls) -> str:
        return cls.runtime_package.replace("-", "_")

    def _runtime_extra(self) -> dict[str, Any]:
        """Runtime settings worth keeping with the device (execution provider, target, ...)."""
        return {}

    def _describe(self):
        from edgeperf.datasets import DeviceSpec

        info = host_info()
        fields = info.spec_fields()
        fields["extra"] = {**fields["extra"], **self._runtime_extra()}
        return DeviceSpec(
            name=self._name or f"{self.kind}-local",  # the real name is set by device_spec()
            runtime=self.kind,
            runtime_version=self.runtime_version(),
            threads=self.threads,
            batch_size=self.batch_size,
            **fields,
        )

    def random_input(self, shape) -> "Any":
        """A float32 tensor of ``shape`` with fixed random values (numpy)."""
        import numpy as np

        return np.random.default_rng(INPUT_SEED).standard_normal(tuple(shape)).astype(np.float32)
