"""Bespoke on this machine: students of EfficientNet-Lite2 per target and budget, against baselines.

For each target (default ONNX Runtime 1 and 2 threads, TVM 1 thread) and each budget
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


def _mode(kind: str, alt_id: str) -> str:
    if kind == "pruned":
        return "pruned"
    return "donor/" + ("conv1x1" if alt_id.endswith("/conv1x1") else "select" if alt_id.endswith("/select") else "exact")


def _kinds(chosen: list[dict]) -> dict:
    out = {}
    for c in chosen:
        k = _mode(c["kind"], c["alternative"])
        out[k] = out.get(k, 0) + 1
    return out


def _house_modes(house_path: str) -> dict:
    """Per kind of alternative (pruned, donor select / conv1x1 / channel-exact): count, median and
    best KL and agreement with only that block replaced (held-out crops)."""
    import numpy as np

    from edgeperf.bespoke import load_house

    house = load_house(house_path)
    by = {}
    for a in house.alternatives:
        by.setdefault(_mode(a.kind, a.id), []).append(house.fidelity_[a.id])
    return {k: {"n": len(v), "kl_median": float(np.median([f["kl"] for f in v])), "kl_min": min(f["kl"] for f in v),
                "agreement_median": float(np.median([f["agreement"] for f in v])),
                "agreement_max": max(f["agreement"] for f in v)} for k, v in by.items()}


def _budget_costs_cpu_s(t: dict) -> list[float]:
    """Per budget of a target: its search + timing + fine-tuning, plus an equal share of loading
    the teacher on the target's timer (kept open for all its budgets)."""
    share = t["timer_cpu_s"] / max(len(t["students"]), 1)
    return [s["cost"]["total_cpu_s"] + share for s in t["students"]]


def _rows(report: dict) -> list[dict]:
    """Latencies relative to the teacher measured in the same minute: absolute ms drift with load."""
    rows = []
    for target, t in report["targets"].items():
        for s, cost in zip(t["students"], _budget_costs_cpu_s(t)):
            u = s["uniform_pruning"]
            rows.append({
                "target": target, "budget_ratio": s["budget_ratio"], "teacher_ms": s["teacher_ms_at_search"],
                "student_ms": s["measured_ms"], "student_rel": s["relative_latency"], "within_budget": s["within_budget"],
                "student_agreement": s["fidelity"]["agreement"], "student_kl": s["fidelity"]["kl"],
                "student_agreement_before_ft": s["fidelity_before_finetune"]["agreement"],
                "student_params_m": s["params"] / 1e6, "replaced": len(s["chosen"]),
                "replaced_by_kind": _kinds(s["chosen"]), "attempts": len(s["attempts"]), "est_drop": s["search"]["est_drop"],
                "uniform_ratio": u["ratio"], "uniform_rel": u["relative_latency"],
                "uniform_agreement": u["fidelity"]["agreement"], "uniform_kl": u["fidelity"]["kl"],
                "uniform_params_m": u["params"] / 1e6, "search_finetune_cpu_s": cost,
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
    for target, t in report["targets"].items():
        for miss in t.get("infeasible", []):
            print(f"| {target} | {miss['budget_ratio']:g} | no student: {miss['error']} |")
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
    for k, m in report["house_modes"].items():
        print(f"  {k}: {m['n']} alternatives, one block replaced: KL median {m['kl_median']:.2f} (best {m['kl_min']:.2f}), "
              f"agreement median {m['agreement_median']:.2f} (best {m['agreement_max']:.2f})")
    print("replaced blocks per student: " + "; ".join(f"{r['target']} {r['budget_ratio']:g}: {r['replaced_by_kind']}"
                                                      for r in rows if "network" not in r))
    for target, t in report["targets"].items():
        search = [c / _S_PER_MIN for c in _budget_costs_cpu_s(t)]
        profile = t["profile_cpu_s"] / _S_PER_MIN
        print(f"{target}: profiling {profile:.2f} CPU min ({100 * profile / house_min:.1f}% of the house); search + "
              f"re-estimate + measure + fine-tune (+ a share of the teacher's load) per budget {', '.join(f'{m:.2f}' for m in search)} CPU min "
              f"({100 * max(search, default=0) / house_min:.1f}% of the house each); whole target (profiling + every budget) "
              f"{100 * (profile + sum(search)) / house_min:.1f}%")


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
    ap.add_argument("--train-images", type=int, default=1024)
    ap.add_argument("--held-out-images", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--finetune-lr", type=float, default=3e-3)
    ap.add_argument("--hint-weight", type=float, default=0.0)
    ap.add_argument("--rerank", type=int, default=8)
    ap.add_argument("--channel-modes", default="select,conv1x1")
    ap.add_argument("--measure-fraction", type=float, default=0.35)
    ap.add_argument("--prune-ratios", default="0.5,0.75")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = RunConfig(
        teacher=args.teacher, donors=args.donor or ["mobilenet-v2", "efficientnet-lite0"],
        targets=args.target or ["onnxruntime:t1", "onnxruntime:t2", "tvm:t1"], out=str(args.out),
        budget_ratios=args.budget_ratio or [0.5, 0.7], resolution=args.resolution, max_units=args.max_units,
        ratios=tuple(float(r) for r in args.prune_ratios.split(",")), n_train=args.train_images,
        n_held_out=args.held_out_images, distill_epochs=args.epochs, distill_lr=args.lr,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, hint_weight=args.hint_weight,
        rerank=args.rerank, channel_modes=tuple(args.channel_modes.split(",")),
        baselines=True, measure_fraction=args.measure_fraction, seed=args.seed, progress=False,
    )
    report = run(cfg, log=lambda m: print(m, flush=True))
    rows = _rows(report)
    report["rows"] = rows
    report["house_modes"] = _house_modes(report["house_path"])
    report["load_average"] = os.getloadavg()
    report["command"] = "OMP_NUM_THREADS=1 python benchmarks/bespoke.py " + " ".join(argv or [])
    (args.out / "bespoke.json").write_text(json.dumps(report, indent=1, default=float))
    _print(report, rows)


if __name__ == "__main__":
    main()
