"""Device farm on Dask: throughput with 1-16 fake phones, scheduler overhead per task, and
distributed vs single-process ``JointPredictor.fit`` on a synthetic 100-device table.

1. ``throughput``: ``edgeperf.farm.profile`` on a LocalCluster (processes=False) with N devices of
   two kinds. ``sleep``: a profiler whose arch takes ``--run-s`` of wall time and no CPU (what Dask
   and the farm client cost, nothing else). ``fake_adb``: N fake phones (tests/fake_adb/adb, FAKE_ADB_REALTIME: every runner invocation takes as long as
   the runs it reports, here ``--run-s`` seconds per architecture, like a real phone); its archs/s
   count from the first runner start to the last runner end (``busy_s``: cluster start and the
   phones' description excluded). Reported: archs/s, speed-up over one device, efficiency
   (speed-up / N). The fake adb is a Python
   process per adb call (about 4 per arch plus 5 per batch to describe the phone), so on a
   small VM the fake itself eats the CPU long before Dask does: see ``cpu_s_per_arch``.
2. ``overhead``: wall time per task of ``--tasks`` no-op tasks that each need one device
   resource (so a device runs them back to back): the time a device sits idle between two
   batches because of the scheduler (in-process and TCP-on-loopback clusters).
3. ``fit``: 100 synthetic devices x all 15,625 NAS-Bench-201 archs (1,562,500 rows) in Parquet
   shards; ``fit`` single-process (the table read into memory) vs ``fit(..., client=)`` on a
   LocalCluster of ``--fit-workers`` worker processes reading the shards. Each mode runs in a
   fresh subprocess; peak memory is sampled (psutil, every 0.1 s) over the subprocess and all its
   children: ``peak_total_mb`` (sum over processes) and ``peak_largest_mb`` (the largest one: what
   one machine of the cluster must hold).
4. ``writer``: the client's RowWriter: rows/s with one fsync per row, bytes per row of an FBNet
   file, and the memory of the resume keys held per device file (for docs/SCALING.md).

    OMP_NUM_THREADS=1 python benchmarks/farm.py                       # everything (about 15 min here)
    python benchmarks/farm.py --parts throughput --devices 1 2 4      # a quick look

Timings on a shared 2-core VM drift a lot: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
MB = 1024.0 * 1024.0
#: psutil sampling period of the memory watcher.
SAMPLE_S = 0.1
#: Generous limit of one fit subprocess.
FIT_TIMEOUT_S = 3600
SPACE = "nasbench201"


class _Env:
    """os.environ with the monkeypatch-like interface tests/farm_helpers.make_farm expects."""

    def setenv(self, k, v):
        os.environ[k] = v

    def delenv(self, k, raising=False):
        os.environ.pop(k, None)


# ---- 1. throughput ------------------------------------------------------------------------------
def _busy_window_s(phones) -> float:
    """From the first runner start to the last runner end over all phones (setup excluded)."""
    runs = [r for s in phones.serials for r in phones.runs(s) if "end" in r]
    return max(r["end"] for r in runs) - min(r["start"] for r in runs)


def _sleep_profiler_class(run_s: float):
    """A profiler whose every arch takes ``run_s`` of wall time and no CPU: Dask's scaling alone."""
    from edgeperf import profilers
    from edgeperf.datasets import DeviceSpec

    class SleepProfiler(profilers.Profiler):
        kind = "bench-sleep"

        def _describe(self):
            return DeviceSpec(name="sleep", kind="cpu", cpu_model="sleep", runtime="sleep")

        def _load(self, space, arch, workdir):
            return None

        def _warmup(self, handle):
            pass

        def _timed_round(self, handle):
            time.sleep(run_s)
            return [run_s * 1e3 / self.protocol.repeats] * self.protocol.repeats

    return profilers.register(SleepProfiler)


