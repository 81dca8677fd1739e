"""Prediction speed of a fitted JointPredictor, per space (issue 8 step 5 goals in brackets):

- ``adapt_s``: ``adapt`` from HELP's 20 measurements (median of 5) [<= 1 s];
- ``first_predict_ms``: the first ``predict`` of an adapted device, one string and a batch of
  1,000 strings [<= 100 ms];
- ``warm_single_us``: median of one-string calls after that, trained and adapted device [<= 20 us];
- ``batch_rows_per_s``: pre-encoded rows per second in one call (1M rows on NB-201, 100k on
  FBNet / OFA), trained and adapted device [>= 1 M/s NB-201, >= 200 k/s FBNet / OFA];
- ``fit_s``: the fit itself (HELP's training devices, indices [0, N)).

Each single-call and batched figure is measured twice: with the exact fast path of
``predictors/_fasttrees.py`` (``*_fast``, what users get) and without it (``*_xgboost``: every
call through the full XGBoost booster, the code before it). ``exactness`` compares the two on
3,000 architectures never seen before (per device: max relative difference of the predictions
and their Spearman correlation): in chunks of 200 strings (the numpy walk) and on the batched
rows (the specialised XGBoost model). ``--trees`` sets the joint model's number of trees.
``load_average`` is the 1-minute load at the end of each space (other work on the machine).

Timings on a shared machine drift; run it alone for numbers to compare.

    python benchmarks/predict_speed.py help-nb201 help-fbnet help-ofa-mbv3
    python benchmarks/predict_speed.py help-fbnet help-ofa-mbv3 --trees 200
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import edgeperf as ep

from _help_protocol import HELP_TRAIN_DEVICES, N_TRAIN

N_SINGLE = 5000
#: Single calls timed without the fast path (each costs milliseconds).
N_SINGLE_XGBOOST = 300
N_EXACT = 3000
EXACT_CHUNK = 200
BATCH_ROWS = {"nasbench201": 1_000_000, "fbnet": 100_000, "ofa_mbv3": 100_000}
RESULTS = Path(__file__).parent / "results"


def _timed(fn, repeats=1):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _without_fast_path(p):
    """The same predictor evaluated through the full XGBoost booster only (the instance attribute
    shadows the method, so nothing global changes)."""
    p._fast_joint = lambda: None
    return p


def _with_fast_path(p):
    p.__dict__.pop("_fast_joint", None)
    return p


def _singles(p, space, devices, n) -> dict:
    out = {}
    for dev in devices:
        archs = space.sample(n, seed=1)
        p.predict(archs[0], device=dev)
        times = np.empty(n)
        for i, a in enumerate(archs):
            t0 = time.perf_counter()
            p.predict(a, device=dev)
            times[i] = time.perf_counter() - t0
        out[dev] = float(np.median(times) * 1e6)
    return out


def _batches(p, X, devices) -> tuple[dict, dict]:
    rate, preds = {}, {}
    for dev in devices:
        p.predict(X[:10], device=dev)
        s, out = _timed(lambda: p.predict(X, device=dev), repeats=3)
        assert out.shape == (len(X),)
        rate[dev], preds[dev] = len(X) / s, out
    return rate, preds


def _agreement(fast: np.ndarray, ref: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    return {"max_rel_diff": float(np.max(np.abs(fast - ref) / ref)), "spearman": float(spearmanr(fast, ref)[0]),
            "identical_share": float(np.mean(fast == ref))}


def run(data: str, trees: int | None) -> dict:
    table = ep.datasets.load(data)
    space = ep.spaces.get(table.space)
    wide = table.wide()
    n = N_TRAIN[space.name]
    devices = [c for c in wide.columns if c != "arch_index"]
    train = [d for d in HELP_TRAIN_DEVICES if d in devices] or devices[::2]
    target = next(d for d in devices if d not in train)
    refs = ep.predictors.reference_archs(space.name)
    pool = list(wide.index[wide["arch_index"] < n])
    params = {"n_estimators": trees} if trees else None
    fit_s, p = _timed(lambda: ep.JointPredictor(model_params=params).fit(
        table.select(devices=train, archs=set(pool) | set(refs))))
    rnd = list(np.random.default_rng(0).choice(pool, 10, replace=False))
    ad = refs + rnd
    values = wide.loc[ad, target].to_numpy()
    adapt_times = []
    for k in range(5):
        t0 = time.perf_counter()
        p.adapt(f"new{k}", archs=ad, values=values)
        adapt_times.append(time.perf_counter() - t0)
    others = space.sample(2000, seed=7)
    first_one_s, _ = _timed(lambda: p.predict(others[0], device="new0"))
    first_batch_s, _ = _timed(lambda: p.predict(others[1000:2000], device="new1"))
    timed_devices = (train[0], "new0")
    singles = _singles(p, space, timed_devices, N_SINGLE)
    rows = BATCH_ROWS[space.name]
    X = space.encode(space.sample(min(rows, 20_000), seed=3))
    X = X[np.random.default_rng(0).integers(0, len(X), rows)]
    batch, batch_pred = _batches(p, X, timed_devices)

    # Exactness on architectures never seen before: numpy walk (chunks) and specialised model (batch).
    exact_archs = space.sample(N_EXACT, seed=99)
    exact_devices = list(dict.fromkeys([*train[:3], "new0", "new1"]))
    walked = {d: np.concatenate([p.predict(exact_archs[i : i + EXACT_CHUNK], device=d)
                                 for i in range(0, N_EXACT, EXACT_CHUNK)]) for d in exact_devices}
    _without_fast_path(p)
    singles_xgb = _singles(p, space, timed_devices, N_SINGLE_XGBOOST)
    batch_xgb, batch_pred_xgb = _batches(p, X, timed_devices)
    reference = {d: p.predict(exact_archs, device=d) for d in exact_devices}
    _with_fast_path(p)
    exactness = {d: _agreement(walked[d], reference[d]) for d in exact_devices}
    exactness.update({f"{d} (batch)": _agreement(batch_pred[d], batch_pred_xgb[d]) for d in timed_devices})
    return {
        "data": data, "space": space.name, "n_trees": int(p.model_.n_estimators), "train_devices": train,
        "target_device": target, "fit_s": fit_s,
        "adapt_s_median_of_5": float(np.median(adapt_times)), "first_predict_one_ms": first_one_s * 1e3,
        "first_predict_1000_ms": first_batch_s * 1e3,
        "warm_single_us_trained_fast": singles[train[0]], "warm_single_us_adapted_fast": singles["new0"],
        "warm_single_us_trained_xgboost": singles_xgb[train[0]], "warm_single_us_adapted_xgboost": singles_xgb["new0"],
        "batch_rows": rows,
        "batch_rows_per_s_trained_fast": batch[train[0]], "batch_rows_per_s_adapted_fast": batch["new0"],
        "batch_rows_per_s_trained_xgboost": batch_xgb[train[0]], "batch_rows_per_s_adapted_xgboost": batch_xgb["new0"],
        "adapted_stack": dict(zip(getattr(p.adapters_["new0"], "candidates_", []),
                                  map(float, getattr(p.adapters_["new0"], "stack_weights_", [])))),
        "exactness": exactness,
        "max_rel_diff": max(e["max_rel_diff"] for e in exactness.values()),
        "min_spearman": min(e["spearman"] for e in exactness.values()),
        "load_average": os.getloadavg()[0],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+")
    ap.add_argument("--trees", type=int, default=None, help="trees of the joint model (default: the predictor's)")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    results = [run(d, args.trees) for d in args.data]
    cols = [("n_trees", "trees", "{}"), ("fit_s", "fit s", "{:.1f}"), ("adapt_s_median_of_5", "adapt s [<=1]", "{:.3f}"),
            ("first_predict_one_ms", "1st predict 1 ms [<=100]", "{:.1f}"),
            ("first_predict_1000_ms", "1st predict 1k ms", "{:.1f}")]
    for what, goal in (("single_us", "[<=20]"), ("batch_rows_per_s", "")):
        for dev in ("trained", "adapted"):
            fmt = "{:.1f}" if what == "single_us" else "{:,.0f}"
            label = "single us" if what == "single_us" else "batch/s"
            cols.append((f"{'warm_' if what == 'single_us' else ''}{what}_{dev}_xgboost", f"{label} {dev} before", fmt))
            cols.append((f"{'warm_' if what == 'single_us' else ''}{what}_{dev}_fast", f"{label} {dev} {goal}".strip(), fmt))
    cols += [("max_rel_diff", "max rel diff", "{:.1e}"), ("min_spearman", "min Spearman", "{:.6f}"),
             ("load_average", "load avg", "{:.1f}")]
    t = Table(title="JointPredictor speed (shared 2-core VM: timings drift)")
    t.add_column("space")
    for _, c, _ in cols:
        t.add_column(c, justify="right")
    for r in results:
        t.add_row(r["space"], *[f.format(r[k]) for k, _, f in cols])
    Console(width=200).print(t)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.trees}trees" if args.trees else ""
    out = RESULTS / f"predict_speed_{'_'.join(r['space'] for r in results)}{suffix}.json"
    out.write_text(json.dumps(results, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
