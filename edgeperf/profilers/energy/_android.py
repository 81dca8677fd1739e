"""Android fuel gauge over adb: ``/sys/class/power_supply/battery/{current_now,voltage_now}``.

Sampled in a background thread (one ``adb shell cat`` per sample, so keep the rate modest:
each call costs ~10-30 ms on a phone) while the benchmark runs. Power = |I| x V.

Sign and unit conventions differ per vendor: the kernel's power_supply ABI says ``current_now``
is in uA, but its sign is not fixed (Pixels report discharge as negative, many Qualcomm
kernels as positive) and a few vendors (older Samsung) report mA. We take the magnitude
(``current_sign="auto"``; or pass +1/-1 to keep only samples of one sign as discharge) and
``current_unit`` is ``"uA"`` (default) or ``"mA"``. While the phone charges over USB the gauge
sees charger current minus load, not the load: measure over wireless adb (``adb tcpip``) or with
charging disabled; :meth:`availability` reports a charging battery.
"""

from __future__ import annotations

from edgeperf.errors import ProfilingError
from edgeperf.profilers.energy._base import SamplingMeter

__all__ = ["AndroidBatteryMeter"]

#: Samples per second by default: adb round trips cap this at a few tens per second.
DEFAULT_ANDROID_RATE_HZ = 10.0
_UNIT_TO_A = {"uA": 1e-6, "mA": 1e-3}
_V_PER_UV = 1e-6
_MW_PER_W = 1e3


class AndroidBatteryMeter(SamplingMeter):
    """Battery discharge power of an Android phone, sampled over adb."""

    name = "android-battery"

    def __init__(self, *, client=None, serial: str | None = None, adb_path: str | None = None,
                 supply: str = "/sys/class/power_supply/battery", current_unit: str = "uA",
                 current_sign: str | int = "auto", allow_charging: bool = False,
                 sample_rate_hz: float = DEFAULT_ANDROID_RATE_HZ, idle_power_mw: float = 0.0):
        super().__init__(sample_rate_hz=sample_rate_hz, idle_power_mw=idle_power_mw)
        if client is None:
            from edgeperf.profilers.adb._client import AdbClient

            client = AdbClient(serial, adb_path=adb_path)
        self.client = client
        self.supply = supply.rstrip("/")
        if current_unit not in _UNIT_TO_A:
            raise ProfilingError(f"expected current_unit in {sorted(_UNIT_TO_A)}, got {current_unit!r}")
        if current_sign not in ("auto", 1, -1):
            raise ProfilingError(f"expected current_sign 'auto', 1 or -1, got {current_sign!r}")
        self.current_unit = current_unit
        self.current_sign = current_sign
        self.allow_charging = allow_charging

    def availability(self) -> str | None:
        try:
            out = self.client.run(["shell", f"cat {self.supply}/current_now {self.supply}/voltage_now {self.supply}/status"],
                                  check=False)
        except Exception as exc:  # no adb, no device
            return f"no Android fuel gauge reachable over adb: {exc}"
        lines = out.stdout.split()
        if out.returncode != 0 or len(lines) < 2:
            return (f"no Android fuel gauge: expected {self.supply}/current_now and voltage_now on the phone, "
                    f"adb said: {(out.stdout + out.stderr).strip()[:300]}")
        status = lines[2] if len(lines) > 2 else ""
        if status == "Charging" and not self.allow_charging:
            return ("the battery is charging, so the fuel gauge does not see the load: use wireless adb or "
                    "disable charging, or pass allow_charging=True to measure anyway")
        return None

    def _read_power_mw(self) -> float:
        text = self.client.shell(f"cat {self.supply}/current_now {self.supply}/voltage_now")
        try:
            current_raw, voltage_raw = (float(x) for x in text.split()[:2])
        except ValueError:
            raise ProfilingError(f"expected two numbers from {self.supply}/current_now and voltage_now, got {text!r}") from None
        if self.current_sign != "auto" and current_raw * self.current_sign < 0:
            current_raw = 0.0  # the battery was charging at this sample: no discharge
        amps = abs(current_raw) * _UNIT_TO_A[self.current_unit]
        return amps * voltage_raw * _V_PER_UV * _MW_PER_W
