"""The farm on real worker processes: a worker killed mid-run, and a separately started
``dask scheduler`` + ``edgeperf farm worker`` + plain ``dask worker`` on loopback."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from farm_helpers import SPACE, make_farm, overlaps, phone_options  # noqa: E402

from edgeperf import farm  # noqa: E402
from edgeperf.datasets import read  # noqa: E402
from edgeperf.profilers import MeasurementProtocol, sample_archs  # noqa: E402

SERIALS = ["FARM0001", "FARM0002", "FARM0003"]
PROTOCOL = MeasurementProtocol(warmup=3, repeats=20, max_rounds=1)
#: Upper bounds of the event waits below (never a timing the test asserts on).
WAIT_S = 180.0
POLL_S = 0.2


def _wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(POLL_S)
    raise AssertionError(f"gave up waiting for {what} after {WAIT_S:.0f} s")


def _assert_every_row_once(out_dir: Path, archs, n_devices: int) -> None:
    files = sorted(out_dir.glob("*.csv"))
    assert len(files) == n_devices
    for path in files:
        counts = collections.Counter(read(path).frame["arch"])
        assert set(counts) == set(archs) and max(counts.values()) == 1, (path.name, counts.most_common(2))


@pytest.mark.slow
def test_worker_process_killed_mid_run_loses_only_its_batch(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    phones = make_farm(tmp_path, monkeypatch, SERIALS)
    archs = sample_archs(SPACE, 6, seed=0)
    options = phone_options(tmp_path, archs)
    devices = [farm.phone_device(s, options=options) for s in SERIALS]
    resources = {r: 1 for d in devices for r in d.resources}
    out = tmp_path / "farm"
    result = {}
    with LocalCluster(n_workers=1, threads_per_worker=len(SERIALS), processes=True, host="127.0.0.1",
                      resources=resources, dashboard_address=None) as cluster, Client(cluster) as client:
        client.register_plugin(farm.FarmPlugin(devices))
        run = threading.Thread(target=lambda: result.update(summary=farm.profile(
            SPACE, out=out, archs=archs, client=client, protocol=PROTOCOL, batch_archs=2, progress=False)))
        run.start()
        _wait_for(lambda: phones.finished_runs() >= 3, "the first measurements")
        (pid,) = client.run(os.getpid).values()
        os.kill(pid, signal.SIGKILL)  # the nanny restarts the worker; Dask re-runs its in-flight batches
        run.join(timeout=WAIT_S)
        assert not run.is_alive()
    summary = result["summary"]
    assert summary.complete, summary.report()
    _assert_every_row_once(out, archs, len(SERIALS))
    assert summary.reruns, "expected the killed worker's batches to be reported as re-run"
    assert all("ran 2 times" in line for line in summary.reruns)
    for serial in SERIALS:  # the hung-up run of the dead worker never overlaps the re-run
        intervals = [(r["start"], r["end"]) for r in phones.runs(serial) if "end" in r]
        assert overlaps(intervals) == []


def _popen(argv, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy(),
                            start_new_session=True)


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=30)


@pytest.mark.slow
def test_separate_scheduler_and_workers_on_loopback(tmp_path, monkeypatch):
    dask_cli = Path(sys.executable).parent / "dask"
    if not dask_cli.exists():
        pytest.skip("the `dask` command is not installed next to this Python")
    phones = make_farm(tmp_path, monkeypatch, SERIALS)
    archs = sample_archs(SPACE, 4, seed=0)
    options = phone_options(tmp_path, archs)
    opt_args = [a for k, v in options.items() for a in ("--option", f"{k}={v}")]
    edgeperf_cli = [sys.executable, "-c", "from edgeperf.cli import main; main()"]
    sched_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(_popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log"))
        address = _wait_for(lambda: sched_file.exists() and json.loads(sched_file.read_text() or "{}").get("address"),
                            "the scheduler's address")
        assert address.startswith("tcp://127.0.0.1:")
        # two phones served by edgeperf's worker, the third by a plain dask worker with a resource
        procs.append(_popen(edgeperf_cli + ["farm", "worker", address, "--host", "127.0.0.1", "--serial", "FARM0001",
                                            "--serial", "FARM0002", *opt_args], tmp_path / "worker1.log"))
        procs.append(_popen([str(dask_cli), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                             "--no-dashboard", "--resources", "phone-FARM0003=1"], tmp_path / "worker2.log"))

        def ready():
            from distributed import Client

            with Client(address, timeout=10) as c:
                return len(farm.cluster_devices(c)) == len(SERIALS)

        _wait_for(ready, "both workers and their three phones")
        out = tmp_path / "farm"
        cmd = edgeperf_cli + ["farm", "profile", "--scheduler", address, "--space", SPACE, "--samples", "4",
                              "--out", str(out), "--warmup", "3", "--repeats", "20", "--max-rounds", "1", "--batch", "2",
                              "-q", "--json", str(tmp_path / "summary.json"), *opt_args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S)
        assert done.returncode == 0, done.stderr
        _assert_every_row_once(out, archs, len(SERIALS))
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["complete"] and summary["batches"] == len(SERIALS) * 2
        assert all(p.poll() is None for p in procs), "a worker or the scheduler died"
        listed = subprocess.run(edgeperf_cli + ["farm", "devices", "--scheduler", address], capture_output=True,
                                text=True, timeout=WAIT_S)
        assert listed.returncode == 0 and all(f"phone-{s}" in listed.stdout for s in SERIALS)
    finally:
        _stop(procs)
    assert all(p.returncode is not None for p in procs)
    for serial in SERIALS:
        assert overlaps([(r["start"], r["end"]) for r in phones.runs(serial) if "end" in r]) == []
