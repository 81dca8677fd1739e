"""Device farm on Dask (LocalCluster, no network) with a farm of fake phones speaking adb."""

from __future__ import annotations

import collections
import json

import pytest

pytest.importorskip("distributed")

from farm_helpers import SPACE, expected_ms, make_farm, overlaps, phone_options  # noqa: E402

from edgeperf import farm  # noqa: E402
from edgeperf.datasets import read  # noqa: E402
from edgeperf.errors import FarmError  # noqa: E402
from edgeperf.profilers import MeasurementProtocol, sample_archs  # noqa: E402

SERIALS = ["FARM0001", "FARM0002", "FARM0003"]
PROTOCOL = MeasurementProtocol(warmup=3, repeats=20, max_rounds=1)
N_ARCHS = 6


@pytest.fixture
def archs():
    return sample_archs(SPACE, N_ARCHS, seed=0)


@pytest.fixture
def phones(tmp_path, monkeypatch):
    return make_farm(tmp_path, monkeypatch, SERIALS)


@pytest.fixture
def options(tmp_path, archs):
    return phone_options(tmp_path, archs)


def _rows_per_device(out_dir) -> dict[str, collections.Counter]:
    counts = {}
    for path in sorted(out_dir.glob("*.csv")):
        frame = read(path).frame
        assert set(frame["device"]) == {path.stem}  # one file per device, nothing else in it
        counts[path.stem] = collections.Counter(zip(frame["arch"], frame["metric"]))
    return counts


def _assert_every_row_once(out_dir, archs, n_devices):
    counts = _rows_per_device(out_dir)
    assert len(counts) == n_devices
    for device, c in counts.items():
        assert set(c) == {(a, "latency_ms") for a in archs}, device
        assert max(c.values()) == 1, f"{device} has a row twice: {c.most_common(1)}"


def _assert_no_device_ran_two_at_once(phones):
    for serial in phones.serials:
        intervals = [(r["start"], r["end"]) for r in phones.runs(serial) if "end" in r]
        assert intervals, serial
        assert overlaps(intervals) == [], f"{serial} ran two benchmarks at once"


def test_embedded_cluster_profiles_every_phone_once(phones, options, archs, tmp_path):
    out = tmp_path / "farm"
    summary = farm.profile(SPACE, out=out, archs=archs, options=options, protocol=PROTOCOL, batch_archs=3,
                           progress=False)
    assert summary.complete, summary.report()
    assert summary.batches == len(SERIALS) * 2  # 6 archs in batches of 3
    _assert_every_row_once(out, archs, len(SERIALS))
    _assert_no_device_ran_two_at_once(phones)
    for serial in SERIALS:  # each phone's rows went to its own file, under a name with its serial
        name = f"google-pixel-6-tflite-cpu-b1-{serial.lower()}"
        table = read(out / f"{name}.csv")
        assert table.frame["value"].to_numpy() == pytest.approx(expected_ms(phones, serial), rel=1e-3)
        spec = table.device_spec(name)
        assert spec.extra["farm_resource"] == f"phone-{serial}" and spec.kind == "phone"
    # the phones worked at the same time (the farm is parallel), yet each one serially
    spans = [(min(r["start"] for r in phones.runs(s)), max(r["end"] for r in phones.runs(s))) for s in SERIALS]
    assert overlaps(spans), "expected the phones' runs to overlap in time"
    again = farm.profile(SPACE, out=out, archs=archs, options=options, protocol=PROTOCOL, progress=False)
    assert again.batches == 0 and all(s.skipped == N_ARCHS for s in again.devices.values())
    _assert_every_row_once(out, archs, len(SERIALS))


