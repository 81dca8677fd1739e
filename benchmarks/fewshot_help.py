"""Few-shot adaptation to unseen devices, following HELP's protocol exactly.

For each test device: the 10 HELP reference architectures plus 10 random
architectures from indices [0, N) are the only target measurements (N = 900
for NAS-Bench-201, 4,000 for FBNet / OFA); the test set is indices [N, N+1000)
with the top and bottom 10% latencies removed (800 archs); the metric is
Spearman. Training devices see only indices [0, N) (plus the reference archs).

Splits (``--split``):
  help   : HELP's training devices that the table has; test = every other device;
  lodo   : leave-one-device-out (train on all others);
  family : hold out the whole hardware family (every batch size of one GPU together).

Every strategy of ``JointPredictor.adapt`` is scored, averaged over seeds.

    python benchmarks/fewshot_help.py help-nb201 --seeds 3 --split help
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgeperf as ep
from edgeperf import metrics
from edgeperf.predictors import ADAPT_STRATEGIES

from _help_protocol import HELP_TRAIN_DEVICES as HELP_TRAIN
from _help_protocol import N_TRAIN
from _help_protocol import fitted_joint
from _help_protocol import joint_model_params
from _help_protocol import protocol_rows
from _help_protocol import TRIM_FRACTION as TRIM

N_RANDOM = 10
RESULTS = Path(__file__).parent / "results"


family = ep.datasets.hardware_family


def run(data: str, split: str, seeds: int, train_devices=None, test_devices=None, strategies=ADAPT_STRATEGIES,
        model_params=None, cache=None):
    table = ep.datasets.load(data) if data in ep.datasets.builtin_names() else ep.datasets.read(data)
    space = table.space
    n = N_TRAIN[space]
    wide, archs, devices, refs, pool_rows, test_rows = protocol_rows(table)
    train_pool = archs[pool_rows]
    pos = {a: i for i, a in enumerate(archs)}

    if split == "help":
        train = train_devices or [d for d in HELP_TRAIN if d in devices]
        if not train:  # OFA has none of HELP's NB201 devices: first device of each family
            fams = {}
            for d in devices:
                fams.setdefault(family(d), d)
            train = list(fams.values())
        tests = test_devices or [d for d in devices if d not in train]
        folds = [(train, tests)]
    elif split == "lodo":
        tests = test_devices or devices
        folds = [([d for d in devices if d != t], [t]) for t in tests]
    else:
        fams = sorted({family(d) for d in devices})
        folds = [([d for d in devices if family(d) != f], [d for d in devices if family(d) == f]) for f in fams]

    scores = {s: {} for s in strategies}
    fit_s = []
    for train, tests in folds:
        sub = table.select(devices=train, archs=set(train_pool) | set(refs))
        t0 = time.perf_counter()
        p = fitted_joint(sub, model_params, cache)
        fit_s.append(time.perf_counter() - t0)
        for dev in tests:
            y = wide[dev].to_numpy()
            te = test_rows
            lo, hi = np.quantile(y[te], [TRIM, 1 - TRIM])
            te = te[(y[te] >= lo) & (y[te] <= hi)]
            test_archs = list(archs[te])
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                rnd = list(rng.choice(train_pool, N_RANDOM, replace=False))
                ad = list(refs) + rnd
                vals = [y[pos[a]] for a in ad]
                for s in strategies:
                    name = f"{dev}@{s}@{seed}"
                    p.adapt(name, archs=ad, values=vals, strategy=s)
                    rho = metrics.spearman(y[te], p.predict(test_archs, device=name))
                    scores[s].setdefault(dev, []).append(rho)
    per_dev = {s: {d: float(np.mean(v)) for d, v in scores[s].items()} for s in strategies}
    overall = {s: float(np.mean(list(per_dev[s].values()))) for s in strategies}
    return {
        "data": data, "space": space, "split": split, "seeds": seeds, "n_train_archs": n,
        "folds": [{"train": tr, "test": te} for tr, te in folds],
        "mean_fit_s": float(np.mean(fit_s)), "per_device": per_dev, "overall": overall,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="built-in names or files")
    ap.add_argument("--split", choices=["help", "lodo", "family"], default="help")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-devices", nargs="*")
    ap.add_argument("--test-devices", nargs="*")
    ap.add_argument("--strategies", nargs="*", default=list(ADAPT_STRATEGIES))
    ap.add_argument("--trees", type=int, default=None, help="joint-model trees (default: the library's)")
    ap.add_argument("--cache", default=None, help="folder to save fitted joint models in and reuse them from")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    RESULTS.mkdir(parents=True, exist_ok=True)
    mp = joint_model_params(args.trees)
    for data in args.data:
        res = run(data, args.split, args.seeds, args.train_devices, args.test_devices, args.strategies, mp, args.cache)
        res["model_params"] = mp
        t = Table(title=f"{data}: few-shot Spearman ({args.split} split, {args.seeds} seeds)")
        t.add_column("device")
        for s in args.strategies:
            t.add_column(s, justify="right")
        devs = list(next(iter(res["per_device"].values())))
        for d in devs:
            t.add_row(d, *[f"{res['per_device'][s][d]:.3f}" for s in args.strategies])
        t.add_row("MEAN", *[f"{res['overall'][s]:.3f}" for s in args.strategies])
        Console().print(t)
        out = RESULTS / f"fewshot_{Path(data).name.split('.')[0]}_{args.split}{args.tag}.json"
        out.write_text(json.dumps(res, indent=1))
        print("wrote", out)


if __name__ == "__main__":
    main()
