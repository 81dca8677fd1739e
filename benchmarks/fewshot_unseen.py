"""Few-shot adaptation to devices unlike the training devices: adversarial splits, HELP's protocol.

Protocol (``_help_protocol.py``): training devices see only indices [0, N) plus the reference
architectures; a target gets ``n`` measurements (n = 5: the first 5 HELP reference architectures;
10: all 10; 20: the 10 plus 10 random architectures of [0, N), one draw per seed); the test set is
[N, N + 1000) without the target's top and bottom 10% latencies; the metric is Spearman.

Splits (``_splits.py``), built on the built-in public tables:
  kl   : least-correlated bisections (Kernighan-Lin on the device rank-correlation graph, as
         NASFLAT builds its cross-family tasks), several seeds, either half training;
  type : leave-one-hardware-type-out (GPUs, server CPUs, phones; OFA has only GPUs, so there the
         type is the GPU model, all its batch sizes together);
Synthetic devices (``edgeperf.datasets.synthetic``, inside ``nnls+synthetic``) are never scored.
``--extra-train TABLE`` (e.g. ``zoo-fbnet``, this machine's runtimes): that table's devices join
every split's training, on the same training architectures; they are never scored either.

Reference ceiling ("oracle" column): for every test device, a per-device XGBoost
(``PerDevicePredictor`` with the library defaults: one-hot encoding, 500 trees) trained on that
device's own full range [0, N) (900 or 4000 measured architectures) and scored on the same test set.
What it misses is mostly measurement noise and near-ties among the test set's latencies. It is not a
strict bound: a few-shot model that transfers structure can beat it. ``fewshot_ceiling.py`` scores
the same ceiling with ridge and MLP per-device models too (ridge is the highest).

    python benchmarks/fewshot_unseen.py help-nb201 help-fbnet help-ofa-mbv3 --seeds 3
    python benchmarks/fewshot_unseen.py help-fbnet --extra-train zoo-fbnet --strategies stack --tag _zoo
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgeperf as ep
from edgeperf import metrics

from _help_protocol import N_TRAIN, TEST_SIZE, TRIM_FRACTION, fitted_joint, joint_model_params, protocol_rows
from _splits import cross_correlation, hardware_type_splits, least_correlated_bisections, rank_correlations

RESULTS = Path(__file__).parent / "results"
N_MEASUREMENTS = (5, 10, 20)
N_REFERENCE = 10
STRATEGIES = ("nnls+bayes", "nnls", "bayes", "nnls+synthetic")


def hardware_type(device: str) -> str:
    spec = ep.datasets.public_devices().get(device)
    return spec.kind if spec is not None and spec.kind else "unknown"


def build_splits(table, wide, devices, pool_rows, kinds, kl_seeds):
    corr = rank_correlations(wide.iloc[pool_rows][devices].to_numpy())
    out = []
    if "kl" in kinds:
        for k, (tr, te) in enumerate(least_correlated_bisections(devices, corr, seeds=kl_seeds)):
            out.append({"name": f"kl{k}", "train": tr, "test": te, "cross_rho": cross_correlation(tr, te, devices, corr)})
    if "type" in kinds:
        types = {hardware_type(d) for d in devices}
        type_of = hardware_type if len(types) > 1 else ep.datasets.hardware_family
        for t, tr, te in hardware_type_splits(devices, type_of):
            out.append({"name": f"type:{t}", "train": tr, "test": te, "cross_rho": cross_correlation(tr, te, devices, corr)})
    return out


def adapt_sets(refs, pool, n, seed):
    rng = np.random.default_rng(seed)
    extra = list(rng.choice([a for a in pool if a not in set(refs)], max(0, n - N_REFERENCE), replace=False))
    return list(refs[: min(n, N_REFERENCE)]) + extra


def oracle_scores(table, wide, archs, pool_rows, test_sets, model="xgboost", in_sample=False):
    """Spearman of a per-device ``model`` trained on the device's own ``pool_rows``, on each
    device's test set; ``in_sample``: trained on that test set too (a noise ceiling, not a score)."""
    out = {}
    for dev, (te, yt) in test_sets.items():
        y = wide[dev].to_numpy()[pool_rows]
        ok = np.isfinite(y)
        sub = table.select(devices=[dev], archs=set(archs[pool_rows][ok]) | (set(te) if in_sample else set()))
        p = ep.predictors.PerDevicePredictor(model=model).fit(sub)
        out[dev] = metrics.spearman(yt, p.predict(te, device=dev))
    return out


def test_set(wide, archs, test_rows, dev):
    """(test archs, their latencies) of ``dev``: the test range without its top and bottom 10%."""
    y = wide[dev].to_numpy()[test_rows]
    ok = np.isfinite(y)
    lo, hi = np.quantile(y[ok], [TRIM_FRACTION, 1 - TRIM_FRACTION])
    keep = ok & (y >= lo) & (y <= hi)
    return list(archs[test_rows][keep]), y[keep]


