"""How much distillation data a Bespoke house needs: distinct crops vs epochs over the same crops.

For each (training crops, epochs) setting a house of the teacher's pruned blocks (one pruning
ratio, no donors: the cheapest house that shows the effect) is distilled block-wise and scored on
the same held-out crops (photographs never trained on). Reported: the blocks' fidelity with only
that block replaced (KL mean / median, agreement median) and the fidelity of one fixed student
made of several of those blocks (the non-overlapping blocks of lowest KL in the first setting,
the same set in every setting): replaced blocks compound, so a setting can improve blocks one by
one and still lose on the student. Distillation CPU time beside.

    OMP_NUM_THREADS=1 python benchmarks/bespoke_data.py --out benchmarks/results/bespoke_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).parent / "results" / "bespoke_data.json"
#: (training crops, epochs): the benchmark's former setting, the same crops longer, more crops.
DEFAULT_SETTINGS = ("256x2", "256x4", "256x8", "512x2", "1024x2")


def _fixed_set(house, n_blocks: int) -> list[str]:
    """The ``n_blocks`` non-overlapping alternatives of lowest held-out KL (block order)."""
    chosen, used = [], set()
    for alt_id in sorted(house.fidelity_, key=lambda a: house.fidelity_[a]["kl"]):
        block = house.block(house.alternative(alt_id).block)
        span = set(range(block.start, block.end))
        if not span & used:
            chosen.append(alt_id)
            used |= span
        if len(chosen) == n_blocks:
            break
    return chosen


def main(argv=None) -> None:
    import torch

    from edgeperf.bespoke import build_house
    from edgeperf.bespoke._train import DistillConfig, fidelity

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--teacher", default="efficientnet-lite2")
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--prune-ratio", type=float, default=0.5)
    ap.add_argument("--held-out-images", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--student-blocks", type=int, default=12)
    ap.add_argument("--setting", action="append", default=None, help="CROPSxEPOCHS, e.g. 1024x2 (repeatable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows, fixed = [], None
    for setting in args.setting or DEFAULT_SETTINGS:
        n_train, epochs = (int(v) for v in setting.split("x"))
        t0 = time.process_time()
        house = build_house(args.teacher, donors=[], resolution=args.resolution, ratios=[args.prune_ratio],
                            distill=DistillConfig(epochs=epochs, lr=args.lr), n_train=n_train,
                            n_held_out=args.held_out_images, seed=0)
        cpu_s = time.process_time() - t0
        fixed = fixed or _fixed_set(house, args.student_blocks)
        student = fidelity(house.student(fixed), house.teacher_logits(), house.data.held_out)
        kl = np.array([f["kl"] for f in house.fidelity_.values()])
        agreement = np.array([f["agreement"] for f in house.fidelity_.values()])
        steps = epochs * -(-n_train // house.config["distill"]["batch_size"])
        rows.append({"crops": n_train, "epochs": epochs, "steps_per_alternative": steps,
                     "alternatives": len(house.alternatives), "house_cpu_s": cpu_s,
                     "distill_cpu_s": house.costs_["distill_cpu_s"],
                     "block_kl_mean": float(kl.mean()), "block_kl_median": float(np.median(kl)),
                     "block_agreement_median": float(np.median(agreement)),
                     "student_agreement": student["agreement"], "student_kl": student["kl"]})
        print(f"{setting}: {rows[-1]}", flush=True)
    report = {"rows": rows, "student": fixed, "load_average": os.getloadavg(),
              "command": "OMP_NUM_THREADS=1 python benchmarks/bespoke_data.py " + " ".join(argv or [])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nfixed student: {len(fixed)} blocks; held-out crops: {args.held_out_images}")
    print("| crops x epochs | Adam steps per alternative | one block replaced: KL mean / median, agreement median "
          "| fixed student: agreement / KL | distillation CPU s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['crops']} x {r['epochs']} | {r['steps_per_alternative']} | {r['block_kl_mean']:.2f} / "
              f"{r['block_kl_median']:.2f}, {r['block_agreement_median']:.2f} | {r['student_agreement']:.3f} / "
              f"{r['student_kl']:.2f} | {r['distill_cpu_s']:.0f} |")


if __name__ == "__main__":
    main()
