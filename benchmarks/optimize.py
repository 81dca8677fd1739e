"""Leave-device-out benchmark of ``edgeperf.optimize``: search and designer on devices that are
in no training data, adapted from 20 measurements.

Protocol, per space and split:

- the held-out devices are a whole hardware type (NB-201: the phones, or the server CPUs;
  FBNet: the phones; OFA: the V100 at every batch size); the joint predictor trains on the
  other devices (architectures ``arch_index < --train-archs`` plus the reference set), and
  the designer is trained on it *before* the held-out devices exist;
- each held-out device is then adapted from 20 true measurements (HELP's 10 reference
  architectures + 10 random ones of ``arch_index`` < N, N = 900 NB-201, 4,000 FBNet/OFA);
- budgets: five quantiles (10, 30, 50, 70, 90 %) of the device's *true* latency over the
  candidates (NB-201: all 15,625 cells; FBNet/OFA: measured architectures of the test range
  ``arch_index >= 4000``, so that every design's true latency is known);
- (a) share of designs whose true latency meets the budget; (b) regret = objective of the
  true optimum under the true latency minus the design's; (c) time per (device, budget)
  design, search vs designer.

NB-201's objective is CIFAR-10 accuracy from ``analog-nasbench`` (optional extra; required
here). FBNet/OFA use the ``synflow`` zero-cost proxy (regret in proxy units and as a share of
the candidates' proxy range). The rank correlation of every proxy with the NB-201 accuracy on
``--proxy-cells`` random cells is reported too. The search's default margin
(``edgeperf.optimize.DEFAULT_MARGIN``) was chosen from this script's margin sweep.

Timings are wall-clock on a shared 2-core VM: they drift with the other jobs on it.

Run: ``python benchmarks/optimize.py [--quick] [--spaces nb201,fbnet,ofa]``; writes
``benchmarks/results/optimize.json``.
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
from edgeperf.optimize import Designer, InfeasibleBudgetWarning, objectives, search

from _help_protocol import N_TRAIN

QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
#: "auto" = the library default: the calibrated predict_quantile(q=0.95) when the predictor has one.
MARGINS = ("auto", 0.0, 0.1, 0.2, 0.3, 0.4)
N_ADAPT_RANDOM = 10
SPLITS = {
    "nasbench201": {
        "phones": ["pixel3", "samsung_a50", "samsung_s7", "essential_ph_1"],
        "server-cpus": ["gold_6240", "silver_4114", "silver_4210r"],
    },
    "fbnet": {"phones": ["pixel2", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1"]},
    "ofa_mbv3": {"v100": ["v100_1", "v100_32", "v100_64"]},
}
DATASETS = {"nasbench201": "help-nb201", "fbnet": "help-fbnet", "ofa_mbv3": "help-ofa-mbv3"}
ALIASES = {"nb201": "nasbench201", "fbnet": "fbnet", "ofa": "ofa_mbv3"}


def _train(table, wide, space, held, train_archs):
    refs = ep.datasets.reference_archs(space)
    archs = set(wide.index[wide["arch_index"] < train_archs]) | set(refs)
    train_devices = [d for d in table.devices if d not in held]
    t = time.perf_counter()
    predictor = ep.JointPredictor().fit(table.select(devices=train_devices, archs=archs))
    return predictor, train_devices, time.perf_counter() - t


def _adapt(predictor, wide, space, held, seed):
    refs = ep.datasets.reference_archs(space)
    rng = np.random.default_rng(seed)
    pool = [a for a in wide.index[wide["arch_index"] < N_TRAIN[space]] if a not in set(refs)]
    for dev in held:
        ok = [a for a in pool if np.isfinite(wide.at[a, dev])]
        extra = [ok[i] for i in rng.choice(len(ok), N_ADAPT_RANDOM, replace=False)]
        archs = refs + extra
        predictor.adapt(dev, archs=archs, values=wide.loc[archs, dev].to_numpy(dtype=float))


def _score_designs(archs_by_cell, true_lat, score_of, budgets, cells):
    """within-budget flags and regrets of designs; cells = [(device, q)]."""
    within, regret = [], []
    for (dev, q), arch in zip(cells, archs_by_cell):
        lat, budget = true_lat[dev], budgets[(dev, q)]
        best = max(v for a, v in score_of.items() if lat.get(a, np.inf) <= budget)
        within.append(bool(lat[arch] <= budget))
        regret.append(float(best - score_of[arch]))
    return within, regret


def _summary(within, regret) -> dict:
    return {"within_budget_pct": 100.0 * float(np.mean(within)), "mean_regret": float(np.mean(regret)),
            "max_regret": float(np.max(regret)), "n_designs": len(within)}


def run_split(space, split, held, args, objective, candidates, seed=0) -> dict:
    table = ep.datasets.load(DATASETS[space])
    wide = table.wide()
    held = [d for d in held if d in table.devices]
    predictor, train_devices, fit_s = _train(table, wide, space, held, args.train_archs[space])
    print(f"[{space}/{split}] trained on {len(train_devices)} devices in {fit_s:.0f} s; held out {held}", flush=True)
    scores = objective.score(candidates, space=space)
    score_of = dict(zip(candidates, scores))
    designer_kwargs = {} if space == "nasbench201" else {"candidates": candidates}
    t = time.perf_counter()
    designer = Designer(synthetic_devices=args.synthetic, epochs=args.epochs).fit(
        predictor, objective=objective, **designer_kwargs)
    designer_fit_s = time.perf_counter() - t
    print(f"[{space}/{split}] designer trained in {designer_fit_s:.0f} s ({designer.training_['samples']} samples)",
          flush=True)
    _adapt(predictor, wide, space, held, seed)
    true_lat = {d: wide[d].dropna().to_dict() for d in held}
    budgets = {(d, q): float(np.quantile([true_lat[d][a] for a in candidates], q)) for d in held for q in QUANTILES}
    cells = [(d, q) for q in QUANTILES for d in held]
    cand = None if space == "nasbench201" else candidates

    out = {"held_out": held, "train_devices": train_devices, "predictor_fit_s": fit_s,
           "designer_fit_s": designer_fit_s, "designer_training": designer.training_, "search": {}}
    for margin in MARGINS:
        picks = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InfeasibleBudgetWarning)
            for q in QUANTILES:
                r = search(predictor, objective=objective, budget_ms={d: budgets[(d, q)] for d in held},
                           margin=margin, candidates=cand)
                picks.update({(d, q): r[d].arch for d in held})
        within, regret = _score_designs([picks[c] for c in cells], true_lat, score_of, budgets, cells)
        out["search"][f"margin={margin}" if isinstance(margin, str) else f"margin={margin:g}"] = _summary(within, regret)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfeasibleBudgetWarning)
        if space == "nasbench201":
            designs = [designer.design(device=d, budget_ms=budgets[(d, q)]) for d, q in cells]
        else:  # the designer's designs must be measured: decode, then take its best fitting pool member
            designs = [_designer_in_pool(designer, predictor, d, budgets[(d, q)], score_of) for d, q in cells]
    within, regret = _score_designs(designs, true_lat, score_of, budgets, cells)
    out["designer"] = _summary(within, regret)
    out["timing"] = _timing(predictor, designer, objective, held, budgets, cand, space)
    if space != "nasbench201":
        rng_scores = float(np.ptp(scores))
        for block in [out["designer"], *out["search"].values()]:
            block["mean_regret_pct_of_range"] = 100.0 * block["mean_regret"] / rng_scores
    return out


def _designer_in_pool(designer, predictor, device, budget, score_of):
    """FBNet/OFA: among the designer's top designs, none may be measured; the benchmark maps
    the designer's probabilities onto the measured pool instead (most probable fitting member)."""
    space = ep.spaces.get(designer.space_)
    logp = designer.log_probabilities(ep.optimize.device_features(predictor, device, designer.reference_archs_), budget)
    pool = list(score_of)
    idx = np.array([space.to_choices(a) for a in pool])
    loglik = sum(lp[idx[:, k]] for k, lp in enumerate(logp))
    bound = predictor.predict(pool, device=device) * (1 + ep.optimize.DEFAULT_MARGIN)
    fits = np.flatnonzero(bound <= budget)
    if not len(fits):
        return pool[int(np.argmin(bound))]
    return pool[int(fits[np.argmax(loglik[fits])])]