def test_plugin_discovers_phones_and_unplugged_phone_resumes(phones, options, archs, tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "farm"
    phones.configure("FARM0002", unplug_after_runs=4)
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.register_plugin(farm.FarmPlugin(options=options))  # discovers on the worker
        assert sorted(d.resource for d in farm.cluster_devices(client)) == [f"phone-{s}" for s in SERIALS]
        first = farm.profile(SPACE, out=out, archs=archs, client=client, protocol=PROTOCOL, batch_archs=3,
                             progress=False)
        unplugged = first.devices["google-pixel-6-tflite-cpu-b1-farm0002"]
        assert unplugged.stopped and "not found" in unplugged.stopped
        assert unplugged.measured == 4 and unplugged.rows_in_file == 4
        assert not first.complete and any(line.startswith("stopped: ") for line in first.report())
        others = [s for n, s in first.devices.items() if n != unplugged.device]
        assert all(s.complete and s.measured == N_ARCHS for s in others)
        phones.replug("FARM0002")
        second = farm.profile(SPACE, out=out, archs=archs, client=client, protocol=PROTOCOL, batch_archs=3,
                              progress=False)
    assert second.complete, second.report()
    resumed = second.devices[unplugged.device]
    assert resumed.skipped == 4 and resumed.measured == N_ARCHS - 4
    _assert_every_row_once(out, archs, len(SERIALS))
    _assert_no_device_ran_two_at_once(phones)


def test_per_device_archs_and_device_filter(phones, options, archs, tmp_path):
    out = tmp_path / "farm"
    plan = {"FARM0001": archs[:2], "phone-FARM0003": archs[2:5]}
    summary = farm.profile(SPACE, out=out, archs=plan, options=options, protocol=PROTOCOL, progress=False)
    got = {n: s.measured for n, s in summary.devices.items()}
    assert got == {"google-pixel-6-tflite-cpu-b1-farm0001": 2, "google-pixel-6-tflite-cpu-b1-farm0003": 3}
    with pytest.raises(FarmError, match="NOSUCHPHONE"):
        farm.profile(SPACE, out=out, archs=archs, devices=["NOSUCHPHONE"], options=options, progress=False)


def test_failing_arch_is_reported_and_the_rest_lands(phones, options, archs, tmp_path):
    mapping = json.loads((tmp_path / "models.json").read_text())
    missing = mapping.pop(archs[1])
    (tmp_path / "models.json").write_text(json.dumps({**mapping, archs[1]: missing + ".gone"}))
    summary = farm.profile(SPACE, out=tmp_path / "farm", archs=archs[:3], options=options, protocol=PROTOCOL,
                           devices=["FARM0001"], progress=False)
    (s,) = summary.devices.values()
    assert list(s.failed) == [archs[1]] and "not a file" in s.failed[archs[1]]
    assert s.measured == 2 and not summary.complete
    assert any(line.startswith(f"failed: {s.device}: {archs[1]}") for line in summary.report())


def test_no_device_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADB", str(tmp_path / "no-adb-here"))
    with pytest.raises(FarmError, match="no device on this machine"):
        farm.profile(SPACE, out=tmp_path / "farm", samples=2, adb=True, progress=False)


def test_device_names_and_resources():
    phone = farm.phone_device("192.168.1.7:5555", options={"runner": "/x/benchmark_model"}, host="h1")
    assert phone.resources == {"phone-192.168.1.7:5555": 1} and phone.name_suffix == "192.168.1.7:5555"
    changed = phone.with_options({"serial": "OTHER", "threads": "2", "provider": "not an android option"})
    assert changed.options == {"runner": "/x/benchmark_model", "serial": "192.168.1.7:5555", "threads": "2"}
    ort = farm.runtime_device("onnxruntime", options={"threads": "2"}, host="h1")
    # two local runtimes of one host share its cores: both also need cpu-h1
    assert ort.resources == {"onnxruntime-t2-h1": 1, "cpu-h1": 1}
    from edgeperf.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="no_such_option"):
        farm.runtime_device("onnxruntime", options={"no_such_option": 1})


def test_device_whose_worker_left_is_given_up_then_resumed(phones, options, archs, tmp_path):
    import threading

    from distributed import Client, LocalCluster

    out = tmp_path / "farm"
    devices = [farm.phone_device(s, options=options) for s in SERIALS]
    resources = {r: 1 for d in devices for r in d.resources}
    result = {}
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, resources=resources,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.register_plugin(farm.FarmPlugin(devices))
        run = threading.Thread(target=lambda: result.update(summary=farm.profile(
            SPACE, out=out, archs=archs, client=client, protocol=PROTOCOL, batch_archs=1,
            lost_device_timeout_s=1.0, progress=False)))
        run.start()
        for _ in range(600):  # bounded wait for the first measurements (not a timing)
            if phones.finished_runs() >= 2 or not run.is_alive():
                break
            run.join(timeout=0.2)
        cluster.scale(0)  # the only worker leaves: no one holds the phones any more
        run.join(timeout=180)
        assert not run.is_alive()
    summary = result["summary"]
    assert not summary.complete
    for s in summary.devices.values():
        assert s.stopped and "no worker in the cluster has held" in s.stopped and "re-run" in s.stopped
        assert s.rows_in_file == s.measured < N_ARCHS
    again = farm.profile(SPACE, out=out, archs=archs, options=options, protocol=PROTOCOL, progress=False)
    assert again.complete, again.report()
    _assert_every_row_once(out, archs, len(SERIALS))


