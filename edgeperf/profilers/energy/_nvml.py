"""NVIDIA GPUs through NVML (``nvidia-ml-py``, module ``pynvml``; imported lazily).

Volta and newer report a cumulative energy counter, ``nvmlDeviceGetTotalEnergyConsumption``
(mJ since driver load), which is used when supported; older GPUs fall back to sampling
``nvmlDeviceGetPowerUsage`` (mW) in a background thread. The module is a constructor seam
(``nvml=``) so tests can inject a fake one.
"""

from __future__ import annotations

from edgeperf.errors import EnergyMeterUnavailableError
from edgeperf.profilers.energy._base import DEFAULT_SAMPLE_RATE_HZ, EnergyReading, SamplingMeter

__all__ = ["NvmlMeter"]


class NvmlMeter(SamplingMeter):
    """GPU ``index``'s energy: NVML's energy counter if supported, else sampled power."""

    name = "nvml"

    def __init__(self, *, index: int = 0, nvml=None, sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ,
                 idle_power_mw: float = 0.0, use_counter: bool | None = None):
        super().__init__(sample_rate_hz=sample_rate_hz, idle_power_mw=idle_power_mw)
        self.index = int(index)
        self._nvml = nvml
        self._handle = None
        self.use_counter = use_counter  # None: decided on first use

    def _module(self):
        if self._nvml is None:
            try:
                import pynvml  # nvidia-ml-py
            except ImportError:
                raise EnergyMeterUnavailableError(
                    "NVML meter needs the `pynvml` module: `pip install nvidia-ml-py` (and an NVIDIA driver)"
                ) from None
            self._nvml = pynvml
        return self._nvml

    def _device(self):
        if self._handle is None:
            nv = self._module()
            try:
                nv.nvmlInit()
                self._handle = nv.nvmlDeviceGetHandleByIndex(self.index)
            except Exception as exc:  # NVMLError subclasses: no driver, no such GPU
                raise EnergyMeterUnavailableError(
                    f"NVML could not open GPU {self.index} ({exc}); expected an NVIDIA driver (libnvidia-ml.so) "
                    "and a GPU at that index (see `nvidia-smi -L`)"
                ) from None
            if self.use_counter is None:
                try:
                    nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                    self.use_counter = True
                except Exception:  # NVMLError_NotSupported before Volta
                    self.use_counter = False
        return self._handle

    def availability(self) -> str | None:
        try:
            self._device()
        except EnergyMeterUnavailableError as exc:
            return str(exc)
        return None

    def _read_power_mw(self) -> float:
        return float(self._nvml.nvmlDeviceGetPowerUsage(self._device()))

    def _read_counter_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._device()))

    def start(self) -> None:
        self.check()
        if not self.use_counter:
            return super().start()
        import time

        self._t0, self._e0 = time.perf_counter(), self._read_counter_mj()
        self._running = True

    def stop(self) -> EnergyReading:
        if not self.use_counter:
            reading = super().stop()
            return EnergyReading(**{**reading.to_dict(), "source": "nvml-power"})
        import time

        from edgeperf.errors import ProfilingError

        if not self._running:
            raise ProfilingError("nvml meter: stop() called without start()")
        energy = self._read_counter_mj() - self._e0
        duration = time.perf_counter() - self._t0
        self._running = False
        return EnergyReading(
            energy_mj=energy, duration_s=duration, mean_power_mw=energy / duration if duration > 0 else 0.0,
            idle_power_mw=self.idle_power_mw, sample_rate_hz=None, source="nvml-energy-counter", samples=2,
        )
