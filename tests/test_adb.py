"""Android profiling over adb, against tests/fake_adb/adb (a fake phone speaking adb's CLI)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from edgeperf.errors import DeviceUnavailableError, ProfilingError
from edgeperf.profilers import MeasurementProtocol
from edgeperf.profilers.adb import REMOTE_DIR, AdbClient, AndroidProfiler
from edgeperf.profilers.adb._parsers import (
    parse_devices,
    parse_getprop,
    parse_ort_perf_test,
    parse_tflite_benchmark,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "adb"
FAKE_ADB_DIR = HERE / "fake_adb"
SERIAL = "FA6AB0301234"
SPACE = "nasbench201"
# The fake's latency model (its defaults): 2000 us + 40 us per KB of model file.
BASE_MS, MS_PER_KB = 2.0, 0.040
PROTOCOL = MeasurementProtocol(warmup=3, repeats=20, max_rounds=1)


class FakePhone:
    def __init__(self, state: Path):
        self.state = state
        self.fs = state / "fs"

    def log(self) -> list[dict]:
        path = self.state / "log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def shell_commands(self) -> list[str]:
        return [e["shell"] for e in self.log() if "shell" in e]

    def remote_files(self) -> list[str]:
        root = self.fs / REMOTE_DIR.lstrip("/")
        return sorted(p.name for p in root.iterdir()) if root.exists() else []

    def replug(self, monkeypatch) -> None:
        monkeypatch.delenv("FAKE_ADB_UNPLUG_AFTER", raising=False)
        (self.state / "unplugged").unlink(missing_ok=True)


@pytest.fixture
def phone(tmp_path, monkeypatch) -> FakePhone:
    state = tmp_path / "phone"
    state.mkdir()
    shutil.copytree(DATA / "fs", state / "fs")
    fake = FAKE_ADB_DIR / "adb"
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{FAKE_ADB_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    monkeypatch.setenv("FAKE_ADB_SERIAL", SERIAL)
    monkeypatch.delenv("ADB", raising=False)
    for var in ("FAKE_ADB_UNPLUG_AFTER", "FAKE_ADB_MALFORMED", "FAKE_ADB_NO_SU"):
        monkeypatch.delenv(var, raising=False)
    return FakePhone(state)


def _runner(tmp_path: Path, name: str) -> Path:
    """A runner file as a user downloads it: not executable until edgeperf chmods it on the phone."""
    path = tmp_path / name
    path.write_bytes(b"\x7fELF fake runner")
    path.chmod(0o644)
    return path


def _models(tmp_path: Path, archs, sizes_kb, suffix: str) -> dict[str, Path]:
    out = {}
    for i, (arch, kb) in enumerate(zip(archs, sizes_kb)):
        p = tmp_path / f"m{i}{suffix}"
        p.write_bytes(b"\0" * int(kb * 1024))
        out[arch] = p
    return out


@pytest.fixture
def archs():
    from edgeperf import spaces

    return spaces.get(SPACE).sample(3, seed=1)


# ---- parsers on recorded outputs --------------------------------------------------------------
def test_parse_tflite_recorded_outputs():
    s = parse_tflite_benchmark((DATA / "benchmark_model_stdout.txt").read_text())
    assert s.runs == 50  # the timed line, not the count=10 warm-up line
    assert s.mean_ms == pytest.approx(9.05764) and s.median_ms == pytest.approx(9.05764)
    assert s.min_ms == pytest.approx(8.855) and s.std_ms == pytest.approx(0.152)
    assert s.min_ms <= s.p10_ms <= s.median_ms <= s.p90_ms
    logcat = parse_tflite_benchmark((DATA / "benchmark_model_logcat_median.txt").read_text())
    assert logcat.runs == 25 and logcat.median_ms == pytest.approx(141.253) and logcat.mean_ms == pytest.approx(145.528)
    sci = parse_tflite_benchmark((DATA / "benchmark_model_scientific.txt").read_text())
    assert sci.mean_ms == pytest.approx(2950.34) and sci.runs == 50
    old = parse_tflite_benchmark((DATA / "benchmark_model_pre_tf115.txt").read_text())
    assert old.runs == 50 and old.mean_ms == pytest.approx(20.8416) and old.min_ms == pytest.approx(20.377)


def test_parse_ort_recorded_outputs():
    stdout = (DATA / "onnxruntime_perf_test_stdout.txt").read_text()
    summary = parse_ort_perf_test(stdout)
    assert summary.runs == 60 and summary.median_ms == pytest.approx(10.9212) and summary.mean_ms == pytest.approx(11.0387)
    assert summary.p90_ms == pytest.approx(11.4705) and summary.min_ms == pytest.approx(10.4561)
    per_run = parse_ort_perf_test(stdout, (DATA / "onnxruntime_perf_test_result.txt").read_text(), skip_first=2)
    assert per_run.runs + per_run.rejected == 10  # 12 runs in the file, 2 dropped as warm-up
    assert per_run.median_ms == pytest.approx(10.9212, rel=0.01)


@pytest.mark.parametrize("text", ["", "INFO: Loaded model x\nERROR: Failed to allocate tensors!\n",
                                  "count=50 first=1 curr=1 min=1 max=1 avg=1 std=0\n"])
def test_parse_tflite_garbage_raises_with_raw_output(text):
    with pytest.raises(ProfilingError) as err:
        parse_tflite_benchmark(text)
    assert err.value.raw_output == text


def test_parse_ort_zero_latency_is_an_error_not_a_number():
    text = "Total inference requests: 10\nAverage inference time cost: 0 ms\n"
    with pytest.raises(ProfilingError, match="positive"):
        parse_ort_perf_test(text)


def test_parse_getprop_and_devices():
    props = parse_getprop((DATA / "getprop.txt").read_text())
    assert props["ro.product.model"] == "Pixel 6" and props["ro.board.platform"] == "gs101"
    devs = parse_devices("List of devices attached\nABC device usb:1 model:Pixel_6 device:oriole\nXYZ offline\n\n")
    assert devs == [{"serial": "ABC", "state": "device", "model": "Pixel_6", "usb": "1", "device": "oriole"},
                    {"serial": "XYZ", "state": "offline", "model": None}]


# ---- client and discovery ---------------------------------------------------------------------
def test_discover_and_client_errors(phone):
    found = AndroidProfiler.discover()
    assert found == [{"serial": SERIAL, "state": "device", "model": "Pixel_6", "usb": "1-1", "product": "oriole",
                      "device": "oriole", "transport_id": "1"}]
    assert AdbClient(SERIAL).getprop("ro.product.model") == "Pixel 6"
    with pytest.raises(DeviceUnavailableError, match="not there") as err:
        AdbClient("NOSUCHPHONE").shell(["true"])
    assert "device 'NOSUCHPHONE' not found" in err.value.raw_output
    with pytest.raises(ProfilingError, match="exit status 127"):
        AdbClient(SERIAL).shell(["no_such_tool"])


def test_missing_adb_binary_is_a_clear_error(phone, monkeypatch):
    monkeypatch.setenv("ADB", "/nonexistent/adb")
    with pytest.raises(DeviceUnavailableError, match="platform-tools"):
        AdbClient(SERIAL).shell(["true"])
    assert "ADB" in AndroidProfiler.availability()


def test_adb_timeout_is_profiling_error(tmp_path, monkeypatch):
    slow = tmp_path / "adb"
    slow.write_text("#!/bin/sh\necho started\nsleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setenv("ADB", str(slow))
    with pytest.raises(ProfilingError, match="did not finish within 0.5 s"):
        AdbClient("X", timeout_s=0.5).shell(["true"])


# ---- descriptor -------------------------------------------------------------------------------
def test_descriptor_harvested_from_the_phone(phone, tmp_path):
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), threads=4)
    spec = prof.describe()
    assert spec.kind == "phone" and spec.soc == "GS101" and spec.os == "Android 14"
    assert spec.cpu_cores == 8
    assert spec.cpu_max_freq_mhz == (1803.0,) * 4 + (2253.0,) * 2 + (2802.0,) * 2
    assert spec.memory_mb == pytest.approx(7824372 / 1024)
    assert spec.extra["abi"] == "arm64-v8a" and spec.extra["board_platform"] == "gs101"
    assert spec.extra["battery_level"] == "81" and spec.runtime == "benchmark_model"
    assert prof.device_name == "google-pixel-6-tflite-cpu-t4-b1"
    assert not any("su" in c.split()[:1] for c in phone.shell_commands())  # no root without pin_frequency


# ---- measuring --------------------------------------------------------------------------------
def test_tflite_push_run_parse_cleanup(phone, tmp_path, archs):
    sizes = [20, 60, 120]
    models = _models(tmp_path, archs, sizes, ".tflite")
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), threads=2,
                           cpu_mask="f0", delegate="xnnpack", model_paths=models, protocol=PROTOCOL)
    with prof:
        rows = [prof.profile(SPACE, a)[0] for a in archs]
        assert phone.remote_files() == ["benchmark_model"]  # models removed after each arch
    for row, kb in zip(rows, sizes):
        assert row.metric == "latency_ms" and row.runs == PROTOCOL.repeats
        assert row.value == pytest.approx(BASE_MS + MS_PER_KB * kb, rel=1e-4)
    runs = [c for c in phone.shell_commands() if "benchmark_model --graph" in c]
    assert len(runs) == 3
    assert runs[0].startswith(f"taskset f0 {REMOTE_DIR}/benchmark_model")
    for flag in ("--num_threads=2", "--use_xnnpack=true", "--num_runs=20", "--warmup_runs=3"):
        assert flag in runs[0]
    assert f"chmod 755 {REMOTE_DIR}/benchmark_model" in phone.shell_commands()
    assert phone.remote_files() == [] and not (phone.fs / REMOTE_DIR.lstrip("/")).exists()


def test_ort_runner_with_real_onnx_export(phone, tmp_path, archs):
    from edgeperf import spaces

    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "onnxruntime_perf_test"), threads=1,
                           protocol=PROTOCOL)
    with prof:
        stats, energy = prof.measure(spaces.get(SPACE), archs[0])
    assert energy is None
    pushed = [e for e in phone.log() if "pushed" in e and e["pushed"].endswith(".onnx")]
    assert len(pushed) == 1 and pushed[0]["bytes"] > 1000  # a real exported model went to the phone
    run = next(c for c in phone.shell_commands() if "onnxruntime_perf_test -m times" in c)
    assert "-r 23" in run and "-e cpu" in run and "-x 1" in run and " -I " in run
    # per-run times come from the result file with the 3 warm-up runs dropped
    assert stats.runs + stats.rejected == PROTOCOL.repeats
    expected_ms = BASE_MS + MS_PER_KB * pushed[0]["bytes"] / 1024
    assert stats.median_ms == pytest.approx(expected_ms, rel=0.03)
    assert phone.remote_files() == []


def test_malformed_output_raises_with_raw_output_and_cleans_up(phone, tmp_path, archs, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_MALFORMED", "1")
    models = _models(tmp_path, archs[:1], [10], ".tflite")
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), model_paths=models,
                           protocol=PROTOCOL)
    with prof, pytest.raises(ProfilingError, match="could not parse TFLite") as err:
        prof.profile(SPACE, archs[0])
    assert "Initialized TensorFlow Lite runtime" in err.value.raw_output
    assert phone.remote_files() == []


def test_unplugged_mid_run_keeps_rows_and_resumes(phone, tmp_path, archs, monkeypatch):
    from edgeperf.datasets import read
    from edgeperf.profilers._runner import profile_archs

    models = _models(tmp_path, archs, [20, 60, 120], ".tflite")
    out = tmp_path / "phone.csv"
    # 5 shell commands to describe, 4 for the first arch (mkdir, chmod, run, rm), 2 for the next:
    # the phone goes away during the third arch.
    monkeypatch.setenv("FAKE_ADB_UNPLUG_AFTER", "11")

    def make():
        return AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), model_paths=models,
                               protocol=PROTOCOL)

    with make() as prof:
        summary = profile_archs(prof, SPACE, archs, out, progress=False)
    assert summary.measured == 2 and summary.stopped is not None
    assert f"device '{SERIAL}' not found" in summary.stopped and "reconnect" in summary.stopped
    assert len(read(out)) == 2
    phone.replug(monkeypatch)
    with make() as prof:
        resumed = profile_archs(prof, SPACE, archs, out, progress=False)
    assert resumed.skipped == 2 and resumed.measured == 1 and resumed.complete
    table = read(out)
    assert len(table) == 3 and set(table.frame["arch"]) == set(archs)


def test_pin_frequency_uses_su_and_restores(phone, tmp_path, archs):
    gov = phone.fs / "sys/devices/system/cpu/cpu7/cpufreq/scaling_governor"
    models = _models(tmp_path, archs[:1], [10], ".tflite")
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), model_paths=models,
                           pin_frequency="true", protocol=PROTOCOL)
    with prof:
        prof.profile(SPACE, archs[0])
        assert gov.read_text().strip() == "performance"
    assert gov.read_text().strip() == "schedutil"
    su = [c for c in phone.shell_commands() if c.startswith("su -c")]
    assert len(su) == 16  # 8 cores set, 8 restored


def test_pin_frequency_without_root_is_clear(phone, tmp_path, archs, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_NO_SU", "1")
    models = _models(tmp_path, archs[:1], [10], ".tflite")
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), model_paths=models,
                           pin_frequency=True, protocol=PROTOCOL)
    with prof, pytest.raises(ProfilingError, match="needs root"):
        prof.profile(SPACE, archs[0])
    assert phone.remote_files() == []


def test_bad_options_are_rejected(tmp_path):
    with pytest.raises(ProfilingError, match="tool"):
        AndroidProfiler(runner=tmp_path / "mystery_binary")
    with pytest.raises(ProfilingError, match="delegate"):
        AndroidProfiler(runner=tmp_path / "onnxruntime_perf_test", delegate="gpu")
    with pytest.raises(ProfilingError, match="hex"):
        AndroidProfiler(runner=tmp_path / "benchmark_model", cpu_mask="big")


def test_tflite_without_model_or_converter_says_what_to_do(phone, tmp_path, archs):
    prof = AndroidProfiler(serial=SERIAL, runner=_runner(tmp_path, "benchmark_model"), protocol=PROTOCOL)

    class NoExport:  # the error must come before any export work
        name = SPACE

        def export_onnx(self, arch, path, batch_size=1):
            Path(path).write_bytes(b"onnx")
            return Path(path)

    with prof, pytest.raises(ProfilingError, match="model_paths"):
        prof._local_model(NoExport(), archs[0], tmp_path)


@pytest.mark.phone
def test_real_phone_descriptor_and_one_run(tmp_path):
    """Needs EDGEPERF_REAL_PHONE=1, a phone on adb and EDGEPERF_RUNNER=/path/to/benchmark_model or
    onnxruntime_perf_test built for it (see edgeperf/profilers/adb/RUNNERS.md)."""
    from edgeperf import spaces

    devices = [d for d in AndroidProfiler.discover() if d["state"] == "device"]
    assert devices, "no phone in `adb devices -l`"
    runner = os.environ.get("EDGEPERF_RUNNER")
    if not runner:
        pytest.skip("set EDGEPERF_RUNNER to the runner binary")
    prof = AndroidProfiler(serial=devices[0]["serial"], runner=runner, threads=1,
                           protocol=MeasurementProtocol(warmup=2, repeats=10, max_rounds=1))
    with prof:
        spec = prof.describe()
        assert spec.cpu_cores and spec.memory_mb
        if prof.tool == "ort":
            stats, _ = prof.measure(spaces.get(SPACE), spaces.get(SPACE).sample(1, seed=0)[0])
            assert stats.median_ms > 0
