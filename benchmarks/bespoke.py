"""Bespoke on this machine: students of EfficientNet-Lite2 per target and budget, against baselines.

For each target (default ONNX Runtime 1 and 2 threads, PyTorch 1 thread) and each budget
(0.5 and 0.7 x the teacher's measured latency): the student's measured latency against its budget,
its fidelity to the teacher (top-1 agreement, KL on held-out crops of photographs never used in
training), its parameters; the uniformly pruned teacher at the same measured latency (same KD
fine-tuning) and the donor networks themselves (EfficientNet-Lite0, MobileNetV2). House cost (CPU
minutes of steps 1-4 minus latency) and per-target cost (profiling, and search + fine-tuning).

CPU-bound and shared: reduced resolution (``--resolution``, default 96 px), few images and epochs.
Every timing is noisy on a shared VM (the JSON records the load average).

    OMP_NUM_THREADS=1 python benchmarks/bespoke.py --out benchmarks/results/bespoke
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "results" / "bespoke"
_S_PER_MIN = 60.0


def _rows(report: dict) -> list[dict]:
    """Latencies relative to the teacher measured in the same minute: absolute ms drift with load."""
    rows = []
    for target, t in report["targets"].items():
        for s in t["students"]:
            u = s["uniform_pruning"]
            rows.append({
                "target": target, "budget_ratio": s["budget_ratio"], "teacher_ms": s["teacher_ms_at_search"],
                "student_ms": s["measured_ms"], "student_rel": s["relative_latency"], "within_budget": s["within_budget"],
                "student_agreement": s["fidelity"]["agreement"], "student_kl": s["fidelity"]["kl"],
                "student_agreement_before_ft": s["fidelity_before_finetune"]["agreement"],
                "student_params_m": s["params"] / 1e6, "replaced": len(s["chosen"]),
                "uniform_ratio": u["ratio"], "uniform_rel": u["relative_latency"],
                "uniform_agreement": u["fidelity"]["agreement"], "uniform_kl": u["fidelity"]["kl"],
                "uniform_params_m": u["params"] / 1e6, "search_finetune_cpu_s": s["cost"]["total_cpu_s"],
            })
        for d in t["donor_networks"]:
            rows.append({"target": target, "network": d["name"], "rel": d["relative_latency"], "measured_ms": d["measured_ms"],
                         "agreement": d["fidelity"]["agreement"], "kl": d["fidelity"]["kl"], "params_m": d["params"] / 1e6})
    return rows


def _print(report: dict, rows: list[dict]) -> None:
    print("| target | budget (x teacher) | student (x teacher; ms) | within | agreement / KL (before FT agr.) | params M | "
          "uniform pruning at <= that latency: ratio, x teacher | uniform agreement / KL | uniform params M |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "network" in r:
            continue
        print(f"| {r['target']} | {r['budget_ratio']:g} | {r['student_rel']:.3f}; {r['student_ms']:.2f} of {r['teacher_ms']:.2f} | "
              f"{'yes' if r['within_budget'] else 'NO'} | {r['student_agreement']:.3f} / {r['student_kl']:.3f} "
              f"({r['student_agreement_before_ft']:.3f}) | {r['student_params_m']:.2f} | {r['uniform_ratio']:.2f}, "
              f"{r['uniform_rel']:.3f} | {r['uniform_agreement']:.3f} / {r['uniform_kl']:.3f} | {r['uniform_params_m']:.2f} |")
    print("\n| target | whole network | x teacher (ms) | agreement / KL | params M |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "network" in r:
            print(f"| {r['target']} | {r['network']} | {r['rel']:.3f} ({r['measured_ms']:.2f}) | {r['agreement']:.3f} / "
                  f"{r['kl']:.3f} | {r['params_m']:.2f} |")
    h = report["house"]
    house_min = h["house_cost_cpu_s"] / _S_PER_MIN
    print(f"\nhouse: {h['alternatives']} alternatives ({h['by_kind']}) for {h['blocks']} blocks; "
          f"house cost {house_min:.1f} CPU min")
    for target, t in report["targets"].items():
        search = [s["cost"]["total_cpu_s"] / _S_PER_MIN for s in t["students"]]
        print(f"{target}: profiling {t['profile_cpu_s'] / _S_PER_MIN:.2f} CPU min "
              f"({100 * t['profile_cpu_s'] / _S_PER_MIN / house_min:.1f}% of the house); search + build + measure + "
              f"fine-tune per budget {', '.join(f'{m:.2f}' for m in search)} CPU min "
              f"({100 * max(search) / house_min:.1f}% of the house)")


def main(argv=None) -> None:
    from edgeperf.bespoke._run import RunConfig, run

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--teacher", default="efficientnet-lite2")
    ap.add_argument("--donor", action="append", default=None)
    ap.add_argument("--target", action="append", default=None)
    ap.add_argument("--budget-ratio", action="append", type=float, default=None)
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--max-units", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=256)
    ap.add_argument("--held-out-images", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--measure-fraction", type=float, default=0.35)
    ap.add_argument("--prune-ratios", default="0.5,0.75")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = RunConfig(
        teacher=args.teacher, donors=args.donor or ["mobilenet-v2", "efficientnet-lite0"],
        targets=args.target or ["onnxruntime:t1", "onnxruntime:t2", "torch:t1"], out=str(args.out),
        budget_ratios=args.budget_ratio or [0.5, 0.7], resolution=args.resolution, max_units=args.max_units,
        ratios=tuple(float(r) for r in args.prune_ratios.split(",")), n_train=args.train_images,
        n_held_out=args.held_out_images, distill_epochs=args.epochs, distill_lr=args.lr,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
        baselines=True, measure_fraction=args.measure_fraction, seed=args.seed, progress=False,
    )
    report = run(cfg, log=lambda m: print(m, flush=True))
    rows = _rows(report)
    report["rows"] = rows
    report["load_average"] = os.getloadavg()
    report["command"] = "OMP_NUM_THREADS=1 python benchmarks/bespoke.py " + " ".join(argv or [])
    (args.out / "bespoke.json").write_text(json.dumps(report, indent=1, default=float))
    _print(report, rows)


if __name__ == "__main__":
    main()