def test_cli_embedded_run_and_one_line_errors(phones, options, archs, tmp_path, monkeypatch):
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from edgeperf.cli import main; main()", "farm", "profile"]
    opt_args = [a for k, v in options.items() for a in ("--option", f"{k}={v}")]
    archs_file = tmp_path / "archs.txt"
    archs_file.write_text("\n".join(archs[:2]) + "\n")
    out = tmp_path / "farm"
    done = subprocess.run(cli + ["--space", SPACE, "--archs", str(archs_file), "--out", str(out), "--device", "FARM0001",
                                 "--warmup", "3", "--repeats", "20", "--max-rounds", "1", "-q", *opt_args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "google-pixel-6-tflite-cpu-b1-farm0001: 2 measured" in done.stderr
    assert [p.name for p in out.glob("*.csv")] == ["google-pixel-6-tflite-cpu-b1-farm0001.csv"]
    for bad, message in ((["--samples", "2", "--archs", str(archs_file)], "exactly one of"),
                         (["--samples", "2", "--option", "no_such=1"], "no_such")):
        err = subprocess.run(cli + ["--space", SPACE, "--out", str(out), *bad], capture_output=True, text=True, timeout=300)
        assert err.returncode == 2 and message in err.stderr and "Traceback" not in err.stderr


def test_plugin_rediscovery_adds_a_phone_plugged_in_later(phones, options, monkeypatch):
    import time

    from distributed import Client, LocalCluster

    monkeypatch.setenv("FAKE_ADB_SERIALS", ",".join(SERIALS[:2]))  # the third phone is not attached yet
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.register_plugin(farm.FarmPlugin(options=options, rediscover_s=0.2))
        assert len(farm.cluster_devices(client)) == 2
        monkeypatch.setenv("FAKE_ADB_SERIALS", ",".join(SERIALS))  # plugged in
        for _ in range(300):  # bounded wait for the next discovery round (not a timing)
            found = sorted(d.resource for d in farm.cluster_devices(client))
            if len(found) == 3:
                break
            time.sleep(0.1)
        assert found == [f"phone-{s}" for s in SERIALS]
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert all(f"phone-{s}" in w["resources"] for w in info.values() for s in SERIALS)


def test_energy_rows_from_each_phones_own_battery_gauge(phones, options, archs, tmp_path):
    out = tmp_path / "farm"
    summary = farm.profile(SPACE, out=out, archs=archs[:2], options=options, protocol=PROTOCOL, devices=SERIALS[:2],
                           energy="android-battery", energy_options={"sample_rate_hz": 20}, progress=False)
    assert summary.complete, summary.report()
    for serial in SERIALS[:2]:
        frame = read(out / f"google-pixel-6-tflite-cpu-b1-{serial.lower()}.csv").frame
        assert sorted(collections.Counter(frame["metric"]).items()) == [("energy_mj", 2), ("latency_ms", 2)]
        assert (frame["value"] > 0).all()
        gauge_reads = [json.loads(line) for line in (phones.state(serial) / "log.jsonl").read_text().splitlines()]
        assert any("current_now" in e.get("shell", "") for e in gauge_reads)  # this phone's own gauge was read
    charging = phones.state(SERIALS[2]) / "fs/sys/class/power_supply/battery/status"
    charging.write_text("Charging\n")  # the meter refuses a charging phone: the device stops, clearly
    again = farm.profile(SPACE, out=out, archs=archs[:2], options=options, protocol=PROTOCOL, devices=[SERIALS[2]],
                         energy="android-battery", progress=False)
    (s,) = again.devices.values()
    assert s.stopped and "charging" in s.stopped and s.rows_in_file == 0
