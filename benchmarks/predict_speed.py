"""Prediction speed: batched pre-encoded NAS-Bench-201 rows per second and the
median latency of one single-string call, for a fitted JointPredictor.

    python benchmarks/predict_speed.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import edgeperf as ep

N_BATCH = 1_000_000
N_SINGLE = 20_000
RESULTS = Path(__file__).parent / "results"


def main():
    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    sub = table.select(archs=set(wide.index[wide["arch_index"] < 900]) | set(ep.predictors.reference_archs("nasbench201")))
    p = ep.JointPredictor().fit(sub)
    sp = ep.spaces.get("nasbench201")
    rng = np.random.default_rng(0)
    all_X = sp.encode(list(sp.enumerate()))
    X = all_X[rng.integers(0, len(all_X), N_BATCH)]
    dev = "gold_6240"
    t0 = time.perf_counter()
    p.predict(X[:10], device=dev)  # builds the device cache once
    warm_s = time.perf_counter() - t0
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        out = p.predict(X, device=dev)
        runs.append(time.perf_counter() - t0)
    batch_rate = N_BATCH / min(runs)
    archs = sp.sample(N_SINGLE, seed=1)
    times = np.empty(N_SINGLE)
    for i, a in enumerate(archs):
        t0 = time.perf_counter()
        p.predict(a, device=dev)
        times[i] = time.perf_counter() - t0
    # the raw model path, for comparison (what the cache saves)
    t0 = time.perf_counter()
    np.exp(p._predict_log(X[:100_000], dev))
    model_rate = 100_000 / (time.perf_counter() - t0)
    res = {
        "batch_rows": N_BATCH, "batch_s_min_of_5": min(runs), "batch_rows_per_s": batch_rate,
        "cache_build_s": warm_s, "single_median_us": float(np.median(times) * 1e6),
        "single_p90_us": float(np.percentile(times, 90) * 1e6), "xgboost_path_rows_per_s": model_rate,
        "output_shape": list(out.shape),
    }
    for k, v in res.items():
        print(f"{k:28s} {v}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "predict_speed.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
