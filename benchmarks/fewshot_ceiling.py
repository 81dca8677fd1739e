"""How well can *any* model rank a held-out device's test set? Per-device ceilings of the
adversarial splits of ``fewshot_unseen.py``.

For every test device of every split, one ``PerDevicePredictor`` per model family (XGBoost, the
library default; ridge; MLP) is trained on that device's *own* range [0, N) (900 NB-201 / 4,000
FBNet and OFA measured architectures, 45-200x the few-shot budget of 20) and scored by Spearman on
the same test set as the few-shot strategies ([N, N + 1000) without the device's top and bottom
10 %). The splits are the ones the README's few-shot tables use (``--kl-seeds`` 1 / 1 / 2).

This is a reference ceiling, not a strict bound: what all three families miss is mostly
measurement noise and near-ties among the test set's latencies. The "ceiling" column is the one
family with the best mean over splits of a space (not the best family per device, which would
choose on the test set).

Three more ridge columns (:data:`NOISE`) say whether more of the device's data could help:

- a learning curve: ridge on a random quarter and half of [0, N) beside the whole of it; where
  Spearman no longer rises with 4x the data, the rest is not a shortage of measurements;
- ``in-sample``: ridge fitted to [0, N) *and the scored test set itself*, so it has seen every
  latency it ranks. Not a result of any kind (it is scored on its training data): where even it
  stays below a goal, no model of the architecture alone ranks that device's test set to that goal
  without memorising its measurement noise.

    python benchmarks/fewshot_ceiling.py help-nb201 help-fbnet help-ofa-mbv3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgeperf as ep

from _help_protocol import protocol_rows
from fewshot_unseen import build_splits, oracle_scores, test_set

RESULTS = Path(__file__).parent / "results"
MODELS = ("xgboost", "ridge", "mlp")
#: Shares of [0, N) of the ridge learning curve (1.0 is the "ridge" column).
CURVE = (0.25, 0.5)
NOISE = (*(f"ridge@{f:g}" for f in CURVE), "ridge in-sample")
#: Kernighan-Lin restarts per table, as in the README's fewshot_unseen commands.
KL_SEEDS = {"help-nb201": 1, "help-fbnet": 1, "help-ofa-mbv3": 2}


def ceilings(data: str) -> dict:
    table = ep.datasets.load(data)
    wide, archs, devices, _, pool_rows, test_rows = protocol_rows(table)
    splits = build_splits(table, wide, devices, pool_rows, ("kl", "type"), range(KL_SEEDS.get(data, 1)))
    tests = {d: test_set(wide, archs, test_rows, d) for d in sorted({d for sp in splits for d in sp["test"]})}
    by_model = {m: oracle_scores(table, wide, archs, pool_rows, tests, model=m) for m in MODELS}
    rng = np.random.default_rng(0)
    for f in CURVE:  # the same draw of the pool for every device: a share of the architectures
        rows = np.sort(rng.choice(pool_rows, int(f * len(pool_rows)), replace=False))
        by_model[f"ridge@{f:g}"] = oracle_scores(table, wide, archs, rows, tests, model="ridge")
    by_model["ridge in-sample"] = oracle_scores(table, wide, archs, pool_rows, tests, model="ridge", in_sample=True)
    columns = (*MODELS, *NOISE)
    per_device = {d: {m: by_model[m][d] for m in columns} for d in tests}
    for dev, row in per_device.items():
        print(f"{data} {dev:>16s} " + "  ".join(f"{m} {v:.3f}" for m, v in row.items()), flush=True)
    rows = [{"name": sp["name"], "test": sp["test"], "cross_rho": sp["cross_rho"],
             "mean": {m: float(np.mean([per_device[d][m] for d in sp["test"]])) for m in columns}} for sp in splits]
    mean = {m: float(np.mean([r["mean"][m] for r in rows])) for m in columns}
    best = max(MODELS, key=mean.get)
    return {"data": data, "splits": rows, "per_device": per_device, "mean_over_splits": mean,
            "worst_split": {m: float(min(r["mean"][m] for r in rows)) for m in columns}, "ceiling_model": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="built-in names (help-nb201, help-fbnet, help-ofa-mbv3)")
    ap.add_argument("--out", default=str(RESULTS / "fewshot_ceiling.json"))
    args = ap.parse_args()
    started = time.perf_counter()
    report = {"command": "python benchmarks/fewshot_ceiling.py " + " ".join(args.data), "results": {}}
    for data in args.data:
        r = report["results"][data] = ceilings(data)
        print(f"\n{data}: Spearman of per-device models trained on the device's own range (ceiling: {r['ceiling_model']})")
        columns = (*MODELS, *NOISE)
        print(f"{'split':<16}{'x-rho':>7}" + "".join(f"{m:>16}" for m in columns))
        for row in r["splits"]:
            print(f"{row['name']:<16}{row['cross_rho']:>7.2f}" + "".join(f"{row['mean'][m]:>16.3f}" for m in columns))
        print(f"{'mean':<23}" + "".join(f"{r['mean_over_splits'][m]:>16.3f}" for m in columns))
        print(f"{'worst split':<23}" + "".join(f"{r['worst_split'][m]:>16.3f}" for m in columns), flush=True)
    report["seconds"] = time.perf_counter() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
