"""Energy meters on fake sysfs trees, a fake NVML module and the fake adb phone."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from edgeperf.errors import EnergyMeterUnavailableError, ProfilingError, UnknownNameError
from edgeperf.profilers import energy
from edgeperf.profilers.energy import EnergyReading, JetsonMeter, NvmlMeter, RaplMeter

HERE = Path(__file__).resolve().parent
SYSFS = HERE / "data" / "sysfs"


# ---- reading arithmetic -----------------------------------------------------------------------
def test_per_inference_subtracts_idle():
    r = EnergyReading(energy_mj=500.0, duration_s=2.0, mean_power_mw=250.0, idle_power_mw=100.0, source="x")
    assert r.per_inference_mj(10) == pytest.approx((500.0 - 200.0) / 10)
    with pytest.raises(ProfilingError, match="positive whole number"):
        r.per_inference_mj(0)
    idle_above = EnergyReading(energy_mj=100.0, duration_s=2.0, mean_power_mw=50.0, idle_power_mw=80.0, source="x")
    with pytest.raises(ProfilingError, match="idle baseline"):
        idle_above.per_inference_mj(5)


def test_registry():
    assert energy.names() == ["android-battery", "jetson-ina3221", "nvml", "rapl"]
    assert isinstance(energy.get("rapl", root="/nonexistent"), RaplMeter)
    with pytest.raises(UnknownNameError, match="rapl"):
        energy.get("wattmeter")


# ---- RAPL -------------------------------------------------------------------------------------
def _zone(root: Path, zone: str, name: str, uj: int, max_uj: int) -> Path:
    d = root / "sys/class/powercap" / zone
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


@pytest.fixture
def rapl_root(tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000, 262_143_328_850)
    _zone(tmp_path, "intel-rapl:0:0", "core", 500_000, 262_143_328_850)
    _zone(tmp_path, "intel-rapl:0:1", "dram", 2_000_000, 65_712_999_613)
    return tmp_path


def _set(root: Path, zone: str, uj: int) -> None:
    """Replace the counter atomically, as sysfs reads never see a half-written value."""
    path = root / "sys/class/powercap" / zone / "energy_uj"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{uj}\n")
    os.replace(tmp, path)


def test_rapl_counts_package_and_dram_not_core(rapl_root):
    m = RaplMeter(root=rapl_root)
    assert m.availability() is None
    m.start()
    _set(rapl_root, "intel-rapl:0", 1_000_000 + 3_000_000)  # +3 J
    _set(rapl_root, "intel-rapl:0:0", 500_000 + 2_000_000)  # core: part of the package, not added
    _set(rapl_root, "intel-rapl:0:1", 2_000_000 + 500_000)  # +0.5 J
    r = m.stop()
    assert r.energy_mj == pytest.approx(3500.0)
    assert r.source == "rapl" and r.duration_s > 0 and r.sample_rate_hz is None


def test_rapl_wraparound(tmp_path):
    max_uj = 10_000_000
    _zone(tmp_path, "intel-rapl:0", "package-0", max_uj - 1_000_000, max_uj)
    m = RaplMeter(root=tmp_path, domains=["package"])
    m.start()
    _set(tmp_path, "intel-rapl:0", 2_000_000)  # wrapped: 1 J to the top, 2 J after
    assert m.stop().energy_mj == pytest.approx(3000.0)


def test_rapl_poller_catches_several_wraps(tmp_path):
    max_uj = 10_000_000
    _zone(tmp_path, "intel-rapl:0", "package-0", 0, max_uj)
    m = RaplMeter(root=tmp_path, domains=["package"], poll_interval_s=0.02)
    m.start()
    value = 0
    for _ in range(5):  # 5 x 6 J = 30 J, wrapping every 10 J; the poller sees each step
        value = (value + 6_000_000) % max_uj
        _set(tmp_path, "intel-rapl:0", value)
        time.sleep(0.15)
    assert m.stop().energy_mj == pytest.approx(30_000.0)


def test_rapl_absent_names_powercap(tmp_path):
    m = energy.get("rapl", root=tmp_path)
    assert "sys/class/powercap" in m.availability()
    with pytest.raises(EnergyMeterUnavailableError, match="powercap"):
        m.start()


# ---- Jetson INA3221 ---------------------------------------------------------------------------
@pytest.fixture(params=["jetson_iio", "jetson_hwmon"])
def jetson_root(request, tmp_path):
    root = tmp_path / request.param
    shutil.copytree(SYSFS / request.param, root)
    return root


def test_jetson_rails_both_layouts(jetson_root):
    m = JetsonMeter(root=jetson_root)
    assert set(m.discover_rails()) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}  # "Sum of ..." skipped
    assert list(m.selected_rails()) == ["VDD_IN"]  # the board input already includes the others
    m._rails_cache = m.selected_rails()
    assert m._read_power_mw() == pytest.approx(4520.0)
    both = JetsonMeter(root=jetson_root, rails=["VDD_CPU_GPU_CV", "VDD_SOC"])
    both._rails_cache = both.selected_rails()
    assert both._read_power_mw() == pytest.approx(1210.0 + 1330.0)
    with pytest.raises(ProfilingError, match="VDD_GPU"):
        JetsonMeter(root=jetson_root, rails=["VDD_GPU"]).selected_rails()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _power_file(root: Path) -> tuple[Path, float]:
    iio = list(root.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power0_input"))
    if iio:
        return iio[0], 1.0
    return next(root.glob("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/curr1_input")), 5000.0 / 1000.0  # mW per mA


def test_jetson_idle_then_load_integrates(jetson_root):
    path, mw_per_unit = _power_file(jetson_root)
    _atomic_write(path, str(int(1000 / mw_per_unit)))  # 1 W idle
    m = JetsonMeter(root=jetson_root, sample_rate_hz=100)
    idle = m.measure_idle(0.3)
    assert idle == pytest.approx(1000.0, rel=0.01)
    _atomic_write(path, str(int(3000 / mw_per_unit)))  # 3 W under load
    m.start()
    time.sleep(0.4)
    r = m.stop()
    assert r.mean_power_mw == pytest.approx(3000.0, rel=0.01)
    assert r.energy_mj == pytest.approx(3000.0 * r.duration_s, rel=0.01)
    assert r.idle_power_mw == pytest.approx(1000.0, rel=0.01)
    assert r.sample_rate_hz > 20 and r.samples > 10
    assert r.per_inference_mj(4) == pytest.approx(2000.0 * r.duration_s / 4, rel=0.02)


def test_jetson_power_change_mid_run(jetson_root):
    path, mw_per_unit = _power_file(jetson_root)
    _atomic_write(path, str(int(1000 / mw_per_unit)))
    m = JetsonMeter(root=jetson_root, sample_rate_hz=200)
    writer = threading.Timer(0.25, lambda: _atomic_write(path, str(int(5000 / mw_per_unit))))
    m.start()
    writer.start()
    time.sleep(0.5)
    r = m.stop()
    writer.join()
    assert 1500.0 < r.mean_power_mw < 4500.0  # half the time at 1 W, half at 5 W


def test_jetson_absent(tmp_path):
    m = energy.get("jetson-ina3221", root=tmp_path)
    assert "ina3221" in m.availability()
    with pytest.raises(EnergyMeterUnavailableError):
        m.start()


# ---- NVML -------------------------------------------------------------------------------------
class FakeNVML:
    """Mimics nvidia-ml-py's module functions used by NvmlMeter."""

    class NVMLError(Exception):
        pass

    def __init__(self, *, counter: bool = True, power_mw: int = 70_000, no_driver: bool = False):
        self.counter, self.power_mw, self.no_driver = counter, power_mw, no_driver
        self.energy_mj = 1_000_000
        self.calls = 0

    def nvmlInit(self):
        if self.no_driver:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", i)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter:
            raise self.NVMLError("Not Supported")
        self.calls += 1
        self.energy_mj += 250  # the GPU used 250 mJ since the last read
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.power_mw