def throughput_sleep(n_devices: int, n_archs: int, run_s: float, batch: int) -> dict:
    from distributed import Client, LocalCluster

    from edgeperf import farm
    from edgeperf.profilers import MeasurementProtocol, sample_archs

    _sleep_profiler_class(run_s)
    devices = [farm.runtime_device("bench-sleep", host=f"h{i}") for i in range(n_devices)]
    resources = {r: 1 for d in devices for r in d.resources}
    archs = sample_archs(SPACE, n_archs, seed=0)
    protocol = MeasurementProtocol(warmup=0, repeats=1, max_rounds=1)
    with tempfile.TemporaryDirectory(prefix="edgeperf-farm-bench-") as tmp, \
            LocalCluster(n_workers=1, threads_per_worker=n_devices, processes=False, resources=resources,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        client.register_plugin(farm.FarmPlugin(devices))
        t0 = time.perf_counter()
        summary = farm.profile(SPACE, out=tmp, archs=archs, client=client, protocol=protocol, batch_archs=batch,
                               progress=False)
        wall = time.perf_counter() - t0
    assert summary.complete, summary.report()
    measured = sum(s.measured for s in summary.devices.values())
    return {"devices": n_devices, "archs": measured, "wall_s": wall, "archs_per_s": measured / wall,
            "ideal_archs_per_s": n_devices / run_s}


def throughput(n_devices: int, n_archs: int, run_s: float, batch: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import psutil
    from farm_helpers import MODEL_KB, make_farm, phone_options

    from edgeperf import farm
    from edgeperf.profilers import MeasurementProtocol, sample_archs

    protocol = MeasurementProtocol(warmup=3, repeats=20, max_rounds=1)
    runs = protocol.warmup + protocol.repeats
    with tempfile.TemporaryDirectory(prefix="edgeperf-farm-bench-") as tmp:
        tmp = Path(tmp)
        serials = [f"BENCH{i:04d}" for i in range(n_devices)]
        phones = make_farm(tmp, _Env(), serials)
        per_run_us = run_s / runs * 1e6
        for s in serials:  # every phone takes run_s per architecture
            phones.configure(s, base_us=per_run_us - 40.0 * MODEL_KB)
        archs = sample_archs(SPACE, n_archs, seed=0)
        options = phone_options(tmp, archs)
        cpu0 = psutil.Process().cpu_times()
        children0 = cpu0.children_user + cpu0.children_system
        t0 = time.perf_counter()
        summary = farm.profile(SPACE, out=tmp / "farm", archs=archs, options=options, protocol=protocol,
                               batch_archs=batch, progress=False)
        wall = time.perf_counter() - t0
        cpu1 = psutil.Process().cpu_times()
        busy = _busy_window_s(phones)
    assert summary.complete, summary.report()
    measured = sum(s.measured for s in summary.devices.values())
    cpu_s = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) + (cpu1.children_user + cpu1.children_system - children0)
    return {"devices": n_devices, "archs": measured, "wall_s": wall, "busy_s": busy, "archs_per_s": measured / busy,
            "cpu_s_per_arch": cpu_s / measured, "ideal_archs_per_s": n_devices / run_s}


# ---- 2. scheduler overhead ----------------------------------------------------------------------
def _noop(i):
    return i


def overhead(n_tasks: int, n_resources: int, processes: bool) -> dict:
    from distributed import Client, LocalCluster, wait

    resources = {f"phone-R{i}": 1 for i in range(n_resources)}
    host = {"host": "127.0.0.1"} if processes else {}  # in-process clusters talk inproc://
    with LocalCluster(n_workers=1, threads_per_worker=n_resources, processes=processes, resources=resources,
                      dashboard_address=None, **host) as cluster, Client(cluster) as client:
        client.submit(_noop, -1).result()  # warm
        t0 = time.perf_counter()
        futs = [client.submit(_noop, i, resources={f"phone-R{i % n_resources}": 1}, pure=False) for i in range(n_tasks)]
        wait(futs)
        wall = time.perf_counter() - t0
    per_resource = n_tasks / n_resources
    return {"transport": "tcp (loopback)" if processes else "inproc", "tasks": n_tasks, "resources": n_resources,
            "wall_s": wall, "ms_per_task": wall / n_tasks * 1e3,
            "ms_idle_per_device_between_tasks": wall / per_resource * 1e3}


# ---- 3. fit -------------------------------------------------------------------------------------
def make_table(folder: Path, n_devices: int, seed: int, shard_devices: int = 10) -> dict:
    """Synthetic latencies: per device a scale, power-law exponents on MACs/params/memory traffic,
    per-operation multipliers and 3 % noise -- a smooth but device-specific surface."""
    import numpy as np
    import pandas as pd

    from edgeperf import spaces

    sp = spaces.get(SPACE)
    archs = list(sp.enumerate())
    logc = np.log(sp.cost_matrix(archs))
    onehot = sp.encode(archs, "onehot")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, n_devices, shard_devices):
        parts = []
        for d in range(start, min(n_devices, start + shard_devices)):
            w = rng.uniform(0.1, 0.6, logc.shape[1])
            op = rng.normal(0, 0.15, onehot.shape[1])
            lat = np.exp(rng.normal(0, 1) + logc @ w * 0.5 + onehot @ op + rng.normal(0, 0.03, len(archs)))
            parts.append(pd.DataFrame({"space": SPACE, "arch": archs, "device": f"synth{d:03d}",
                                       "metric": "latency_ms", "value": lat}))
        pd.concat(parts).to_parquet(folder / f"shard{start // shard_devices:02d}.parquet", index=False)
    return {"devices": n_devices, "archs": len(archs), "rows": n_devices * len(archs)}


