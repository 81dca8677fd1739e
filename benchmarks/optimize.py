"""Leave-device-out benchmark of ``edgeperf.optimize``: search and designer on devices that are
in no training data, adapted from 20 measurements.

Protocol, per space and split:

- the held-out devices are a whole hardware type (NB-201: the phones, or the server CPUs;
  FBNet: the phones; OFA: the V100 at every batch size), and for NB-201 also the test half of a
  Kernighan-Lin least-correlated bisection (``_splits.py``; reported beside: defaults are chosen
  on the hardware-type splits only); the joint predictor trains on the other devices
  (architectures ``arch_index < --train-archs`` plus the reference set), and the designer is
  trained on it *before* the held-out devices exist;
- each held-out device is then adapted from 20 true measurements (HELP's 10 reference
  architectures + 10 random ones of ``arch_index`` < N, N = 900 NB-201, 4,000 FBNet/OFA),
  ``--seeds`` times with other random ones; every design of every draw is scored;
- budgets: five quantiles (10, 30, 50, 70, 90 %) of the device's *true* latency over the
  candidates (NB-201: all 15,625 cells; FBNet/OFA: measured architectures of the test range
  ``arch_index >= 4000``, so that every design's true latency is known);
- (a) share of designs whose true latency meets the budget; (b) regret = objective of the
  true optimum under the true latency minus the design's; both for every margin rule of
  :data:`RULES` x risk tolerance of :data:`TOLERANCES` (search) and for the designer (NB-201
  also with the other beams of :data:`DESIGNER_BEAMS`);
  (c) time per (device, budget) design, search vs designer, in one process: single calls,
  batched over one device's five budgets, batched over all held-out pairs, batched over 100
  budgets per device (also with the other beams);
- (d) a reference ceiling beside them: the search with a per-device XGBoost trained on the
  held-out device's own architectures (``arch_index`` < N) under uniform margins.

NB-201's objective is CIFAR-10 accuracy from ``analog-nasbench`` (optional extra; required
here). FBNet/OFA use the ``synflow`` zero-cost proxy (regret in proxy units and as a share of
the candidates' proxy range). The rank correlation of every proxy with the NB-201 accuracy on
``--proxy-cells`` random cells is reported too. The library defaults (margin rule, tolerance)
were chosen from this script's tables on the hardware-type splits.

Timings are wall-clock on a shared 2-core VM: they drift with the other jobs on it.

Run: ``python benchmarks/optimize.py [--quick] [--spaces nb201,fbnet,ofa] [--seeds 3]``; writes
``benchmarks/results/optimize.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from statistics import NormalDist

import numpy as np

import edgeperf as ep
from edgeperf import metrics
from edgeperf.optimize import Designer, InfeasibleBudgetWarning, objectives, search

from _help_protocol import N_TRAIN

QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Margin rules of the search table. "default": the library's margin and confidence;
#: "quantile@C": the calibrated, robust C quantile alone (``margin="quantile", confidence=C``);
#: "quantile+20%": the larger of the 95% quantile and prediction + 20% (the default before);
#: "own-conformal": the device's own split-conformal 95% quantile of its 20 leave-one-out
#: residuals; numbers: prediction x (1 + m). "+measured": the 20 adaptation measurements are
#: known exactly, no margin (the library's default, ``measured="auto"``); without it the rule
#: passes ``measured=None``.
RULES = ("default", "default+measured", "quantile+20%", "quantile@0.9", "quantile@0.9+measured",
         "quantile@0.8+measured", "own-conformal+measured", 0.0, 0.2)
#: Designer rows: decode-time bound ("default": the margin and confidence it was trained with;
#: "quantile@C": that margin at confidence C; "quantile-alone": the search's bound, the calibrated
#: quantile without the designer's "+20 %" floor) x measured.
DESIGNER_RULES = ("default", "default+measured", "quantile@0.9+measured", "quantile-alone+measured")
#: NB-201 designer rows with other beams than the default 128 (decoded candidates checked per
#: design: a wider beam, better designs and a slower decode), default bound + measured, tolerance "auto".
DESIGNER_BEAMS = (32, 64, 512)
#: Risk-aware choice: designs within this share of the best feasible score tie, the most slack wins.
TOLERANCES = (0.0, 0.001, "auto", 0.004, 0.008)
#: Uniform margins of the oracle rows (a predictor trained on the held-out device's own data).
ORACLE_MARGINS = (0.0, 0.1, 0.2, 0.3, 0.5)
N_ADAPT_RANDOM = 10
SPLITS = {
    "nasbench201": {
        "phones": ["pixel3", "samsung_a50", "samsung_s7", "essential_ph_1"],
        "server-cpus": ["gold_6240", "silver_4114", "silver_4210r"],
        "kl-least-correlated": None,  # computed: the test half of a Kernighan-Lin bisection
    },
    "fbnet": {"phones": ["pixel2", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1"]},
    "ofa_mbv3": {"v100": ["v100_1", "v100_32", "v100_64"]},
}
#: Splits on which defaults are chosen (whole hardware types held out); the others are reported beside.
DEFAULT_CHOOSING = ("phones", "server-cpus")
DATASETS = {"nasbench201": "help-nb201", "fbnet": "help-fbnet", "ofa_mbv3": "help-ofa-mbv3"}
ALIASES = {"nb201": "nasbench201", "fbnet": "fbnet", "ofa": "ofa_mbv3"}


def _kl_held_out(table) -> list[str]:
    """The test half of the first Kernighan-Lin least-correlated bisection of the devices
    (rank correlations on HELP's training pool), as in ``benchmarks/fewshot_unseen.py``."""
    from _help_protocol import protocol_rows
    from _splits import least_correlated_bisections, rank_correlations

    wide, _, devices, _, pool_rows, _ = protocol_rows(table)
    corr = rank_correlations(wide.iloc[pool_rows][devices].to_numpy())
    return least_correlated_bisections(devices, corr, seeds=range(3))[0][1]


class _RuleBounds:
    """The adapted predictor with ``predict_quantile`` replaced by one margin rule of the table
    (duck-typed, contract C1): prediction x exp(log margin of the device)."""

    def __init__(self, inner, log_margin: dict):
        self.inner, self.log_margin = inner, log_margin
        self.devices_, self.space_, self.metric_ = inner.devices_, inner.space_, inner.metric_

    def predict(self, archs, *, device):
        return self.inner.predict(archs, device=device)

    def predict_quantile(self, archs, *, device, q):
        return np.asarray(self.inner.predict(archs, device=device)) * math.exp(self.log_margin[device])


def _rule_predictor(predictor, rule, held, ref_arch):
    """(predictor, search keyword arguments) for one rule of :data:`RULES` (without "+measured")."""
    rule = rule.removesuffix("+measured") if isinstance(rule, str) else rule
    if not isinstance(rule, str):
        return predictor, {"margin": rule}
    if rule == "default":
        return predictor, {}
    if rule.startswith("quantile@"):
        return predictor, {"margin": "quantile", "confidence": float(rule.split("@")[1])}
    margin = {}
    for d in held:
        point = predictor.predict(ref_arch, device=d)
        if rule == "quantile+20%":
            margin[d] = max(math.log(predictor.predict_quantile(ref_arch, device=d, q=0.95) / point), math.log1p(0.2))
        elif rule == "own-conformal":  # the device's split-conformal quantile of its leave-one-out log residuals
            loo = np.sort(predictor.adapters_[d].loo_log_residuals_)
            k = min(loo.size, math.ceil((loo.size + 1) * 0.95))
            margin[d] = max(float(loo[k - 1]), 0.0)
        else:
            raise ValueError(f"unknown rule {rule!r}")
    return _RuleBounds(predictor, margin), {"margin": "quantile"}


def _train(table, wide, space, held, train_archs):
    refs = ep.datasets.reference_archs(space)
    archs = set(wide.index[wide["arch_index"] < train_archs]) | set(refs)
    train_devices = [d for d in table.devices if d not in held]
    t = time.perf_counter()
    predictor = ep.JointPredictor().fit(table.select(devices=train_devices, archs=archs))
    return predictor, train_devices, time.perf_counter() - t


def _adapt(predictor, wide, space, held, seed) -> dict:
    """Adapt every held-out device from 20 true measurements; returns them, ``{device: {arch: ms}}``."""
    refs = ep.datasets.reference_archs(space)
    measured = {}
    rng = np.random.default_rng(seed)
    pool = [a for a in wide.index[wide["arch_index"] < N_TRAIN[space]] if a not in set(refs)]
    for dev in held:
        ok = [a for a in pool if np.isfinite(wide.at[a, dev])]
        extra = [ok[i] for i in rng.choice(len(ok), N_ADAPT_RANDOM, replace=False)]
        archs = refs + extra
        values = wide.loc[archs, dev].to_numpy(dtype=float)
        predictor.adapt(dev, archs=archs, values=values, overwrite=True)
        measured[dev] = dict(zip(archs, values.tolist()))
    return measured


def _oracle(table, wide, space, held, objective, cand, true_lat, budgets, score_of) -> dict:
    """A reference ceiling, not a few-shot result: search with a per-device XGBoost
    (``PerDevicePredictor``, library defaults) trained on each held-out device's *own*
    architectures ``arch_index < N`` (900 NB-201, 4,000 FBNet/OFA), under uniform margins (it
    has no quantiles). Where even it cannot reach 95 % within budget at low regret, the
    latencies themselves are too noisy near the budgets for any predictor to."""
    own = set(wide.index[wide["arch_index"] < N_TRAIN[space]])
    oracle = ep.predictors.PerDevicePredictor().fit(table.select(devices=held, archs=own))
    cells = [(d, q) for q in QUANTILES for d in held]
    out = {}
    for margin in ORACLE_MARGINS:
        archs = _search_designs(oracle, objective, held, budgets, cells, margin=margin, candidates=cand)
        out[_key("margin", margin)] = _summary(*_score_designs(archs, true_lat, score_of, budgets, cells),
                                               [q for _, q in cells])
    return out


def _search_designs(predictor, objective, held, budgets, cells, **kwargs) -> list[str]:
    """The search's design of every (device, budget quantile) cell: one search per quantile for
    all held-out devices at once (``kwargs``: the search's margin, tolerance, candidates...)."""
    got = {}
    for q in QUANTILES:
        r = search(predictor, objective=objective, budget_ms={d: budgets[(d, q)] for d in held}, **kwargs)
        got.update({(d, q): r[d].arch for d in held})
    return [got[c] for c in cells]


def _score_designs(archs_by_cell, true_lat, score_of, budgets, cells):
    """within-budget flags and regrets of designs; cells = [(device, q)]."""
    within, regret = [], []
    for (dev, q), arch in zip(cells, archs_by_cell):
        lat, budget = true_lat[dev], budgets[(dev, q)]
        best = max(v for a, v in score_of.items() if lat.get(a, np.inf) <= budget)
        within.append(bool(lat[arch] <= budget))
        regret.append(float(best - score_of[arch]))
    return within, regret


def _summary(within, regret, levels=None) -> dict:
    out = {"within_budget_pct": 100.0 * float(np.mean(within)), "mean_regret": float(np.mean(regret)),
           "max_regret": float(np.max(regret)), "n_designs": len(within)}
    if levels is not None:  # per budget quantile: within % and mean regret
        lv = np.asarray(levels)
        w, r = np.asarray(within), np.asarray(regret)
        out["by_budget_quantile"] = {f"{q:g}": [100.0 * float(w[lv == q].mean()), float(r[lv == q].mean())]
                                     for q in QUANTILES}
    return out


def _key(name, value) -> str:
    return f"{name}={value}" if isinstance(value, str) else f"{name}={value:g}"


def run_split(space, split, held, args, objective, candidates) -> dict:
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
    true_lat = {d: wide[d].dropna().to_dict() for d in held}
    budgets = {(d, q): float(np.quantile([true_lat[d][a] for a in candidates], q)) for d in held for q in QUANTILES}
    cells = [(d, q) for q in QUANTILES for d in held]
    cand = None if space == "nasbench201" else candidates

    picks = {(_key("margin", r), _key("tolerance", t)): [] for r in RULES for t in TOLERANCES}
    designed = {f"{rule} tolerance={t}": [] for rule in DESIGNER_RULES for t in ("auto", 0.0)}
    designed.update({f"default+measured beam={b} tolerance=auto": [] for b in DESIGNER_BEAMS})
    scored_cells = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfeasibleBudgetWarning)
        for seed in range(args.seeds):  # each seed: other random adaptation measurements
            measured = _adapt(predictor, wide, space, held, seed)
            scored_cells += cells
            for rule in RULES:
                rule_pred, kwargs = _rule_predictor(predictor, rule, held, candidates[0])
                kwargs["measured"] = measured if isinstance(rule, str) and rule.endswith("+measured") else None
                for tol in TOLERANCES:
                    picks[(_key("margin", rule), _key("tolerance", tol))] += _search_designs(
                        rule_pred, objective, held, budgets, cells, tolerance=tol, candidates=cand, **kwargs)
            trained_confidence, trained_margin = designer.confidence, designer.margin
            for rule in DESIGNER_RULES:
                confidence = float(rule.split("@")[1][:3]) if "@" in rule else trained_confidence
                margin = "auto" if rule.startswith("quantile-alone") else trained_margin
                known = measured if rule.endswith("+measured") else None
                for tol in ("auto", 0.0):
                    d_ = designer.set_params(tolerance=tol, confidence=confidence, margin=margin)
                    key = f"{rule} tolerance={tol}"
                    if space == "nasbench201":
                        designed[key] += d_.design_many([(d, budgets[(d, q)]) for d, q in cells], measured=known)
                    elif tol == "auto" and rule == "default":  # designs must be measured: mapped onto the pool
                        designed[key] += [
                            _designer_in_pool(designer, predictor, d, budgets[(d, q)], score_of) for d, q in cells]
            designer.set_params(tolerance="auto", confidence=trained_confidence, margin=trained_margin)
            if space == "nasbench201":
                trained_beam = designer.beam
                for beam in DESIGNER_BEAMS:
                    designed[f"default+measured beam={beam} tolerance=auto"] += designer.set_params(beam=beam).design_many(
                        [(d, budgets[(d, q)]) for d, q in cells], measured=measured)
                designer.set_params(beam=trained_beam)

    out = {"held_out": held, "train_devices": train_devices, "predictor_fit_s": fit_s, "seeds": args.seeds,
           "chooses_defaults": split in DEFAULT_CHOOSING, "uncertainty": predictor.uncertainty_,
           "designer_fit_s": designer_fit_s, "designer_training": designer.training_, "search": {}, "designer": {}}
    levels = [q for _, q in scored_cells]
    for (rule, tol), archs in picks.items():
        out["search"].setdefault(rule, {})[tol] = _summary(*_score_designs(archs, true_lat, score_of, budgets,
                                                                          scored_cells), levels)
    for tol, archs in designed.items():
        if archs:
            out["designer"][tol] = _summary(*_score_designs(archs, true_lat, score_of, budgets, scored_cells),
                                            levels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfeasibleBudgetWarning)
        out["oracle"] = _oracle(table, wide, space, held, objective, cand, true_lat, budgets, score_of)
    out["timing"] = _timing(predictor, designer, objective, held, budgets, cand, space)
    if space != "nasbench201":
        rng_scores = float(np.ptp(scores))
        for block in [*out["designer"].values(), *out["oracle"].values(),
                      *(v for r in out["search"].values() for v in r.values())]:
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
    bound = ep.optimize.LatencyBound(predictor, [device], margin=designer.margin,
                                     confidence=designer.confidence)(pool)[1][0]
    fits = np.flatnonzero(bound <= budget)
    if not len(fits):
        return pool[int(np.argmin(bound))]
    return pool[int(fits[np.argmax(loglik[fits])])]


