"""Intel/AMD RAPL through the Linux powercap sysfs (``/sys/class/powercap/intel-rapl:*``).

Each zone has a cumulative ``energy_uj`` counter that wraps at ``max_energy_range_uj``.
Counters are read at start and stop and, in between, every ``poll_interval_s`` by a
background thread, so intervals longer than one wrap period (minutes on a busy package)
are still counted right. Domains: ``package`` (top-level zones named ``package-N``) and
``dram`` (sub-zones named ``dram``); core/uncore are parts of the package, never added.
Since 2020 kernels make ``energy_uj`` root-readable only (CVE-2020-8694).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

from edgeperf.errors import ProfilingError
from edgeperf.profilers.energy._base import CounterMeter, EnergyReading

__all__ = ["RaplMeter"]

_POWERCAP = "sys/class/powercap"
_MJ_PER_UJ = 1e-3
#: Seconds between counter polls; RAPL counters wrap after ~60 s at 250 W+ on 32-bit ranges.
DEFAULT_POLL_INTERVAL_S = 1.0
_DOMAINS = ("package", "dram")


class RaplMeter(CounterMeter):
    """Energy of the CPU package(s) (+ DRAM) from powercap RAPL counters."""

    name = "rapl"

    def __init__(self, *, root: str | Path = "/", domains: Sequence[str] = _DOMAINS,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S, idle_power_mw: float = 0.0):
        super().__init__(idle_power_mw=idle_power_mw)
        self.root = Path(root)
        self.domains = tuple(domains)
        unknown = set(self.domains) - set(_DOMAINS)
        if unknown:
            raise ProfilingError(f"expected RAPL domains among {_DOMAINS}, got {sorted(unknown)}")
        self.poll_interval_s = float(poll_interval_s)
        self._lock = threading.Lock()

    @property
    def powercap_dir(self) -> Path:
        return self.root / _POWERCAP

    def zones(self) -> dict[str, Path]:
        """{zone label: zone dir} of the selected domains, e.g. ``{"package-0": .../intel-rapl:0}``."""
        found = {}
        for zone in sorted(self.powercap_dir.glob("intel-rapl:*")):
            try:
                label = (zone / "name").read_text().strip()
            except OSError:
                continue
            top = zone.name.count(":") == 1
            if ("package" in self.domains and top and label.startswith("package")) or (
                "dram" in self.domains and label == "dram"
            ):
                found[f"{label}@{zone.name}"] = zone
        return found

    def availability(self) -> str | None:
        if not self.powercap_dir.is_dir():
            return (f"no RAPL: {self.powercap_dir} does not exist (needs an Intel/AMD CPU, Linux with the "
                    "intel_rapl_common module, and no VM that hides it)")
        zones = self.zones()
        if not zones:
            return f"no RAPL zone of domains {self.domains} under {self.powercap_dir}/intel-rapl:*"
        for zone in zones.values():
            try:
                int((zone / "energy_uj").read_text())
            except PermissionError:
                return (f"RAPL present but {zone / 'energy_uj'} is not readable by this user (root-only since "
                        "CVE-2020-8694); run as root or `chmod o+r` it")
            except (OSError, ValueError) as exc:
                return f"RAPL zone {zone} has no readable energy_uj counter: {exc}"
        return None

    def _read_counters(self) -> dict[str, tuple[int, int]]:
        out = {}
        for label, zone in self.zones().items():
            out[label] = (int((zone / "energy_uj").read_text()), int((zone / "max_energy_range_uj").read_text()))
        return out

    def _poll(self) -> None:
        """Fold the counters' progress since the last poll into the running total."""
        with self._lock:
            now = self._read_counters()
            for label, (value, max_range) in now.items():
                last = self._last.get(label, (value, max_range))[0]
                delta = value - last if value >= last else value + max_range - last  # wrapped
                self._total_uj += delta
            self._last = now

    def _read_energy_mj(self) -> float:
        self._poll()
        return self._total_uj * _MJ_PER_UJ

    def _poll_loop(self) -> None:
        while not self._stop_poll.wait(self.poll_interval_s):
            try:
                self._poll()
            except (OSError, ValueError) as exc:  # kept for stop(): a dead poller must not go unnoticed
                self._poll_error = exc
                return

    def start(self) -> None:
        self.check()
        self._total_uj = 0
        self._last = self._read_counters()
        self._stop_poll = threading.Event()
        self._poll_error = None
        super().start()
        self._poller = threading.Thread(target=self._poll_loop, name="edgeperf-rapl", daemon=True)
        self._poller.start()

    def stop(self) -> EnergyReading:
        if self._running:
            self._stop_poll.set()
            self._poller.join()
            if self._poll_error is not None:
                self._running = False
                raise ProfilingError(f"rapl meter: reading the counters failed during the run: {self._poll_error}")
        return super().stop()