def fit_worker(mode: str, folder: str, trees: int, workers: int) -> dict:
    import glob

    import pandas as pd

    from edgeperf.datasets import MeasurementTable
    from edgeperf.predictors import JointPredictor

    files = sorted(glob.glob(f"{folder}/*.parquet"))
    params = {"n_estimators": trees, "n_jobs": 2 if mode == "single" else 1}
    t0 = time.perf_counter()
    if mode == "single":
        table = MeasurementTable(pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))
        t_read = time.perf_counter() - t0
        p = JointPredictor(model_params=params).fit(table)
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            t_read = time.perf_counter() - t0  # cluster start; the shards are read lazily inside fit
            p = JointPredictor(model_params=params).fit(files, client=client)
    total = time.perf_counter() - t0
    return {"mode": mode, "trees": trees, "rows": p.training_["n_rows"], "devices": len(p.devices_),
            "setup_s": t_read, "fit_s": total - t_read, "total_s": total}


def run_fit(mode: str, folder: Path, trees: int, workers: int) -> dict:
    import psutil

    cmd = [sys.executable, __file__, "--fit-worker", mode, str(folder), str(trees), str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    peak_total, peak_largest = 0, 0
    stop = threading.Event()

    def watch():
        nonlocal peak_total, peak_largest
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
            except psutil.Error:
                rss = []
            if rss:
                peak_total, peak_largest = max(peak_total, sum(rss)), max(peak_largest, max(rss))
            time.sleep(SAMPLE_S)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    out, err = proc.communicate(timeout=FIT_TIMEOUT_S)
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"fit worker {mode} failed (rc {proc.returncode}):\n{err[-3000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    res.update(peak_total_mb=peak_total / MB, peak_largest_mb=peak_largest / MB, workers=workers if mode != "single" else 0)
    return res


# ---- 4. the client's writer ---------------------------------------------------------------------
def writer(n_rows: int, space: str = "fbnet") -> dict:
    """RowWriter rows/s (one fsync per row, what the farm client does per measurement), the file's
    bytes per row, and the memory of the resume-key set a client holds per device file."""
    import tracemalloc

    from edgeperf.datasets import Measurement, RowWriter
    from edgeperf.profilers import sample_archs

    archs = sample_archs(space, n_rows, seed=0)
    rows = [Measurement(space=space, arch=a, device="google-pixel-6-tflite-cpu-b1-fa6ab0301234", metric="latency_ms",
                        value=10.0 + i * 1e-3, runtime="benchmark_model", batch_size=1, threads=4, runs=50, std=0.1,
                        p10=9.9, p90=10.2, cv=0.01, timestamp="2026-12-01T00:00:00+00:00", edgeperf_version="0.1.0")
            for i, a in enumerate(archs)]
    with tempfile.TemporaryDirectory(prefix="edgeperf-writer-bench-") as tmp:
        path = Path(tmp) / "device.csv"
        with RowWriter(path) as w:
            t0 = time.perf_counter()
            for r in rows:
                w.append(r)
            append_s = time.perf_counter() - t0
        size = path.stat().st_size
        from edgeperf.datasets import read, write

        write(read(path), Path(tmp) / "device.parquet")  # the same rows as Parquet (tidy)
        parquet_size = (Path(tmp) / "device.parquet").stat().st_size
        t0 = time.perf_counter()
        with RowWriter(path) as w:  # a resumed run re-reads the file and rebuilds its keys
            open_s = time.perf_counter() - t0
        tracemalloc.start()  # separately: tracemalloc slows every allocation down
        with RowWriter(path) as w:
            keys_mb = tracemalloc.get_traced_memory()[0] / MB
            assert len(w) == n_rows
        tracemalloc.stop()
    return {"space": space, "rows": n_rows, "rows_per_s": n_rows / append_s, "bytes_per_row": size / n_rows,
            "parquet_bytes_per_row": parquet_size / n_rows,
            "reopen_s": open_s, "resume_keys_mb": keys_mb, "resume_keys_bytes_per_row": keys_mb * MB / n_rows}


# ---- driver -------------------------------------------------------------------------------------
def _table(rows, cols) -> str:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    line = "  ".join(c.rjust(w) for c, w in zip(cols, widths))
    return "\n".join([line] + ["  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)) for r in rows])


def _fmt(d: dict) -> dict:
    return {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in d.items()}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--fit-worker":
        _, _, mode, folder, trees, workers = sys.argv
        print(json.dumps(fit_worker(mode, folder, int(trees), int(workers))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["throughput", "overhead", "fit", "writer"])
    ap.add_argument("--devices", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--archs", type=int, default=6, help="archs per phone in the throughput runs")
    ap.add_argument("--run-s", type=float, default=2.0, help="seconds one arch takes on a fake phone")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--fit-devices", type=int, default=100)
    ap.add_argument("--trees", type=int, default=100, help="boosting rounds of both fits (the default model has 800)")
    ap.add_argument("--fit-workers", type=int, default=2)
    ap.add_argument("--writer-rows", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=RESULTS / "farm.json")
    args = ap.parse_args()
    result = {"config": vars(args) | {"out": str(args.out)}, "cpu_count": os.cpu_count()}
    if "throughput" in args.parts:
        for kind, fn, cols in (
            ("sleep", throughput_sleep, ["devices", "archs", "wall_s", "archs_per_s", "ideal_archs_per_s"]),
            ("fake_adb", throughput, ["devices", "archs", "wall_s", "busy_s", "archs_per_s", "ideal_archs_per_s",
                                      "cpu_s_per_arch"]),
        ):
            rows = [fn(n, args.archs, args.run_s, args.batch) for n in args.devices]
            base = rows[0]["archs_per_s"] / rows[0]["devices"]
            for r in rows:
                r["speedup"] = r["archs_per_s"] / base
                r["efficiency"] = r["speedup"] / r["devices"]
            result[f"throughput_{kind}"] = rows
            print(f"\nthroughput, {kind} devices, {args.run_s:.1f} s per arch:")
            print(_table([_fmt(r) for r in rows], cols + ["speedup", "efficiency"]))
    if "overhead" in args.parts:
        rows = [overhead(args.tasks, 8, processes) for processes in (False, True)]
        result["overhead"] = rows
        print("\nscheduler overhead (no-op tasks, 8 device resources):")
        print(_table([_fmt(r) for r in rows], ["transport", "tasks", "wall_s", "ms_per_task",
                                               "ms_idle_per_device_between_tasks"]))
    if "fit" in args.parts:
        with tempfile.TemporaryDirectory(prefix="edgeperf-fit-bench-") as tmp:
            info = make_table(Path(tmp), args.fit_devices, seed=0)
            rows = [run_fit("single", Path(tmp), args.trees, 0), run_fit("dask", Path(tmp), args.trees, args.fit_workers)]
        result["fit"] = {"table": info, "runs": rows}
        print(f"\nfit on {info['devices']} devices x {info['archs']} archs = {info['rows']} rows, {args.trees} trees:")
        print(_table([_fmt(r) for r in rows], ["mode", "workers", "setup_s", "fit_s", "total_s", "peak_total_mb",
                                               "peak_largest_mb"]))
    if "writer" in args.parts:
        row = writer(args.writer_rows)
        result["writer"] = row
        print("\nclient writer (RowWriter, fsync per row):")
        print(_table([_fmt(row)], list(row)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