def _timing(predictor, designer, objective, held, budgets, cand, space) -> dict:
    dev = held[0]
    b = budgets[(dev, 0.5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfeasibleBudgetWarning)
        if space == "nasbench201":
            t = time.perf_counter()
            for _ in range(5):
                search(predictor, objective=objective, budget_ms=b, devices=[dev])
            search_s = (time.perf_counter() - t) / 5
            how = "exhaustive over 15,625 cells, predictor cache warm"
        else:  # a real search over the whole space with the proxy: fresh objective, no memo
            fresh = objectives.get(objective.name)
            t = time.perf_counter()
            search(predictor, objective=fresh, budget_ms=b, devices=[dev], n_evaluations=100)
            search_s = time.perf_counter() - t
            how = "regularised evolution, 100 proxy evaluations"
        n = 50
        t = time.perf_counter()
        for _ in range(n):
            designer.design(device=dev, budget_ms=b)
        design_s = (time.perf_counter() - t) / n
    return {"search_s_per_design": search_s, "search": how, "designer_s_per_design": design_s,
            "speedup": search_s / design_s}


def proxy_correlation(n_cells: int, accuracy) -> dict:
    space = ep.spaces.get("nasbench201")
    cells = space.sample(n_cells, seed=0, unique=True)
    acc = accuracy.score(cells, space=space)
    out = {}
    for name in ("naswot", "synflow", "snip", "macs"):
        obj = objectives.get(name)
        t = time.perf_counter()
        s = obj.score(cells, space=space)
        out[name] = {"spearman": float(metrics.spearman(acc, s)), "kendall": float(metrics.kendall(acc, s)),
                     "s_per_arch": (time.perf_counter() - t) / n_cells}
        print(f"[proxy] {name}: Spearman {out[name]['spearman']:.3f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="nb201,fbnet,ofa")
    ap.add_argument("--quick", action="store_true", help="smaller training and pools (a smoke run)")
    ap.add_argument("--proxy-cells", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=300, help="measured FBNet/OFA candidates scored by the proxy")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "optimize.json"))
    args = ap.parse_args()
    args.synthetic, args.epochs = (300, 20) if args.quick else (1500, 60)
    args.train_archs = {"nasbench201": 2000 if args.quick else 4000, "fbnet": 1000 if args.quick else 2000,
                        "ofa_mbv3": 1000 if args.quick else 2000}
    if args.quick:
        args.candidates, args.proxy_cells = min(args.candidates, 60), min(args.proxy_cells, 30)
    wanted = [ALIASES[s] for s in args.spaces.split(",")]
    report = {"command": "python benchmarks/optimize.py" + (" --quick" if args.quick else ""),
              "quantiles": QUANTILES, "margins": MARGINS, "results": {}}
    started = time.perf_counter()
    if "nasbench201" in wanted:
        accuracy = objectives.get("nb201-cifar10")  # needs the optional extra analog-nasbench
        report["proxy_correlation_nb201_cifar10"] = proxy_correlation(args.proxy_cells, accuracy)
        cells = list(ep.spaces.get("nasbench201").enumerate())
        for split, held in SPLITS["nasbench201"].items():
            report["results"][f"nasbench201/{split}"] = run_split("nasbench201", split, held, args, accuracy, cells)
            _print(f"nasbench201/{split}", report["results"][f"nasbench201/{split}"])
    for space in ("fbnet", "ofa_mbv3"):
        if space not in wanted:
            continue
        wide = ep.datasets.load(DATASETS[space]).wide()
        test = wide[wide["arch_index"] >= N_TRAIN[space]]
        for split, held in SPLITS[space].items():
            measured = test[[d for d in held if d in test.columns]].notna().all(axis=1)
            candidates = list(test.index[measured][: args.candidates])
            key = f"{space}/{split}"
            report["results"][key] = run_split(space, split, held, args, objectives.get("synflow"), candidates)
            report["results"][key]["n_candidates"] = len(candidates)
            _print(key, report["results"][key])
    report["seconds"] = time.perf_counter() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


def _print(key, r) -> None:
    print(f"\n== {key}: held out {', '.join(r['held_out'])}")
    print(f"{'method':<22}{'within budget':>15}{'mean regret':>13}{'max regret':>12}")
    rows = [(f"search {k}", v) for k, v in r["search"].items()] + [("designer", r["designer"])]
    for name, v in rows:
        print(f"{name:<22}{v['within_budget_pct']:>14.1f}%{v['mean_regret']:>13.3f}{v['max_regret']:>12.3f}")
    t = r["timing"]
    print(f"time per design: search {t['search_s_per_design'] * 1e3:.1f} ms ({t['search']}), designer "
          f"{t['designer_s_per_design'] * 1e3:.2f} ms, {t['speedup']:.0f}x (shared VM: timings drift)", flush=True)


if __name__ == "__main__":
    main()
