"""Per-device prediction accuracy with ample training data, on the built-in tables.

Protocol (nn-Meter-style "ample data", HELP's index split):
  train: architectures with ``arch_index`` in [0, TRAIN_N) of every device, plus
         HELP's 10 reference architectures (the JointPredictor's hardware
         signature needs them measured; the per-device models get the same
         rows so both see identical data);
  test : ``arch_index`` in [TRAIN_N, TRAIN_N + TEST_N), reference archs removed.

Models (``--models``):
  xgboost / mlp / ridge : :class:`PerDevicePredictor` (one model per device);
  joint                 : :class:`JointPredictor` fitted on all devices at once.

Metrics per device (``edgeperf.metrics``): +-5% and +-10% accuracy, MAPE (%),
RMSE (ms), Spearman, Kendall tau-b. Phones that report whole milliseconds
(every value an integer) cannot reach nn-Meter's 99%-within-10% bar: a 6 ms
cell measured as 6 may really be 5.5..6.5 ms. For those devices the script
also reports ``acc_10_or_half_ms``: the fraction within +-max(10%, 0.5 ms),
i.e. allowing the half-millisecond quantisation step (and, for scale,
``acc_10_or_1ms``: +-max(10%, 1 ms)). They are separate, labelled columns,
never mixed into ``acc_10``; ``mean`` of them averages the integer-ms devices only.

NAS-Bench-201 "dead" cells: when no path of non-``none`` operations links the
cell input to its output node, the cell outputs zeros (341 of 15,625 cells;
the brief's "output node gets only none inputs" in the transitive sense).
pixel3 times 283 of them under 1 ms (compute pruned), which makes relative
errors explode on a handful of tiny values. For NB201 every device is also
scored without dead cells (``per_device_without_dead``).

    OMP_NUM_THREADS=1 python benchmarks/predictors_accuracy.py
    python benchmarks/predictors_accuracy.py --datasets help-nb201 --models xgboost ridge --train-n 900
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import edgeperf as ep
from edgeperf import metrics

RESULTS = Path(__file__).parent / "results"
DATASETS = ("help-nb201", "help-fbnet", "help-ofa-mbv3")
PER_DEVICE_MODELS = ("xgboost", "mlp", "ridge")
MODELS = PER_DEVICE_MODELS + ("joint",)
#: nn-Meter's published bar: 99% of predictions within +-10%.
NN_METER_BAR = 0.99
#: Half of the whole-millisecond quantisation step of phones that report integers.
HALF_MS = 0.5
#: One whole quantisation step, reported alongside for scale.
ONE_MS = 1.0
NB201 = "nasbench201"


def dead_nb201_cell(arch: str) -> bool:
    """True when no path of non-``none`` ops connects the cell input to its output (node 3)."""
    nodes = [[op.split("~")[0] for op in group.strip("|").split("|")] for group in arch.split("+")]
    alive1 = nodes[0][0] != "none"
    alive2 = nodes[1][0] != "none" or (nodes[1][1] != "none" and alive1)
    alive3 = nodes[2][0] != "none" or (nodes[2][1] != "none" and alive1) or (nodes[2][2] != "none" and alive2)
    return not alive3


def integer_ms(values: np.ndarray) -> bool:
    """Every measured value a whole number of milliseconds (a phone's timer resolution)."""
    v = values[np.isfinite(values)]
    return bool(v.size) and bool(np.all(v == np.round(v)))


def acc_within_or_abs(y_true, y_pred, rel: float, abs_ms: float) -> float:
    """Fraction within +-max(rel * y, abs_ms)."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.mean(np.abs(p - t) <= np.maximum(rel * t, abs_ms)))


def score(y_true, y_pred, is_int: bool) -> dict:
    s = metrics.summary(y_true, y_pred)
    s["acc_10_or_half_ms"] = acc_within_or_abs(y_true, y_pred, metrics.TOLERANCE_10, HALF_MS) if is_int else None
    s["acc_10_or_1ms"] = acc_within_or_abs(y_true, y_pred, metrics.TOLERANCE_10, ONE_MS) if is_int else None
    return s


def mean_row(per_device: dict) -> dict:
    keys = [k for k in next(iter(per_device.values())) if k != "n"]
    out = {}
    for k in keys:
        vals = [v[k] for v in per_device.values() if v[k] is not None]
        vals = [x for x in vals if not (isinstance(x, float) and math.isnan(x))]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def make_predictor(model: str, seed: int, joint_trees: int | None = None):
    if model == "joint":
        return ep.JointPredictor(random_state=seed, model_params={"n_estimators": joint_trees} if joint_trees else None)
    return ep.predictors.PerDevicePredictor(model=model, random_state=seed)


def run_dataset(name: str, models, train_n: int, test_n: int, seed: int, joint_trees: int | None = None) -> dict:
    table = ep.datasets.load(name)
    wide = table.wide()
    idx = wide["arch_index"].to_numpy()
    archs = np.array(wide.index, dtype=object)
    devices = [c for c in wide.columns if c != "arch_index"]
    refs = set(ep.predictors.reference_archs(table.space))
    is_ref = np.array([a in refs for a in archs])
    train_archs = set(archs[idx < train_n]) | refs
    test_rows = np.flatnonzero((idx >= train_n) & (idx < train_n + test_n) & ~is_ref)
    test_archs = list(archs[test_rows])
    train = table.select(archs=train_archs)
    int_devs = [d for d in devices if integer_ms(wide[d].to_numpy())]
    dead = np.array([dead_nb201_cell(a) for a in test_archs]) if table.space == NB201 else None

    res = {
        "space": table.space,
        "n_devices": len(devices),
        "train_n": train_n,
        "test_n": test_n,
        "n_train_archs": len(train_archs),
        "n_test_archs": len(test_archs),
        "integer_ms_devices": int_devs,
        "models": {},
    }
    if dead is not None:
        res["n_test_dead_cells"] = int(dead.sum())
    for model in models:
        t0 = time.perf_counter()
        pred = make_predictor(model, seed, joint_trees).fit(train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        per_dev, per_dev_clean, dead_only = {}, {}, {}
        for d in devices:
            y = wide[d].to_numpy()[test_rows]
            ok = np.isfinite(y)
            yhat = pred.predict([a for a, m in zip(test_archs, ok) if m], device=d)
            per_dev[d] = score(y[ok], yhat, d in int_devs)
            if dead is not None:
                keep = ~dead[ok]
                per_dev_clean[d] = score(y[ok][keep], yhat[keep], d in int_devs)
                if (~keep).any():
                    dead_only[d] = {
                        "n": int((~keep).sum()),
                        "measured_ms_median": float(np.median(y[ok][~keep])),
                        "predicted_ms_median": float(np.median(yhat[~keep])),
                        "mape": metrics.mape(y[ok][~keep], yhat[~keep]),
                    }
        entry = {
            "fit_s": fit_s,
            "predict_s": time.perf_counter() - t0,
            "per_device": per_dev,
            "mean": mean_row(per_dev),
            "worst_acc_10": min(per_dev, key=lambda d: per_dev[d]["acc_10"]),
            "worst_spearman": min(per_dev, key=lambda d: per_dev[d]["spearman"]),
            "devices_reaching_nn_meter_bar": [d for d in devices if per_dev[d]["acc_10"] >= NN_METER_BAR],
        }
        if dead is not None:
            entry["per_device_without_dead"] = per_dev_clean
            entry["mean_without_dead"] = mean_row(per_dev_clean)
            entry["dead_cells_only"] = dead_only
        res["models"][model] = entry
        print(f"[{name}] {model}: fit {fit_s:.1f}s, predict {entry['predict_s']:.1f}s", flush=True)
    return res


def _fmt(v, pct=False):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def print_tables(name: str, res: dict) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        Console = Table = None
    cols = ["device", "MAPE %", "RMSE ms", "+-5 %", "+-10 %", "+-max(10%,0.5ms) % [int-ms only]",
            "+-max(10%,1ms) % [int-ms only]", "Spearman", "Kendall"]

    def row(dev, m):
        return [dev, f"{m['mape']:.2f}", f"{m['rmse']:.3f}", _fmt(m["acc_5"], True), _fmt(m["acc_10"], True),
                _fmt(m["acc_10_or_half_ms"], True), _fmt(m["acc_10_or_1ms"], True), _fmt(m["spearman"]),
                _fmt(m["kendall"])]

    for model, e in res["models"].items():
        rows = [row(d, m) for d, m in e["per_device"].items()] + [row("MEAN", e["mean"])]
        if "mean_without_dead" in e:
            rows.append(row("MEAN w/o dead cells", e["mean_without_dead"]))
            if "pixel3" in e["per_device_without_dead"]:
                rows.append(row("pixel3 w/o dead cells", e["per_device_without_dead"]["pixel3"]))
        title = (f"{name} {model}: train idx [0,{res['train_n']}) + refs ({res['n_train_archs']} archs), "
                 f"test idx [{res['train_n']},{res['train_n'] + res['test_n']}) w/o refs ({res['n_test_archs']}); "
                 f"fit {e['fit_s']:.1f}s")
        if Table is None:
            print(title)
            print(" | ".join(cols))
            for r in rows:
                print(" | ".join(r))
            continue
        t = Table(title=title)
        for c in cols:
            t.add_column(c, justify="left" if c == "device" else "right")
        for r in rows:
            t.add_row(*r)
        Console(width=180).print(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--models", nargs="+", default=["xgboost", "joint"], choices=MODELS)
    ap.add_argument("--train-n", type=int, default=900, help="train on arch_index in [0, N)")
    ap.add_argument("--test-n", type=int, default=1000, help="test on arch_index in [N, N + test_n)")
    ap.add_argument("--seed", type=int, default=0, help="random_state of every model")
    ap.add_argument("--joint-trees", type=int, default=None, help="trees of the joint model (default: the predictor's)")
    ap.add_argument("--out", type=Path, default=RESULTS / "predictors_accuracy.json")
    args = ap.parse_args()
    out = {"config": {"datasets": args.datasets, "models": args.models, "train_n": args.train_n,
                      "test_n": args.test_n, "seed": args.seed, "joint_trees": args.joint_trees, "nn_meter_bar_acc_10": NN_METER_BAR,
                      "half_ms_tolerance_for_integer_devices": HALF_MS,
                      "edgeperf_version": getattr(ep, "__version__", None)},
           "datasets": {}}
    for name in args.datasets:
        res = run_dataset(name, args.models, args.train_n, args.test_n, args.seed, args.joint_trees)
        out["datasets"][name] = res
        print_tables(name, res)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))  # after each dataset: partial results survive
    print("wrote", args.out)


if __name__ == "__main__":
    main()
