"""Calibration of ``predict_quantile`` on held-out hardware, and what it buys budget picks.

Split: leave-one-hardware-family-out (every batch size of one GPU held out together), the
joint model refitted per fold on the other families (its own leave-family-out uncertainty
calibration included). Per held-out device and seed, HELP's protocol: adapt from the 10
reference + 10 random architectures of indices [0, N); test on the 800 trimmed architectures
of [N, N + 1000).

Reported per space:
- coverage of the q=0.90 / 0.95 upper quantiles (share of test archs whose true latency is
  below the predicted quantile; nominal 0.90 / 0.95) and of the central 90% interval;
- budget picks, budget = the 30% quantile of the device's true test latencies: the share of
  picks truly under budget when picking by the point prediction and by the q=0.95 quantile
  (goal >= 0.95), and the price of the margin: recall (share of truly feasible archs still
  picked) and the loss of the best pick's MACs (a stand-in for accuracy) vs the best truly
  feasible arch, in percent.

    python benchmarks/uncertainty.py help-nb201 help-fbnet help-ofa-mbv3 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgeperf as ep

from _help_protocol import N_TRAIN
from _help_protocol import TEST_SIZE as N_TEST
from _help_protocol import TRIM_FRACTION as TRIM

N_RANDOM = 10
BUDGET_QUANTILE = 0.3
RESULTS = Path(__file__).parent / "results"


def run(data: str, seeds: int, max_folds: int | None = None) -> dict:
    table = ep.datasets.load(data)
    space = ep.spaces.get(table.space)
    n = N_TRAIN[space.name]
    wide = table.wide()
    idx = wide["arch_index"].to_numpy()
    archs = np.array(wide.index, dtype=object)
    refs = ep.predictors.reference_archs(space.name)
    devices = [c for c in wide.columns if c != "arch_index"]
    family = ep.datasets.hardware_family
    fams = sorted({family(d) for d in devices})[:max_folds]
    train_pool = archs[idx < n]
    test_rows = np.flatnonzero((idx >= n) & (idx < n + N_TEST))
    macs = space.cost_matrix(list(archs[test_rows]))[:, 0]
    pos = {a: i for i, a in enumerate(archs)}
    rows, scales = [], {}
    for fam in fams:
        train = [d for d in devices if family(d) != fam]
        t0 = time.perf_counter()
        p = ep.JointPredictor().fit(table.select(devices=train, archs=set(train_pool) | set(refs)))
        scales[fam] = {"scale": p.uncertainty_["scale"], "fit_s": time.perf_counter() - t0}
        for dev in [d for d in devices if family(d) == fam]:
            y_all = wide[dev].to_numpy()
            y = y_all[test_rows]
            lo, hi = np.quantile(y, [TRIM, 1 - TRIM])
            keep = (y >= lo) & (y <= hi)
            te, y, m = test_rows[keep], y[keep], macs[keep]
            test_archs = list(archs[te])
            budget = float(np.quantile(y, BUDGET_QUANTILE))
            for seed in range(seeds):
                rnd = list(np.random.default_rng(seed).choice(train_pool, N_RANDOM, replace=False))
                ad = list(refs) + rnd
                p.adapt("target", archs=ad, values=[y_all[pos[a]] for a in ad], overwrite=True)
                mean = p.predict(test_archs, device="target")
                q90 = p.predict_quantile(test_archs, device="target", q=0.90)
                q95 = p.predict_quantile(test_archs, device="target", q=0.95)
                q05 = p.predict_quantile(test_archs, device="target", q=0.05)
                feasible = y <= budget
                pick_mean, pick_q = mean <= budget, q95 <= budget
                best = m[feasible].max()
                best_q = m[pick_q & feasible].max() if (pick_q & feasible).any() else 0.0
                rows.append({
                    "family": fam, "device": dev, "seed": seed,
                    "coverage_q90": float(np.mean(y <= q90)), "coverage_q95": float(np.mean(y <= q95)),
                    "coverage_central90": float(np.mean((y >= q05) & (y <= q95))),
                    "picks_mean": int(pick_mean.sum()), "picks_q95": int(pick_q.sum()),
                    "under_budget_mean": float(np.mean(feasible[pick_mean])) if pick_mean.any() else float("nan"),
                    "under_budget_q95": float(np.mean(feasible[pick_q])) if pick_q.any() else float("nan"),
                    "recall_q95": float(np.mean(pick_q[feasible])),
                    "best_macs_loss_pct": float(100 * (1 - best_q / best)),
                    "loo_mape_pct": p.adapt_reports_["target"].loo_mape_pct,
                })
    keys = ["coverage_q90", "coverage_q95", "coverage_central90", "under_budget_mean", "under_budget_q95",
            "recall_q95", "best_macs_loss_pct"]
    summary = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    # picks pooled over devices: the share of all picked archs that truly meet their budget
    summary["pooled_under_budget_q95"] = float(
        np.nansum([r["under_budget_q95"] * r["picks_q95"] for r in rows]) / max(1, sum(r["picks_q95"] for r in rows)))
    summary["pooled_under_budget_mean"] = float(
        np.nansum([r["under_budget_mean"] * r["picks_mean"] for r in rows]) / max(1, sum(r["picks_mean"] for r in rows)))
    return {"data": data, "space": space.name, "seeds": seeds, "split": "family", "budget_quantile": BUDGET_QUANTILE,
            "summary": summary, "per_fold": scales, "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="built-in dataset names")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--max-folds", type=int, default=None, help="first N hardware families only (quick runs)")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    RESULTS.mkdir(parents=True, exist_ok=True)
    results = [run(d, args.seeds, args.max_folds) for d in args.data]
    t = Table(title=f"Uncertainty on held-out hardware families ({args.seeds} seeds; 20 measurements)")
    cols = [("coverage_q90", "cov q.90"), ("coverage_q95", "cov q.95"), ("coverage_central90", "cov 90% int"),
            ("under_budget_mean", "picks OK (mean)"), ("under_budget_q95", "picks OK (q.95)"),
            ("pooled_under_budget_q95", "pooled OK (q.95)"), ("recall_q95", "recall (q.95)"),
            ("best_macs_loss_pct", "best-MACs loss %")]
    t.add_column("space")
    for _, c in cols:
        t.add_column(c, justify="right")
    for r in results:
        t.add_row(r["space"], *[f"{r['summary'][k]:.3f}" for k, _ in cols])
    Console(width=170).print(t)
    out = RESULTS / f"uncertainty_{'_'.join(r['space'] for r in results)}.json"
    out.write_text(json.dumps(results, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
