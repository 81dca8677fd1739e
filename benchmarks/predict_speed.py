"""Prediction speed of a fitted JointPredictor, per space (issue 8 step 5 goals in brackets):

- ``adapt_s``: ``adapt`` from HELP's 20 measurements (median of 5) [<= 1 s];
- ``first_predict_ms``: the first ``predict`` of an adapted device, one string and a batch of
  1,000 strings [<= 100 ms];
- ``warm_single_us``: median of one-string calls after that, trained and adapted device [<= 20 us];
- ``batch_rows_per_s``: pre-encoded rows per second in one call (1M rows on NB-201, 100k on
  FBNet / OFA), trained and adapted device [>= 1 M/s NB-201, >= 200 k/s FBNet / OFA];
- ``fit_s``: the fit itself (HELP's training devices, indices [0, N)).

Timings on a shared machine drift; run it alone for numbers to compare.

    python benchmarks/predict_speed.py help-nb201 help-fbnet help-ofa-mbv3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgeperf as ep

from _help_protocol import HELP_TRAIN_DEVICES, N_TRAIN

N_SINGLE = 5000
BATCH_ROWS = {"nasbench201": 1_000_000, "fbnet": 100_000, "ofa_mbv3": 100_000}
RESULTS = Path(__file__).parent / "results"


def _timed(fn, repeats=1):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(data: str) -> dict:
    table = ep.datasets.load(data)
    space = ep.spaces.get(table.space)
    wide = table.wide()
    n = N_TRAIN[space.name]
    devices = [c for c in wide.columns if c != "arch_index"]
    train = [d for d in HELP_TRAIN_DEVICES if d in devices] or devices[::2]
    target = next(d for d in devices if d not in train)
    refs = ep.predictors.reference_archs(space.name)
    pool = list(wide.index[wide["arch_index"] < n])
    fit_s, p = _timed(lambda: ep.JointPredictor().fit(table.select(devices=train, archs=set(pool) | set(refs))))
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
    singles = {}
    for dev in (train[0], "new0"):
        archs = space.sample(N_SINGLE, seed=1)
        p.predict(archs[0], device=dev)
        times = np.empty(N_SINGLE)
        for i, a in enumerate(archs):
            t0 = time.perf_counter()
            p.predict(a, device=dev)
            times[i] = time.perf_counter() - t0
        singles[dev] = float(np.median(times) * 1e6)
    rows = BATCH_ROWS[space.name]
    X = space.encode(space.sample(min(rows, 20_000), seed=3))
    X = X[np.random.default_rng(0).integers(0, len(X), rows)]
    batch = {}
    for dev in (train[0], "new0"):
        p.predict(X[:10], device=dev)
        s, out = _timed(lambda: p.predict(X, device=dev), repeats=3)
        assert out.shape == (rows,)
        batch[dev] = rows / s
    return {
        "data": data, "space": space.name, "train_devices": train, "target_device": target, "fit_s": fit_s,
        "adapt_s_median_of_5": float(np.median(adapt_times)), "first_predict_one_ms": first_one_s * 1e3,
        "first_predict_1000_ms": first_batch_s * 1e3, "warm_single_us_trained": singles[train[0]],
        "warm_single_us_adapted": singles["new0"], "batch_rows": rows,
        "batch_rows_per_s_trained": batch[train[0]], "batch_rows_per_s_adapted": batch["new0"],
        "adapted_basis_used": int(np.count_nonzero(getattr(p.adapters_["new0"], "weights_", [1]))),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    results = [run(d) for d in args.data]
    cols = [("fit_s", "fit s", "{:.1f}"), ("adapt_s_median_of_5", "adapt s [<=1]", "{:.3f}"),
            ("first_predict_one_ms", "1st predict 1 ms [<=100]", "{:.1f}"),
            ("first_predict_1000_ms", "1st predict 1k ms", "{:.1f}"),
            ("warm_single_us_trained", "single us trained [<=20]", "{:.1f}"),
            ("warm_single_us_adapted", "single us adapted [<=20]", "{:.1f}"),
            ("batch_rows_per_s_trained", "batch/s trained", "{:,.0f}"),
            ("batch_rows_per_s_adapted", "batch/s adapted", "{:,.0f}")]
    t = Table(title="JointPredictor speed (shared 2-core VM: timings drift)")
    t.add_column("space")
    for _, c, _ in cols:
        t.add_column(c, justify="right")
    for r in results:
        t.add_row(r["space"], *[f.format(r[k]) for k, _, f in cols])
    Console(width=200).print(t)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"predict_speed_{'_'.join(r['space'] for r in results)}.json"
    out.write_text(json.dumps(results, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
