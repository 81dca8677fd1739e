"""int8 on this machine: NB-201 cells in ONNX Runtime fp32 vs int8 dynamic quantisation, and
designs that choose the precision.

1. Profile the 10 reference cells + ``--cells`` random ones (seeded) twice with the real
   ONNX Runtime profiler (1 thread): fp32, and ``quantize="int8-dynamic"``
   (``onnxruntime.quantization.quantize_dynamic``). Rows go to ``--out-dir`` as measured
   (resumable).
2. Report the int8 / fp32 latency ratio per cell (median, share of cells faster in int8), the
   rank correlation of the two, and the accuracy lost to post-training quantisation
   (``nb201-cifar10`` vs ``nb201-cifar10-int8`` from analog-nasbench, optional extra).
3. Adapt the shipped ``help-nb201`` predictor to both settings from 20 of those measurements
   each (the reference cells + 10 random), then for budgets at quantiles of the measured fp32
   latencies let ``edgeperf.optimize.search_precisions`` choose (arch, precision) and measure the
   chosen design for real at its precision.

Timings are wall-clock on a shared 2-core VM: they drift with the other jobs on it.

Run: ``python benchmarks/quantization.py [--cells 30]``; writes ``benchmarks/results/quantization.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import edgeperf as ep
from edgeperf import metrics
from edgeperf.optimize import InfeasibleBudgetWarning, objectives, search_precisions
from edgeperf.profilers import MeasurementProtocol, profile_archs

PRECISIONS = {"fp32": ("none", "nb201-cifar10"), "int8": ("int8-dynamic", "nb201-cifar10-int8")}
BUDGET_QUANTILES = (0.3, 0.5, 0.7)
N_ADAPT_RANDOM = 10


def _profile(profiler, space, archs, path) -> dict[str, float]:
    profile_archs(profiler, space, archs, path, progress=False)
    table = ep.datasets.read(path).select(devices=[profiler.device_name], metric="latency_ms")
    return table.values(profiler.device_name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=30, help="random NB-201 cells besides the 10 reference ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out-dir", default="/tmp/edgeperf-quantization")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quantization.json"))
    args = ap.parse_args()
    started = time.perf_counter()
    space = ep.spaces.get("nasbench201")
    refs = ep.datasets.reference_archs("nasbench201")
    cells = refs + [a for a in space.sample(args.cells + len(refs), seed=args.seed, unique=True) if a not in set(refs)][: args.cells]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = MeasurementProtocol(warmup=args.warmup, repeats=args.repeats)
    profilers = {p: ep.profilers.get("onnxruntime")(protocol=protocol, threads=1, quantize=q)
                 for p, (q, _) in PRECISIONS.items()}
    lat = {}
    for p, prof in profilers.items():
        t = time.perf_counter()
        lat[p] = _profile(prof, space, cells, out_dir / f"{p}.csv")
        print(f"[{p}] {len(cells)} cells on {prof.device_name} in {time.perf_counter() - t:.0f} s", flush=True)
    fp32 = np.array([lat["fp32"][a] for a in cells])
    int8 = np.array([lat["int8"][a] for a in cells])
    ratio = int8 / fp32
    acc = {p: objectives.get(o).score(cells, space=space) for p, (_, o) in PRECISIONS.items()}
    report = {
        "command": "python benchmarks/quantization.py" + (f" --cells {args.cells}" if args.cells != 30 else ""),
        "devices": {p: prof.device_name for p, prof in profilers.items()}, "n_cells": len(cells),
        "latency_ms": {p: {a: lat[p][a] for a in cells} for p in PRECISIONS},
        "int8_over_fp32": {"median": float(np.median(ratio)), "min": float(ratio.min()), "max": float(ratio.max()),
                           "share_faster_in_int8": float(np.mean(ratio < 1.0))},
        "spearman_fp32_int8": float(metrics.spearman(fp32, int8)),
        "ptq_accuracy_drop_points": {"median": float(np.median(acc["fp32"] - acc["int8"])),
                                     "max": float(np.max(acc["fp32"] - acc["int8"]))},
    }
    print(f"int8/fp32 latency: median {report['int8_over_fp32']['median']:.2f} "
          f"({report['int8_over_fp32']['min']:.2f}..{report['int8_over_fp32']['max']:.2f}), int8 faster on "
          f"{100 * report['int8_over_fp32']['share_faster_in_int8']:.0f}% of cells; Spearman fp32 vs int8 "
          f"{report['spearman_fp32_int8']:.3f}; PTQ accuracy drop median {report['ptq_accuracy_drop_points']['median']:.2f} points")

    predictor = ep.pretrained.load("help-nb201")
    rng = np.random.default_rng(args.seed)
    adapt_archs = refs + [cells[len(refs) + i] for i in rng.choice(args.cells, N_ADAPT_RANDOM, replace=False)]
    for p, prof in profilers.items():
        predictor.adapt(prof.device_name, archs=adapt_archs, values=[lat[p][a] for a in adapt_archs])
    variants = {p: (profilers[p].device_name, o) for p, (_, o) in PRECISIONS.items()}
    designs = []
    for q in BUDGET_QUANTILES:
        budget = float(np.quantile(fp32, q))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InfeasibleBudgetWarning)
            choice = search_precisions(predictor, variants=variants, budget_ms=budget)
        d = choice.design
        measured = _profile(profilers[choice.precision], space, [d.arch], out_dir / f"{choice.precision}.csv")[d.arch]
        row = {"budget_ms": budget, "precision": choice.precision, "arch": d.arch, "predicted_ms": d.latency_ms,
               "bound_ms": d.latency_bound_ms, "measured_ms": measured, "within_budget": bool(measured <= budget),
               "objective": d.objective, "feasible": d.feasible, "warned": bool(caught),
               "per_precision": {p: {"arch": c.arch, "objective": c.objective, "bound_ms": c.latency_bound_ms,
                                     "feasible": c.feasible} for p, c in choice.candidates.items()}}
        designs.append(row)
        print(f"budget {budget:.3f} ms: {choice.precision} {d.arch} predicted {d.latency_ms:.3f} (bound "
              f"{d.latency_bound_ms:.3f}) measured {measured:.3f} ms, accuracy {d.objective:.2f}; "
              + ", ".join(f"{p}: {c.objective:.2f} @ {c.latency_bound_ms:.3f}" for p, c in choice.candidates.items()),
              flush=True)
    report["designs"] = designs
    report["seconds"] = time.perf_counter() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out} (shared VM: timings drift)")


if __name__ == "__main__":
    main()
