"""NVIDIA Jetson on-board INA3221 power monitors, sampled in a background thread.

Two sysfs layouts exist:

- L4T <= 32 (``ina3221x`` driver, IIO): ``/sys/bus/i2c/drivers/ina3221x/*/iio:device*/``
  with ``rail_name_N`` and ``in_power{N}_input`` in mW.
- L4T >= 34 (mainline ``ina3221`` driver, hwmon): ``/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/``
  with ``in{N}_label``, ``in{N}_input`` (mV) and ``curr{N}_input`` (mA); power = V x I.

Rails: the named ones, else the board's input rail when there is one (``VDD_IN``,
``POM_5V_IN``: it already includes every other rail), else all rails summed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeperf.errors import ProfilingError
from edgeperf.profilers.energy._base import DEFAULT_SAMPLE_RATE_HZ, SamplingMeter

__all__ = ["JetsonMeter"]

_IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
_HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
#: Rails that measure the whole board's input power (other rails are parts of it).
_INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_UW_PER_MW = 1e3  # mV x mA = uW


class JetsonMeter(SamplingMeter):
    """Board/rail power of a Jetson from its INA3221 monitors."""

    name = "jetson-ina3221"

    def __init__(self, *, root: str | Path = "/", rails: Sequence[str] | None = None,
                 sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ, idle_power_mw: float = 0.0):
        super().__init__(sample_rate_hz=sample_rate_hz, idle_power_mw=idle_power_mw)
        self.root = Path(root)
        self.rails = tuple(rails) if rails else None

    def discover_rails(self) -> dict[str, tuple]:
        """{rail name: ("mw", power file) | ("vi", voltage file, current file)} for both layouts."""
        found: dict[str, tuple] = {}
        for dev in sorted(self.root.glob(_IIO_GLOB)):
            for name_file in sorted(dev.glob("rail_name_*")):
                n = name_file.name.rsplit("_", 1)[-1]
                power = dev / f"in_power{n}_input"
                if power.is_file():
                    found[name_file.read_text().strip()] = ("mw", power)
        for dev in sorted(self.root.glob(_HWMON_GLOB)):
            for label in sorted(dev.glob("in*_label")):
                n = label.name[2:].split("_", 1)[0]
                volt, curr = dev / f"in{n}_input", dev / f"curr{n}_input"
                name = label.read_text().strip()
                if volt.is_file() and curr.is_file() and not name.lower().startswith("sum of"):
                    found[name] = ("vi", volt, curr)
        return found

    def selected_rails(self) -> dict[str, tuple]:
        rails = self.discover_rails()
        if self.rails:
            missing = [r for r in self.rails if r not in rails]
            if missing:
                raise ProfilingError(f"expected Jetson rails {missing}, found only {sorted(rails)}")
            return {r: rails[r] for r in self.rails}
        for r in _INPUT_RAILS:
            if r in rails:
                return {r: rails[r]}
        return rails

    def availability(self) -> str | None:
        if not self.discover_rails():
            return (f"no INA3221 power monitor: looked for {self.root / _IIO_GLOB}/in_power*_input and "
                    f"{self.root / _HWMON_GLOB}/in*_input + curr*_input (a Jetson board exposes these)")
        return None

    def _read_power_mw(self) -> float:
        total = 0.0
        for spec in self._rails_cache.values():
            if spec[0] == "mw":
                total += float(spec[1].read_text())
            else:
                total += float(spec[1].read_text()) * float(spec[2].read_text()) / _UW_PER_MW
        return total

    def start(self) -> None:
        self.check()
        self._rails_cache = self.selected_rails()
        super().start()
