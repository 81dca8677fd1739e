"""Training time and peak memory of ``JointPredictor.fit`` as the number of
training devices grows (10, 20, all) on the built-in tables.

Each setting runs in a fresh Python subprocess (this script re-invoked with
``--worker``) so peak memory is not inherited from earlier fits. The worker
loads the table, selects the devices and architectures, then measures only
``fit``:

- ``fit_s``: wall-clock seconds of ``fit`` (default JointPredictor: XGBoost
  800 trees, depth 8, 2 threads);
- ``peak_rss_delta_mb``: peak resident set size during ``fit`` minus the RSS
  just before it. The peak is the larger of a psutil sampler (every
  ``SAMPLE_S`` seconds, in a thread) and the kernel's ``ru_maxrss`` high-water
  mark when ``fit`` raised it;
- ``rss_before_mb``: RSS of the process after loading data and returning
  free heap pages to the OS (``malloc_trim``), the baseline;
- ``tracemalloc_peak_mb``: peak of Python-tracked allocations during ``fit``
  (numpy arrays included; XGBoost's C++ memory is not tracked, hence the RSS).

Devices are a seeded random subset of the table's devices (the same seed gives
the same subsets; "all" is every device). Training architectures: arch_index
in [0, TRAIN_N) plus the HELP reference architectures.

    OMP_NUM_THREADS=1 python benchmarks/joint_scaling.py
    python benchmarks/joint_scaling.py --datasets help-fbnet --train-n 4000 --devices 10 all
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DATASETS = ("help-nb201", "help-fbnet")
DEFAULT_DEVICE_COUNTS = ("10", "20", "all")
#: psutil RSS sampling period during fit.
SAMPLE_S = 0.005
MB = 1024.0 * 1024.0
#: ru_maxrss is in kilobytes on Linux.
RU_MAXRSS_UNIT = 1024.0
#: Generous limit for one fit subprocess.
WORKER_TIMEOUT_S = 1800


def _release_free_heap() -> None:
    """Return free glibc heap pages to the OS (Linux/glibc only; a no-op elsewhere)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def worker(dataset: str, n_devices: str, train_n: int, seed: int) -> dict:
    import gc
    import tracemalloc

    import numpy as np
    import psutil

    import edgeperf as ep

    table = ep.datasets.load(dataset)
    wide = table.wide()
    devices = sorted(c for c in wide.columns if c != "arch_index")
    if n_devices != "all":
        k = int(n_devices)
        if k > len(devices):
            raise SystemExit(f"{dataset} has {len(devices)} devices, asked for {k}")
        devices = sorted(np.random.default_rng(seed).permutation(devices)[:k].tolist())
    refs = set(ep.predictors.reference_archs(table.space))
    archs = set(wide.index[wide["arch_index"].to_numpy() < train_n]) | refs
    sub = table.select(devices=devices, archs=archs)
    del table, wide
    gc.collect()
    _release_free_heap()  # else freed pandas memory is reused by fit and hides its footprint

    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT
    peak = [rss_before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(SAMPLE_S)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    tracemalloc.start()
    t0 = time.perf_counter()
    p = ep.JointPredictor(random_state=seed).fit(sub)
    fit_s = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stop.set()
    th.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT
    peak_bytes = max(peak[0], maxrss_after if maxrss_after > maxrss_before else 0)
    return {
        "dataset": dataset,
        "n_devices": len(devices),
        "devices": devices,
        "n_archs": len(archs),
        "n_rows": p.training_["n_rows"],
        "fit_s": fit_s,
        "rss_before_mb": rss_before / MB,
        "peak_rss_mb": peak_bytes / MB,
        "peak_rss_delta_mb": (peak_bytes - rss_before) / MB,
        "ru_maxrss_raised_by_fit": bool(maxrss_after > maxrss_before),
        "tracemalloc_peak_mb": traced_peak / MB,
    }


def run_setting(dataset: str, n_devices: str, train_n: int, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", dataset, n_devices, str(train_n), str(seed)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"worker {cmd[2:]} failed (rc {out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, dataset, n_devices, train_n, seed = sys.argv
        print(json.dumps(worker(dataset, n_devices, int(train_n), int(seed))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--devices", nargs="+", default=list(DEFAULT_DEVICE_COUNTS), help="device counts, or 'all'")
    ap.add_argument("--train-n", type=int, default=900, help="training archs: arch_index in [0, N) + refs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "joint_scaling.json")
    args = ap.parse_args()

    rows = []
    for ds in args.datasets:
        for k in args.devices:
            r = run_setting(ds, k, args.train_n, args.seed)
            rows.append(r)
            print(f"{ds:14s} devices={r['n_devices']:3d} rows={r['n_rows']:7d} fit={r['fit_s']:7.1f}s "
                  f"peak_rss_delta={r['peak_rss_delta_mb']:7.1f} MB (baseline {r['rss_before_mb']:.0f} MB)", flush=True)
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"JointPredictor.fit scaling (train arch_index < {args.train_n} + refs, seed {args.seed})")
        cols = ("dataset", "devices", "rows", "fit s", "s / 1k rows", "peak RSS delta MB", "tracemalloc peak MB",
                "RSS before MB")
        for c in cols:
            t.add_column(c, justify="right")
        for r in rows:
            t.add_row(r["dataset"], str(r["n_devices"]), str(r["n_rows"]), f"{r['fit_s']:.1f}",
                      f"{1000 * r['fit_s'] / r['n_rows']:.2f}", f"{r['peak_rss_delta_mb']:.1f}",
                      f"{r['tracemalloc_peak_mb']:.1f}", f"{r['rss_before_mb']:.0f}")
        Console(width=150).print(t)
    except ImportError:
        pass
    import platform

    res = {"config": {"datasets": args.datasets, "devices": args.devices, "train_n": args.train_n, "seed": args.seed,
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
                      "machine": platform.machine(), "note": "shared 2-core machine; timings include contention"},
           "settings": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