def test_nvml_energy_counter():
    fake = FakeNVML(counter=True)
    m = NvmlMeter(nvml=fake)
    assert m.availability() is None and m.use_counter is True
    m.start()
    r = m.stop()
    assert r.energy_mj == pytest.approx(250.0) and r.source == "nvml-energy-counter"


def test_nvml_power_sampling_fallback():
    m = NvmlMeter(nvml=FakeNVML(counter=False, power_mw=70_000), sample_rate_hz=100)
    m.start()
    time.sleep(0.3)
    r = m.stop()
    assert m.use_counter is False and r.source == "nvml-power"
    assert r.mean_power_mw == pytest.approx(70_000.0)
    assert r.energy_mj == pytest.approx(70_000.0 * r.duration_s, rel=1e-6)


def test_nvml_absent():
    m = energy.get("nvml", nvml=FakeNVML(no_driver=True))
    assert "NVIDIA driver" in m.availability()
    with pytest.raises(EnergyMeterUnavailableError, match="nvidia-smi"):
        m.start()


# ---- Android fuel gauge over the fake adb ------------------------------------------------------
from test_adb import SERIAL, SPACE, _models, _runner, phone  # noqa: E402,F401  (fixture reuse)


def test_android_battery_meter_samples_over_adb(phone):
    m = energy.get("android-battery", serial=SERIAL, sample_rate_hz=20)
    assert m.availability() is None
    m.start()
    time.sleep(0.5)
    r = m.stop()
    expected_mw = 412000e-6 * 4012000e-6 * 1e3  # |-412 mA| x 4.012 V (Pixel: discharge is negative)
    assert r.mean_power_mw == pytest.approx(expected_mw)
    assert r.samples >= 2 and r.source == "android-battery"
    cats = [c for c in phone.shell_commands() if c.startswith("cat /sys/class/power_supply/battery/current_now")]
    assert len(cats) >= r.samples


