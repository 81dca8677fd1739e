"""The energy-meter contract: ``start()`` before the timed runs, ``stop()`` after, one reading.

Two families: *counter* meters read a cumulative energy counter at start and stop (RAPL, NVML
total energy); *sampling* meters read instantaneous power in a background thread at a fixed
rate and integrate it (trapezoids) over the interval (NVML power, Android fuel gauge, Jetson
INA3221). Either way the reading carries the idle power to subtract, measured with
:meth:`EnergyMeter.measure_idle` or given to the constructor.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import ClassVar

from edgeperf.errors import EnergyMeterUnavailableError, ProfilingError

__all__ = ["EnergyReading", "EnergyMeter", "CounterMeter", "SamplingMeter"]

_MS_PER_S = 1e3
#: Default sampling rate of power-sampling meters (Hz).
DEFAULT_SAMPLE_RATE_HZ = 20.0


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one start/stop interval. ``idle_power_mw`` is the baseline to subtract."""

    energy_mj: float
    duration_s: float
    mean_power_mw: float
    idle_power_mw: float = 0.0
    sample_rate_hz: float | None = None  # None for counter meters
    source: str = ""
    samples: int = 0

    def per_inference_mj(self, n_inferences: int) -> float:
        """(energy - idle power x duration) / n: the energy one inference added, in mJ."""
        if int(n_inferences) != n_inferences or n_inferences < 1:
            raise ProfilingError(f"expected a positive whole number of inferences, got {n_inferences!r}")
        # mW x s = mJ
        net = self.energy_mj - self.idle_power_mw * self.duration_s
        per = net / n_inferences
        if not (math.isfinite(per) and per > 0):
            raise ProfilingError(
                f"expected positive energy per inference from {self.source or 'the meter'}, got {per:.6g} mJ "
                f"(energy {self.energy_mj:.6g} mJ, idle {self.idle_power_mw:.6g} mW x {self.duration_s:.4g} s); "
                "the idle baseline is above the measured power or the interval was too short for the "
                "sensor: run more repeats, re-measure idle, or check the sensor updates"
            )
        return per

    def to_dict(self) -> dict:
        return asdict(self)


class EnergyMeter(abc.ABC):
    """Abstract energy meter. Subclasses set ``name`` and implement the family's hooks."""

    name: ClassVar[str] = ""

    def __init__(self, *, idle_power_mw: float = 0.0):
        if not (math.isfinite(idle_power_mw) and idle_power_mw >= 0):
            raise ProfilingError(f"expected idle_power_mw >= 0, got {idle_power_mw!r}")
        self.idle_power_mw = float(idle_power_mw)
        self._running = False

    @abc.abstractmethod
    def availability(self) -> str | None:
        """``None`` when the sensor is readable here, else a sentence naming what was looked for."""

    def check(self) -> None:
        """Raise :class:`EnergyMeterUnavailableError` when the sensor is absent."""
        why = self.availability()
        if why is not None:
            raise EnergyMeterUnavailableError(why)

    @abc.abstractmethod
    def start(self) -> None:
        """Begin an interval."""

    @abc.abstractmethod
    def stop(self) -> EnergyReading:
        """End the interval and return its reading."""

    def measure_idle(self, seconds: float) -> float:
        """Measure the mean power over ``seconds`` of doing nothing; keep it as the idle baseline."""
        if not seconds > 0:
            raise ProfilingError(f"expected a positive idle duration in seconds, got {seconds!r}")
        saved, self.idle_power_mw = self.idle_power_mw, 0.0
        try:
            self.start()
            time.sleep(seconds)
            reading = self.stop()
        except BaseException:
            self.idle_power_mw = saved
            raise
        self.idle_power_mw = reading.mean_power_mw
        return self.idle_power_mw

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} idle={self.idle_power_mw:g} mW>"


class CounterMeter(EnergyMeter):
    """A meter over a cumulative energy counter (mJ) that never decreases except by wrapping."""

    @abc.abstractmethod
    def _read_energy_mj(self) -> float:
        """Cumulative energy in mJ (already wrap-corrected by the subclass if needed)."""

    def start(self) -> None:
        self.check()
        self._t0 = time.perf_counter()
        self._e0 = self._read_energy_mj()
        self._running = True

    def stop(self) -> EnergyReading:
        if not self._running:
            raise ProfilingError(f"{self.name} meter: stop() called without start()")
        energy = self._read_energy_mj() - self._e0
        duration = time.perf_counter() - self._t0
        self._running = False
        return EnergyReading(
            energy_mj=energy,
            duration_s=duration,
            mean_power_mw=energy / duration if duration > 0 else 0.0,
            idle_power_mw=self.idle_power_mw,
            sample_rate_hz=None,
            source=self.name,
            samples=2,
        )


class SamplingMeter(EnergyMeter):
    """A meter that samples power (mW) in a background thread and integrates it."""

    def __init__(self, *, sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ, idle_power_mw: float = 0.0):
        super().__init__(idle_power_mw=idle_power_mw)
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
            raise ProfilingError(f"expected a positive sample rate in Hz, got {sample_rate_hz!r}")
        self.sample_rate_hz = float(sample_rate_hz)
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def _read_power_mw(self) -> float:
        """Instantaneous power in mW."""

    def _sample_loop(self) -> None:
        period = 1.0 / self.sample_rate_hz
        next_t = time.perf_counter() + period
        while not self._stop_event.wait(max(0.0, next_t - time.perf_counter())):
            self._take_sample()
            next_t += period

    def _take_sample(self) -> None:
        try:
            p = self._read_power_mw()
        except Exception as exc:  # keep the first error; stop() re-raises it
            self._error = self._error or exc
            self._stop_event.set()
            return
        self._samples.append((time.perf_counter(), p))

    def start(self) -> None:
        self.check()
        if self._running:
            raise ProfilingError(f"{self.name} meter: start() called twice")
        self._samples: list[tuple[float, float]] = []
        self._error: Exception | None = None
        self._stop_event = threading.Event()
        self._take_sample()
        if self._error is not None:
            raise self._error
        self._thread = threading.Thread(target=self._sample_loop, name=f"edgeperf-{self.name}", daemon=True)
        self._running = True
        self._thread.start()

    def stop(self) -> EnergyReading:
        if not self._running:
            raise ProfilingError(f"{self.name} meter: stop() called without start()")
        self._stop_event.set()
        self._thread.join()
        self._running = False
        if self._error is not None:
            raise ProfilingError(f"{self.name} meter: reading the sensor failed during the run: {self._error}") from self._error
        self._take_sample()
        s = self._samples
        duration = s[-1][0] - s[0][0]
        energy = sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(s, s[1:]))  # mW*s = mJ
        mean = energy / duration if duration > 0 else s[-1][1]
        return EnergyReading(
            energy_mj=energy,
            duration_s=duration,
            mean_power_mw=mean,
            idle_power_mw=self.idle_power_mw,
            sample_rate_hz=(len(s) - 1) / duration if duration > 0 else None,
            source=self.name,
            samples=len(s),
        )
