"""Leave-device-out benchmark of proxy reuse on the built-in HELP tables.

For every device of a table in turn (the target), the other devices are the
proxies (variant ``all``), or the other devices minus the target's
same-hardware siblings at other batch sizes (variant ``no-siblings``, e.g.
1080ti_32 and 1080ti_256 are dropped when 1080ti_1 is the target). The target
is "measured" on n random architectures of HELP's training range
[0, N) (N = 900 for NAS-Bench-201, 4,000 otherwise); the test set is HELP's:
architecture indices [N, N + 1000) with the target's top and bottom 10%
latencies removed. Reported per n (0, 5, 10, 20, 50) and path:

- ``proxy``: never adapt (agreement_threshold = -1): the chosen proxy's order;
- ``adapted``: always adapt (once n >= 4): ridge on architecture features;
- ``auto``: what :func:`edgeperf.proxy.rank` does by default;

the Spearman of the predicted ranking with the true target latency on the
test set, the MAPE of the calibrated latency, and for a budget = the target's
median test latency, the share of candidates predicted to meet it that truly
do (``budget_precision``, margin 0 and ``auto``) and the share of the truly
meeting ones that were found (``budget_recall``). Several seeds; means over
devices and seeds. Data: HELP (Lee et al., NeurIPS 2021), see
``edgeperf/datasets/data/PROVENANCE.md``.

Run: ``python benchmarks/proxy_reuse.py [--quick] [--seeds 3]``; writes
``benchmarks/results/proxy_reuse.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgeperf.datasets import hardware_family

from _help_protocol import N_TRAIN, TEST_SIZE, TRIM_FRACTION

#: HELP's split per built-in table: architectures [0, N) may be measured, [N, N + TEST_SIZE) are the test set.
TRAIN_RANGE = {"help-nb201": N_TRAIN["nasbench201"], "help-fbnet": N_TRAIN["fbnet"], "help-ofa-mbv3": N_TRAIN["ofa_mbv3"]}
N_MEASUREMENTS = (0, 5, 10, 20, 50)
RESULTS = Path(__file__).resolve().parent / "results" / "proxy_reuse.json"


def siblings(device: str, devices) -> list[str]:
    """Other devices on the same hardware (a phone like essential_ph_1 has none)."""
    return [d for d in devices if d != device and hardware_family(d) == hardware_family(device)]


def evaluate(name: str, seeds: int, ns, variants, log) -> list[dict]:
    from scipy.stats import spearmanr

    import edgeperf as ep
    from edgeperf.proxy._sources import ProxySource

    table = ep.datasets.load(name)
    wide = table.wide("latency_ms")
    wide = wide.sort_values("arch_index")
    n_train = TRAIN_RANGE[name]
    part = wide[(wide["arch_index"] >= 0) & (wide["arch_index"] < n_train + TEST_SIZE)]
    source = ProxySource.from_wide(part, table.space)
    devices = source.devices
    train_archs = list(part.index[part["arch_index"] < n_train])
    test_all = part[part["arch_index"] >= n_train]
    rows = []
    for target in devices:
        truth_all = test_all[target].dropna()
        lo, hi = truth_all.quantile([TRIM_FRACTION, 1 - TRIM_FRACTION])
        test = truth_all[(truth_all >= lo) & (truth_all <= hi)]
        cands, truth = list(test.index), test.to_numpy()
        budget = float(np.median(truth))
        measured = [a for a in train_archs if np.isfinite(part.at[a, target])]
        for variant in variants:
            exclude = [target] + (siblings(target, devices) if variant == "no-siblings" else [])
            if variant == "no-siblings" and len(exclude) == 1:
                continue  # no siblings: identical to "all"
            for n in ns:
                for seed in range(1 if n == 0 else seeds):
                    rng = np.random.default_rng(1000 * seed + n)
                    t_archs = [measured[i] for i in rng.choice(len(measured), size=n, replace=False)]
                    t_vals = part.loc[t_archs, target].to_numpy()
                    common = dict(target_archs=t_archs, target_values=t_vals, proxies=source,
                                  exclude_devices=exclude, budget_ms=budget)
                    runs = {"proxy": ep.proxy.rank(cands, agreement_threshold=-1.0, **common)}
                    if n >= 4:
                        runs["adapted"] = ep.proxy.rank(cands, agreement_threshold=2.0, **common)
                        low = runs["proxy"].agreement.low
                        runs["auto"] = runs["adapted"] if low < ep.proxy.DEFAULT_AGREEMENT_THRESHOLD else runs["proxy"]
                    else:
                        runs["auto"] = runs["proxy"]
                    for path, r in runs.items():
                        position = np.empty(len(cands))
                        position[r.order] = np.arange(len(cands))
                        rho = float(spearmanr(position, truth).statistic)
                        row = {"table": name, "target": target, "variant": variant, "n": n, "seed": seed,
                               "path": path, "taken": r.path, "proxy": r.proxy, "spearman": rho,
                               "agreement": None if not np.isfinite(r.agreement.value) else r.agreement.value,
                               "agreement_low": r.agreement.low,
                               "mape": float(np.mean(np.abs(r.latency_ms - truth) / truth))}
                        for margin in (0.0, "auto"):
                            hits = r.within_budget(budget, margin=margin)
                            ok = truth[hits] <= budget
                            key = "budget" if margin == 0.0 else "budget_auto"
                            row[f"{key}_selected"] = int(len(hits))
                            row[f"{key}_precision"] = float(ok.mean()) if len(hits) else None
                            row[f"{key}_recall"] = float(ok.sum() / max((truth <= budget).sum(), 1))
                        rows.append(row)
        log(f"  {name} {target}: done")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    import pandas as pd

    frame = pd.DataFrame(rows)
    # "all" restricted to the targets that have siblings, so it compares like with like to "no-siblings"
    sib_targets = set(zip(frame.loc[frame["variant"] == "no-siblings", "table"],
                          frame.loc[frame["variant"] == "no-siblings", "target"]))
    in_sib = np.array([(t, d) in sib_targets for t, d in zip(frame["table"], frame["target"])], dtype=bool)
    same = frame[(frame["variant"] == "all").to_numpy() & in_sib]
    frame = pd.concat([frame, same.assign(variant="all@sibling-targets")], ignore_index=True)
    keys = ["table", "variant", "n", "path"]
    agg = frame.groupby(keys, sort=True).agg(
        spearman=("spearman", "mean"), spearman_min=("spearman", "min"), mape_median=("mape", "median"),
        budget_precision=("budget_precision", "mean"), budget_recall=("budget_recall", "mean"),
        budget_auto_precision=("budget_auto_precision", "mean"), budget_auto_recall=("budget_auto_recall", "mean"),
        adapted_share=("taken", lambda s: float((s == "adapted").mean())), runs=("spearman", "size"),
    ).reset_index()
    return agg.to_dict(orient="records")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="*", default=list(TRAIN_RANGE))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="NAS-Bench-201 only, 1 seed, n in 0, 10, 20")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    tables, seeds, ns = args.tables, args.seeds, N_MEASUREMENTS
    if args.quick:
        tables, seeds, ns = ["help-nb201"], 1, (0, 10, 20)
    started = time.perf_counter()
    rows = []
    partial = args.out.with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    for name in tables:
        rows += evaluate(name, seeds, ns, ("all", "no-siblings"), log=print)
        partial.write_text(json.dumps(rows, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    summary = summarise(rows)
    header = f"{'table':14} {'variant':20} {'n':>3} {'path':8} {'spearman':>8} {'min':>6} {'MAPE':>6} {'bud.prec':>8} {'bud.rec':>7} {'auto.prec':>9} {'adapt%':>6}"
    print(header)
    for s in summary:
        print(f"{s['table']:14} {s['variant']:20} {s['n']:>3} {s['path']:8} {s['spearman']:8.3f} {s['spearman_min']:6.3f} "
              f"{s['mape_median']:6.3f} {s['budget_precision']:8.3f} {s['budget_recall']:7.3f} "
              f"{s['budget_auto_precision']:9.3f} {100 * s['adapted_share']:6.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "protocol": {"train_range": TRAIN_RANGE, "test_size": TEST_SIZE, "trim_fraction": TRIM_FRACTION,
                     "n_measurements": list(ns), "seeds": seeds, "budget": "target's median test latency",
                     "agreement_threshold": __import__("edgeperf").proxy.DEFAULT_AGREEMENT_THRESHOLD},
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "runs": rows,
    }
    args.out.write_text(json.dumps(payload, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    partial.unlink(missing_ok=True)
    print(f"wrote {args.out} ({payload['seconds']} s)")


if __name__ == "__main__":
    main()
