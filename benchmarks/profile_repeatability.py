"""How repeatable and how fast is local profiling, and do the runtimes agree on rankings?

1. Repeatability: the median latency of ``--archs`` NAS-Bench-201 archs, measured in
   ``--sessions`` separate processes (one fresh ONNX Runtime session per arch in each);
   per-arch CV of the session medians.
2. Throughput: archs profiled per minute by each runtime (export/compile included) with the
   default ``edgeperf profile`` protocol, on the first ``--rank-archs`` archs.
3. Agreement: Spearman rank correlation of the latencies of those archs between ONNX Runtime,
   PyTorch and TVM.

Prints tables and writes JSON (default ``benchmarks/results/profile_repeatability.json``).
On a shared machine the numbers are noisy: the JSON records the load average.

    python benchmarks/profile_repeatability.py --archs 20 --sessions 5 --rank-archs 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).parent / "results" / "profile_repeatability.json"
SPACE = "nasbench201"
SEED = 0
_S_PER_MIN = 60.0


class _PreExported:
    """Duck-typed space for :meth:`Profiler.measure`: hands out models exported once, so every
    session times the very same ONNX file."""

    def __init__(self, space, model_dir: Path, archs: list[str]):
        self.space, self.model_dir = space, model_dir
        self.name = space.name
        self.index = {a: i for i, a in enumerate(archs)}

    def file_of(self, arch) -> Path:
        return self.model_dir / f"arch{self.index[arch]:04d}.onnx"

    def export_onnx(self, arch, path, *, batch_size=1):
        shutil.copyfile(self.file_of(arch), path)
        return Path(path)

    def input_shape(self, arch, *, batch_size=1):
        return self.space.input_shape(arch, batch_size=batch_size)


def _archs(n: int) -> list[str]:
    from edgeperf.profilers._runner import sample_archs

    return sample_archs(SPACE, n, seed=SEED)


def _child(model_dir: Path, n_archs: int, warmup: int, repeats: int, threads: int) -> None:
    """One session process: print {arch: median_ms} as JSON."""
    from edgeperf import profilers, spaces
    from edgeperf.profilers import MeasurementProtocol

    archs = _archs(n_archs)
    pre = _PreExported(spaces.get(SPACE), model_dir, archs)
    prof = profilers.get("onnxruntime")(threads=threads, protocol=MeasurementProtocol(warmup=warmup, repeats=repeats))
    out = {a: prof.measure(pre, a)[0].median_ms for a in archs}
    print(json.dumps(out))


def repeatability(n_archs: int, sessions: int, warmup: int, repeats: int, threads: int) -> dict:
    from edgeperf import spaces

    space = spaces.get(SPACE)
    archs = _archs(n_archs)
    with tempfile.TemporaryDirectory(prefix="edgeperf-bench-") as tmp:
        pre = _PreExported(space, Path(tmp), archs)
        for a in archs:
            space.export_onnx(a, pre.file_of(a))
        medians = []
        for s in range(sessions):
            cmd = [sys.executable, __file__, "--_child", tmp, "--archs", str(n_archs), "--warmup", str(warmup),
                   "--repeats", str(repeats), "--threads", str(threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            got = json.loads(res.stdout.strip().splitlines()[-1])
            medians.append([got[a] for a in archs])
            print(f"  session {s + 1}/{sessions} done", file=sys.stderr)
    m = np.array(medians)  # sessions x archs
    cv = m.std(axis=0, ddof=1) / m.mean(axis=0)
    return {
        "archs": archs,
        "session_medians_ms": m.T.tolist(),
        "median_of_medians_ms": np.median(m, axis=0).tolist(),
        "cv_per_arch": cv.tolist(),
        "cv_median": float(np.median(cv)),
        "cv_max": float(cv.max()),
    }


def throughput_and_ranks(archs: list[str], threads: int) -> dict:
    from edgeperf import profilers, spaces

    space = spaces.get(SPACE)
    out = {}
    for kind in ("onnxruntime", "torch", "tvm"):
        prof = profilers.get(kind)(threads=threads)  # default protocol, as `edgeperf profile`
        t0 = time.perf_counter()
        lat = [prof.profile(space, a)[0].value for a in archs]
        elapsed = time.perf_counter() - t0
        out[kind] = {"latency_ms": lat, "seconds": elapsed, "archs_per_minute": len(archs) * _S_PER_MIN / elapsed}
        print(f"  {kind}: {len(archs)} archs in {elapsed:.1f} s", file=sys.stderr)
    return out


def spearman_table(lat: dict[str, list[float]]) -> dict[str, float]:
    from scipy.stats import spearmanr

    kinds = list(lat)
    return {
        f"{a} vs {b}": float(spearmanr(lat[a], lat[b]).statistic)
        for i, a in enumerate(kinds)
        for b in kinds[i + 1:]
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=20, help="archs for repeatability (default 20)")
    ap.add_argument("--sessions", type=int, default=5, help="separate processes (default 5)")
    ap.add_argument("--rank-archs", type=int, default=8, help="archs for throughput and Spearman (default 8)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--_child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        _child(args._child, args.archs, args.warmup, args.repeats, args.threads)
        return

    from rich.console import Console
    from rich.table import Table

    from edgeperf.profilers._sysinfo import host_info

    load_before = os.getloadavg()
    print(f"repeatability: {args.archs} archs x {args.sessions} processes", file=sys.stderr)
    rep = repeatability(args.archs, args.sessions, args.warmup, args.repeats, args.threads)
    rank_archs = rep["archs"][: args.rank_archs]
    print(f"throughput + ranking: {len(rank_archs)} archs x 3 runtimes", file=sys.stderr)
    thr = throughput_and_ranks(rank_archs, args.threads)
    lat = {"onnxruntime(sessions)": rep["median_of_medians_ms"][: len(rank_archs)]}
    lat.update({k: v["latency_ms"] for k, v in thr.items()})
    rho = spearman_table(lat)

    console = Console()
    t = Table(title=f"ONNX Runtime repeatability over {args.sessions} processes (CV of session medians)")
    for c in ("#", "median of medians (ms)", "min (ms)", "max (ms)", "CV"):
        t.add_column(c, justify="right")
    for i, (mm, ses, cv) in enumerate(zip(rep["median_of_medians_ms"], rep["session_medians_ms"], rep["cv_per_arch"])):
        t.add_row(str(i), f"{mm:.3f}", f"{min(ses):.3f}", f"{max(ses):.3f}", f"{cv:.1%}")
    console.print(t)
    console.print(f"CV median {rep['cv_median']:.1%}, max {rep['cv_max']:.1%}")
    t2 = Table(title="profiling throughput (default protocol, export/compile included)")
    for c in ("runtime", "archs", "seconds", "archs/minute", "median latency (ms)"):
        t2.add_column(c, justify="right")
    for k, v in thr.items():
        t2.add_row(k, str(len(rank_archs)), f"{v['seconds']:.1f}", f"{v['archs_per_minute']:.1f}", f"{np.median(v['latency_ms']):.3f}")
    console.print(t2)
    t3 = Table(title=f"Spearman rank agreement over {len(rank_archs)} archs")
    t3.add_column("pair")
    t3.add_column("rho", justify="right")
    for pair, r in rho.items():
        t3.add_row(pair, f"{r:.3f}")
    console.print(t3)

    result = {
        "settings": {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "out"},
        "space": SPACE,
        "seed": SEED,
        "host": {k: v for k, v in host_info().spec_fields().items() if k != "extra"},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "repeatability": rep,
        "throughput": {k: {kk: vv for kk, vv in v.items() if kk != "latency_ms"} for k, v in thr.items()},
        "latency_ms": lat,
        "spearman": rho,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