def test_android_battery_sign_and_charging(phone):
    supply = phone.fs / "sys/class/power_supply/battery"
    only_positive = energy.get("android-battery", serial=SERIAL, current_sign=1)
    only_positive.start()
    r = only_positive.stop()
    assert r.mean_power_mw == 0.0  # every sample had the other sign: no discharge counted
    (supply / "status").write_text("Charging\n")
    m = energy.get("android-battery", serial=SERIAL)
    assert "charging" in m.availability()
    with pytest.raises(EnergyMeterUnavailableError, match="charging"):
        m.start()
    assert energy.get("android-battery", serial=SERIAL, allow_charging=True).availability() is None


def test_android_profiler_with_battery_meter_adds_energy_row(phone, tmp_path):
    from edgeperf import spaces
    from edgeperf.profilers import MeasurementProtocol
    from edgeperf.profilers.adb import AndroidProfiler

    arch = spaces.get(SPACE).sample(1, seed=3)[0]
    meter = energy.get("android-battery", serial=SERIAL, sample_rate_hz=20, idle_power_mw=500.0)
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"),
                           model_paths=_models(tmp_path, [arch], [50], ".tflite"), energy_meter=meter,
                           protocol=MeasurementProtocol(warmup=2, repeats=30, max_rounds=1))
    with prof:
        rows = prof.profile(SPACE, arch)
    assert [r.metric for r in rows] == ["latency_ms", "energy_mj"]
    expected_mw = 412000e-6 * 4012000e-6 * 1e3
    # the meter ran over the whole runner invocation; per inference = (P - idle) x duration / 30
    assert rows[1].value > 0
    assert rows[1].value < (expected_mw - 500.0) * 10.0 / 30  # well under 10 s of net power