def _search_many_budgets(predictor, objective, device, budgets) -> list[str]:
    """The exact search of one device at several budgets in one pass (what a batched search
    API would do): one prediction of the space, one masked argmax per budget."""
    from edgeperf.optimize import optimizers
    from edgeperf.optimize._search import designs_from, resolve_tolerance

    space = ep.spaces.get(predictor.space_)
    measured = ep.optimize.resolve_measured(predictor, space, "auto")  # what search() checks by default
    bound = ep.optimize.LatencyBound(predictor, [device], measured=measured)
    rows = np.zeros(len(budgets), dtype=np.int64)

    def one_row_per_budget(archs):
        point, b = bound(archs)
        return point[rows], b[rows]

    problem = optimizers.Problem(
        space=space, devices=[f"{device}@{b:.6g}" for b in budgets], budgets_ms=np.asarray(budgets),
        score=lambda archs: objective.score(archs, space=space), latency_bound=one_row_per_budget,
        tolerance=resolve_tolerance("auto", objective))
    optimizers.get("exhaustive").run(problem, n_evaluations=1, seed=0)
    return [d.arch for d in designs_from(problem).values()]


#: Budgets per held-out device of the "batched_many" timing (between its 10 and 90 % quantiles).
MANY_BUDGETS = 100


def _per_call_s(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call (predictor caches, string memo):
    the median resists the bursts of the other jobs on the shared VM."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _timing(predictor, designer, objective, held, budgets, cand, space) -> dict:
    """Seconds per (device, budget) design, search vs designer, measured in this one process
    one after the other: single calls, batched over one device's five budgets, batched over
    every held-out (device, budget) pair, and batched over :data:`MANY_BUDGETS` budgets of
    every held-out device (the search: one pass per device, one masked argmax per budget)."""
    dev = held[0]
    mine = [budgets[(dev, q)] for q in QUANTILES]
    pairs = [(d, budgets[(d, q)]) for q in QUANTILES for d in held]
    many = {d: list(np.geomspace(budgets[(d, QUANTILES[0])], budgets[(d, QUANTILES[-1])], MANY_BUDGETS)) for d in held}
    n_many = MANY_BUDGETS * len(held)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfeasibleBudgetWarning)
        if space != "nasbench201":  # a real search over the whole space with the proxy: fresh objective, no memo
            fresh = objectives.get(objective.name)
            t = time.perf_counter()
            search(predictor, objective=fresh, budget_ms=mine[2], devices=[dev], n_evaluations=100)
            search_s = time.perf_counter() - t
            design_s = _per_call_s(lambda: designer.design(device=dev, budget_ms=mine[2]), 20)
            return {"search_s_per_design": search_s, "search": "regularised evolution, 100 proxy evaluations",
                    "designer_s_per_design": design_s, "speedup": search_s / design_s}
        one = [search(predictor, objective=objective, budget_ms=b, devices=[dev])[dev].arch for b in mine]
        assert _search_many_budgets(predictor, objective, dev, mine) == one  # the batched search is the same search
        assert designer.design_many([(dev, b) for b in mine]) == [designer.design(device=dev, budget_ms=b) for b in mine]
        n = len(mine)
        t = {
            "search_single": _per_call_s(lambda: [search(predictor, objective=objective, budget_ms=b, devices=[dev])
                                                  for b in mine], 3) / n,
            "search_batched_budgets": _per_call_s(lambda: _search_many_budgets(predictor, objective, dev, mine), 3) / n,
            "search_batched_all": _per_call_s(lambda: [search(predictor, objective=objective,
                                                              budget_ms={d: budgets[(d, q)] for d in held})
                                                       for q in QUANTILES], 2) / len(pairs),
            "designer_single": _per_call_s(lambda: [designer.design(device=dev, budget_ms=b) for b in mine], 40) / n,
            "designer_batched_budgets": _per_call_s(lambda: designer.design_many([(dev, b) for b in mine]), 40) / n,
            "designer_batched_all": _per_call_s(lambda: designer.design_many(pairs), 40) / len(pairs),
            "search_batched_many": _per_call_s(lambda: [_search_many_budgets(predictor, objective, d, b)
                                                        for d, b in many.items()], 2) / n_many,
            "designer_batched_many": _per_call_s(lambda: designer.design_many(
                [(d, x) for d, b in many.items() for x in b]), 5) / n_many,
        }
        trained_beam = designer.beam
        for beam in DESIGNER_BEAMS:
            designer.set_params(beam=beam)
            t[f"designer_batched_many_beam{beam}"] = _per_call_s(lambda: designer.design_many(
                [(d, x) for d, b in many.items() for x in b]), 5) / n_many
        designer.set_params(beam=trained_beam)
    kinds = ("single", "batched_budgets", "batched_all", "batched_many")
    return {
        "s_per_design": t, "device": dev, "n_pairs_all": len(pairs),
        "speedup_like_for_like": {k: t[f"search_{k}"] / t[f"designer_{k}"] for k in kinds},
        "speedup_vs_single_search": {k: t["search_single"] / t[f"designer_{k}"] for k in kinds},
        "speedup_vs_single_search_by_beam": {b: t["search_single"] / t[f"designer_batched_many_beam{b}"]
                                                for b in DESIGNER_BEAMS},
        "search": "exhaustive over 15,625 cells, predictor cache warm",
    }


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
    ap.add_argument("--seeds", type=int, default=3, help="adaptation draws (20 measurements each) per held-out device")
    ap.add_argument("--splits", default=None, help="comma-separated split names (default: all of a space)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "optimize.json"))
    args = ap.parse_args()
    args.synthetic, args.epochs = (300, 20) if args.quick else (1500, 60)
    args.train_archs = {"nasbench201": 2000 if args.quick else 4000, "fbnet": 1000 if args.quick else 2000,
                        "ofa_mbv3": 1000 if args.quick else 2000}
    if args.quick:
        args.candidates, args.proxy_cells = min(args.candidates, 60), min(args.proxy_cells, 30)
    wanted = [ALIASES[s] for s in args.spaces.split(",")]
    report = {"command": "python benchmarks/" + " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv)),
              "quantiles": QUANTILES, "rules": [str(r) for r in RULES], "tolerances": [str(t) for t in TOLERANCES],
              "default_choosing_splits": DEFAULT_CHOOSING, "results": {}}
    started = time.perf_counter()
    if "nasbench201" in wanted:
        accuracy = objectives.get("nb201-cifar10")  # needs the optional extra analog-nasbench
        report["proxy_correlation_nb201_cifar10"] = proxy_correlation(args.proxy_cells, accuracy)
        cells = list(ep.spaces.get("nasbench201").enumerate())
        for split, held in SPLITS["nasbench201"].items():
            if args.splits and split not in args.splits.split(","):
                continue
            held = held if held is not None else _kl_held_out(ep.datasets.load(DATASETS["nasbench201"]))
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
    print(f"\n== {key}: held out {', '.join(r['held_out'])} ({r['seeds']} adaptation seeds, "
          f"{'chooses defaults' if r['chooses_defaults'] else 'reported beside'})")
    tols = list(next(iter(r["search"].values())))
    print(f"{'search margin rule':<36}" + "".join(f"{t[len('tolerance='):]:>14}" for t in tols)
          + "   (within % / mean regret)")
    for rule, row in r["search"].items():
        print(f"{rule:<36}" + "".join(f"{v['within_budget_pct']:>7.1f}% {v['mean_regret']:>5.2f}" for v in row.values()))
    for tol, v in r["designer"].items():
        print(f"{'designer ' + tol:<36}{v['within_budget_pct']:>7.1f}% {v['mean_regret']:>5.2f}")
    print("oracle (per-device XGBoost on the device's own archs; one draw):  "
          + "  ".join(f"{m}: {v['within_budget_pct']:.1f}% {v['mean_regret']:.2f}" for m, v in r["oracle"].items()))
    t = r["timing"]
    if "s_per_design" not in t:
        print(f"time per design: search {t['search_s_per_design'] * 1e3:.1f} ms ({t['search']}), designer "
              f"{t['designer_s_per_design'] * 1e3:.2f} ms, {t['speedup']:.0f}x (shared VM: timings drift)", flush=True)
        return
    s = t["s_per_design"]
    for k in t["speedup_like_for_like"]:
        print(f"time per design, {k:<16}: search {s['search_' + k] * 1e3:8.3f} ms, designer "
              f"{s['designer_' + k] * 1e6:8.1f} us: {t['speedup_like_for_like'][k]:7.0f}x like for like, "
              f"{t['speedup_vs_single_search'][k]:7.0f}x vs a single search call")
    for b, x in t["speedup_vs_single_search_by_beam"].items():
        print(f"time per design, batched_many, beam {b}: designer {s[f'designer_batched_many_beam{b}'] * 1e6:8.1f} us: "
              f"{x:7.0f}x vs a single search call")
    print("(shared 2-core VM: timings drift; ratios are from one process, measured back to back)", flush=True)


if __name__ == "__main__":
    main()
