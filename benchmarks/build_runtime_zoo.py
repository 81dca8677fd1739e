"""Build the ``zoo-nb201`` / ``zoo-fbnet`` / ``zoo-ofa-mbv3`` built-in datasets: latencies of this machine's runtimes.

Each *setting* (runtime, threads, batch size, runtime option) is one device of the table. The
settings really behave differently (ONNX Runtime with 1 or 2 threads, a batch of 8, basic graph
optimisation; PyTorch eager; TVM -O3 compiled), so a predictor trained on them sees hardware-like
diversity that the public tables lack.

Architectures follow HELP's protocol (``_help_protocol.py``), in priority order: the 10 reference
architectures, a random sample of indices [0, N) (what a training device may use; also the source
of the 10 random target measurements), then a random sample of the test range [N, N + 1000).
Measuring is round-robin over the settings with a growing prefix of that list, so whenever the time
box ends every setting has about the same architectures. Each call is the real ``edgeperf profile``
command writing through the resumable RowWriter: re-running the script resumes. The 1-minute load
average is recorded before and after each call (the machine is shared; the timings are noisy).
``pack`` takes every ``<setting>.csv`` of the workdir and every run of its ``runs.jsonl``: zoo-nb201's
TVM column (60 archs) was kept from its first build by writing those rows there
(``datasets.write``) and their runs into ``runs.jsonl`` before measuring the other settings anew.

    python benchmarks/build_runtime_zoo.py measure --workdir /tmp/zoo --minutes 36 --n-pool 890 --n-test 100 \
        --settings zoo_ort_t1_1 zoo_ort_t2_1 zoo_torch_t1_1 zoo_ort_t1_8 zoo_ort_basic_t1_1
    python benchmarks/build_runtime_zoo.py pack --workdir /tmp/zoo     # -> edgeperf/datasets/data/
    python benchmarks/build_runtime_zoo.py measure --space fbnet --workdir /tmp/zoo-fb --minutes 50 \
        --n-pool 800 --n-test 100 --settings zoo_ort_t1_1 zoo_ort_t2_1 zoo_torch_t1_1 zoo_ort_t1_8 zoo_ort_basic_t1_1
    python benchmarks/build_runtime_zoo.py pack --space fbnet --workdir /tmp/zoo-fb
    python benchmarks/build_runtime_zoo.py measure --space ofa --workdir /tmp/zoo-ofa --minutes 48 \
        --n-pool 800 --n-test 100 --settings zoo_ort_t1_1 zoo_ort_t2_1 zoo_torch_t1_1 zoo_ort_t1_8 zoo_ort_basic_t1_1
    python benchmarks/build_runtime_zoo.py pack --space ofa --workdir /tmp/zoo-ofa
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from _help_protocol import N_TRAIN, TEST_SIZE

DATA_DIR = Path(__file__).resolve().parents[1] / "edgeperf" / "datasets" / "data"
#: --space -> (search space, the public table its architectures and indices come from, file stem)
SPACES = {"nb201": ("nasbench201", "help-nb201", "zoo_nb201"), "fbnet": ("fbnet", "help-fbnet", "zoo_fbnet"),
          "ofa": ("ofa_mbv3", "help-ofa-mbv3", "zoo_ofa_mbv3")}
#: name -> (profiler, threads, batch size, --option pairs)
SETTINGS = {
    "zoo_ort_t1_1": ("onnxruntime", 1, 1, []),
    "zoo_torch_t1_1": ("torch", 1, 1, []),
    "zoo_ort_t2_1": ("onnxruntime", 2, 1, []),
    "zoo_ort_t1_8": ("onnxruntime", 1, 8, []),
    "zoo_ort_basic_t1_1": ("onnxruntime", 1, 1, ["graph_optimization_level=basic"]),
    "zoo_tvm_t1_1": ("tvm", 1, 1, []),
}
#: Prefix lengths of the architecture list measured per round (then the whole list).
ROUNDS = (60, 150, 300, 500, 800, 1200)
#: Architectures of [0, N) and of the test range in the list (the rest of each range follows);
#: the first zoo-nb201 build used these defaults; the shipped zoos pass --n-pool / --n-test.
N_POOL, N_TEST = 200, 500
PROTOCOL = ["--warmup", "3", "--repeats", "20", "--max-rounds", "2"]


def arch_list(space: str, n_pool: int = N_POOL, n_test: int = N_TEST, seed: int = 0) -> list[str]:
    """References, then [0, N) sampled, then [N, N + 1000) sampled, then the rest of both ranges."""
    import edgeperf as ep

    name, source, _ = SPACES[space]
    wide = ep.datasets.load(source).wide()
    idx = wide["arch_index"].to_numpy()
    archs = np.array(wide.index, dtype=object)
    refs = ep.datasets.reference_archs(name)
    n = N_TRAIN[name]
    rng = np.random.default_rng(seed)
    pool = [a for a in rng.permutation(archs[idx < n]) if a not in refs]
    test = [a for a in rng.permutation(archs[(idx >= n) & (idx < n + TEST_SIZE)]) if a not in refs]
    return list(refs) + pool[:n_pool] + test[:n_test] + pool[n_pool:] + test[n_test:]


def _load1() -> float:
    return os.getloadavg()[0]


def measure(space: str, workdir: Path, minutes: float, settings=None, n_pool=N_POOL, n_test=N_TEST) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    archs = arch_list(space, n_pool, n_test)
    log_path = workdir / "runs.jsonl"
    deadline = time.monotonic() + minutes * 60
    edgeperf = [sys.executable, "-c", "from edgeperf.cli import main; main()"]
    for prefix in (*ROUNDS, len(archs)):
        list_path = workdir / f"archs_{prefix}.txt"
        list_path.write_text("\n".join(archs[:prefix]) + "\n", encoding="utf-8")
        for name, (kind, threads, batch, options) in SETTINGS.items():
            if settings and name not in settings:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return
            cmd = [*edgeperf, "profile", "-d", kind, "-s", SPACES[space][0], "--archs", str(list_path),
                   "-o", str(workdir / f"{name}.csv"), "-t", str(threads), "-b", str(batch),
                   "--name", name, "-q", *PROTOCOL]
            for opt in options:
                cmd += ["--option", opt]
            start = {"t": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load1": _load1()}
            try:
                rc = subprocess.run(cmd, timeout=left, env={**os.environ, "OMP_NUM_THREADS": str(threads)}).returncode
            except subprocess.TimeoutExpired:
                rc = "time box reached (rows written so far are kept)"
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"device": name, "prefix": prefix, "start": start, "rc": rc,
                                     "end": {"t": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                             "load1": _load1()}}) + "\n")


def pack(space: str, workdir: Path, out_dir: Path) -> Path:
    """Merge the per-setting CSVs into one wide table plus its devices sidecar and provenance."""
    import edgeperf as ep

    space_name, source, stem = SPACES[space]
    frames, specs = [], {}
    for name in SETTINGS:
        path = workdir / f"{name}.csv"
        if path.exists():
            table = ep.datasets.read(path, space=space_name, metric="latency_ms")
            frames.append(table)
            specs.update(table.devices_info)
    index = ep.datasets.load(source).wide()["arch_index"]
    wide = None
    for table in frames:
        w = table.wide().drop(columns=["arch_index"], errors="ignore")
        wide = w if wide is None else wide.join(w, how="outer")
    wide.insert(0, "arch_index", index.reindex(wide.index).astype(int))
    wide = wide.sort_values("arch_index")
    wide.index.name = "arch"
    out = out_dir / f"{stem}_latency_ms.csv.gz"
    wide.reset_index()[["arch_index", "arch", *[c for c in wide.columns if c != "arch_index"]]].to_csv(
        out, index=False, compression="gzip", float_format="%.6g")
    runs = [json.loads(line) for line in (workdir / "runs.jsonl").read_text(encoding="utf-8").splitlines()]
    prov = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "settings": {k: {"profiler": v[0], "threads": v[1], "batch_size": v[2], "options": v[3]}
                     for k, v in SETTINGS.items() if k in wide.columns},
        "protocol": PROTOCOL,
        "measured_from": min(r["start"]["t"] for r in runs),
        "measured_to": max(r["end"]["t"] for r in runs),
        "load1_range": [min(min(r["start"]["load1"], r["end"]["load1"]) for r in runs),
                        max(max(r["start"]["load1"], r["end"]["load1"]) for r in runs)],
        "archs_per_device": {c: int(wide[c].notna().sum()) for c in wide.columns if c != "arch_index"},
        "runs": runs,
    }
    (out_dir / f"{stem}_provenance.json").write_text(json.dumps(prov, indent=1), encoding="utf-8")
    ep.datasets.write_devices_json(specs, ep.datasets.sidecar_path(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["measure", "pack"])
    ap.add_argument("--space", choices=list(SPACES), default="nb201")
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=40.0, help="time box of the measure step")
    ap.add_argument("--out-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--settings", nargs="*", choices=list(SETTINGS), help="measure only these (default: all)")
    ap.add_argument("--n-pool", type=int, default=N_POOL, help="[0, N) architectures early in the list")
    ap.add_argument("--n-test", type=int, default=N_TEST, help="test-range architectures after them")
    args = ap.parse_args()
    if args.step == "measure":
        measure(args.space, args.workdir, args.minutes, args.settings, args.n_pool, args.n_test)
    else:
        print("wrote", pack(args.space, args.workdir, args.out_dir))


if __name__ == "__main__":
    main()