def run(data, kinds, seeds, kl_seeds, strategies, max_splits=None, model_params=None, out=None, cache=None,
        oracle=True, extra_train=()):
    """Score ``strategies`` on every split; with ``out``, the JSON so far is rewritten after each split.
    ``extra_train``: names of tables whose devices join every split's training (never scored)."""
    table = ep.datasets.load(data)
    extra = [ep.datasets.load(name) for name in extra_train]
    space = table.space
    n = N_TRAIN[space]
    wide, archs, devices, refs, pool_rows, test_rows = protocol_rows(table)
    pool = list(archs[pool_rows])
    train_archs = set(pool) | set(refs)
    splits = build_splits(table, wide, devices, pool_rows, kinds, kl_seeds)[:max_splits]
    tests = {d: test_set(wide, archs, test_rows, d) for d in sorted({d for sp in splits for d in sp["test"]})}
    ceiling = oracle_scores(table, wide, archs, pool_rows, tests) if oracle else {}
    results = []
    for sp in splits:
        t0 = time.perf_counter()
        sub = ep.datasets.MeasurementTable.concat(
            [table.select(devices=sp["train"], archs=train_archs), *[x.select(archs=train_archs) for x in extra]])
        p = fitted_joint(sub, model_params, cache)
        scores = {}  # strategy -> n -> device -> [rho per seed]
        for dev in sp["test"]:
            y_all = wide[dev]
            te, yt = tests[dev]
            for n_meas in N_MEASUREMENTS:
                for seed in range(seeds if n_meas > N_REFERENCE else 1):
                    ad = adapt_sets(refs, pool, n_meas, seed)
                    vals = y_all.loc[ad].to_numpy()
                    for s in strategies:
                        name = f"{dev}@{s}@{n_meas}@{seed}"
                        p.adapt(name, archs=ad, values=vals, strategy=s)
                        pred = p.predict(te, device=name)
                        scores.setdefault(s, {}).setdefault(n_meas, {}).setdefault(dev, []).append(
                            metrics.spearman(yt, pred))
        per_dev = {s: {str(k): {d: float(np.mean(v)) for d, v in byd.items()} for k, byd in byn.items()}
                   for s, byn in scores.items()}
        mean = {s: {k: float(np.mean(list(v.values()))) for k, v in byn.items()} for s, byn in per_dev.items()}
        orc = {d: ceiling[d] for d in sp["test"] if d in ceiling}
        results.append({**sp, "per_device": per_dev, "mean": mean, "seconds": time.perf_counter() - t0,
                        "oracle_per_device": orc, "oracle": float(np.mean(list(orc.values()))) if orc else None})
        print(f"{data} {sp['name']:>12s} (cross rho {sp['cross_rho']:.2f}, test {len(sp['test'])}): "
              + "  ".join(f"{s} {mean[s]['20']:.3f}" for s in strategies)
              + (f"  oracle {results[-1]['oracle']:.3f}" if orc else ""), flush=True)
        res = _summary(results, strategies)
        res.update(data=data, space=space, seeds=seeds, kl_seeds=list(kl_seeds), model_params=model_params,
                   extra_train=list(extra_train),
                   protocol={"n_train_archs": n, "test_size": TEST_SIZE, "trim": TRIM_FRACTION},
                   splits_planned=[x["name"] for x in splits])
        if out is not None:
            out.write_text(json.dumps(res, indent=1))
    return res


def _summary(results, strategies):
    summary = {s: {str(k): float(np.mean([r["mean"][s][str(k)] for r in results])) for k in N_MEASUREMENTS}
               for s in strategies}
    worst = {s: float(min(r["mean"][s]["20"] for r in results)) for s in strategies}
    out = {"splits": results, "mean_over_splits": summary, "worst_split_20": worst}
    if all(r["oracle"] is not None for r in results):
        out["oracle_mean_over_splits"] = float(np.mean([r["oracle"] for r in results]))
        out["oracle_worst_split"] = float(min(r["oracle"] for r in results))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="built-in names (help-nb201, help-fbnet, help-ofa-mbv3)")
    ap.add_argument("--splits", nargs="+", choices=["kl", "type"], default=["kl", "type"])
    ap.add_argument("--seeds", type=int, default=3, help="draws of the 10 random target archs (n = 20)")
    ap.add_argument("--kl-seeds", type=int, default=3, help="Kernighan-Lin restarts per space")
    ap.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    ap.add_argument("--max-splits", type=int, default=None, help="only the first few splits (while iterating)")
    ap.add_argument("--trees", type=int, default=None, help="joint-model trees (default: the library's)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--cache", default=None, help="folder to save fitted joint models in and reuse them from")
    ap.add_argument("--no-oracle", action="store_true", help="skip the per-device ceiling")
    ap.add_argument("--extra-train", nargs="*", default=[], help="tables whose devices join every split's training")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    RESULTS.mkdir(parents=True, exist_ok=True)
    mp = joint_model_params(args.trees)
    for data in args.data:
        out = RESULTS / f"fewshot_unseen_{data}{args.tag}.json"
        res = run(data, args.splits, args.seeds, range(args.kl_seeds), args.strategies, args.max_splits, mp, out,
                  args.cache, not args.no_oracle, args.extra_train)
        t = Table(title=f"{data}: Spearman on unseen devices, adversarial splits (seeds {args.seeds})")
        t.add_column("split")
        t.add_column("test devices")
        t.add_column("x-rho", justify="right")
        t.add_column("oracle", justify="right")
        for s in args.strategies:
            t.add_column(f"{s} @5/10/20", justify="right")

        def fmt(x):
            return "-" if x is None else f"{x:.3f}"

        for r in res["splits"]:
            t.add_row(r["name"], ",".join(r["test"]), f"{r['cross_rho']:.2f}", fmt(r["oracle"]),
                      *["/".join(f"{r['mean'][s][str(k)]:.3f}" for k in N_MEASUREMENTS) for s in args.strategies])
        t.add_row("MEAN", "", "", fmt(res.get("oracle_mean_over_splits")),
                  *["/".join(f"{res['mean_over_splits'][s][str(k)]:.3f}" for k in N_MEASUREMENTS)
                    for s in args.strategies])
        t.add_row("WORST@20", "", "", fmt(res.get("oracle_worst_split")),
                  *[f"{res['worst_split_20'][s]:.3f}" for s in args.strategies])
        Console(width=250).print(t)
        print("wrote", out)


if __name__ == "__main__":
    main()
