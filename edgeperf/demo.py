"""The main job, end to end, on an embedded default.

1. Profile this machine as a brand-new device through ONNX Runtime (real runs):
   the space's reference architectures plus a few random ones to adapt from,
   interleaved with a check set of candidates that adaptation never sees.
2. Train the joint predictor on the built-in public measurements of many devices.
3. Adapt it to this machine from those few measurements (leave-device-out: this
   machine is in no table).
4. Rank candidate architectures for this machine with proxy reuse, and pick the
   ones predicted to meet a latency budget.
5. Measure the budget picks and report predicted vs measured on the check set
   (Spearman, Kendall, MAPE) and whether the picks really meet the budget.
6. Design for this machine under two budgets with ``edgeperf.optimize.search`` (exact on
   NAS-Bench-201: CIFAR-10 accuracy from analog-nasbench when installed, else MACs as a
   stand-in) and measure both designs for real.

Everything measured lands in ``<out>/measurements.csv`` as it is measured, so
a re-run resumes instead of measuring again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in a few minutes on 2 cores."""

    dataset: str = "help-nb201"
    runtime: str = "onnxruntime"
    threads: int = 1
    extra_adapt_samples: int = 10  # random architectures measured beside the reference set
    candidates: int = 1000
    check_samples: int = 30  # fresh architectures measured to check predictions
    budget_checks: int = 10  # budget picks measured to check they meet the budget
    budget_quantile: float = 0.3  # budget = this quantile of the candidates' predicted latency
    warmup: int = 10
    repeats: int = 50
    seed: int = 0
    train_archs: int | None = None  # train on this many public architectures (None: all), for quick runs
    out_dir: str = "edgeperf-demo"
    device_name: str | None = None
    design_budget_quantiles: tuple = (0.25, 0.75)  # budgets of step 6, quantiles of predicted latency
    extra: dict = field(default_factory=dict)


def _measure(profiler, space, archs, out_path, console, label):
    from edgeperf import datasets
    from edgeperf.profilers import profile_archs

    console.print(f"[bold]{label}[/bold]: {len(archs)} architectures on {profiler.device_name}")
    profile_archs(profiler, space, archs, out_path, progress=True)
    table = datasets.read(out_path).select(devices=[profiler.device_name], metric="latency_ms")
    measured = table.values(profiler.device_name)
    return measured.reindex(archs)


def run_demo(config: DemoConfig = DemoConfig(), console=None) -> dict:
    """Run the whole job; returns the report dict (also written to ``<out>/report.json``)."""
    from rich.console import Console
    from rich.table import Table

    from edgeperf import datasets, metrics, profilers, proxy, spaces
    from edgeperf.predictors import JointPredictor
    from edgeperf.profilers import MeasurementProtocol
    from edgeperf.spaces import COST_COLUMNS

    console = console or Console()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    measurements = out / "measurements.csv"

    public = datasets.load(config.dataset)
    space = spaces.get(public.space)
    reference = datasets.reference_archs(config.dataset)
    if config.train_archs is not None:
        public = public.select(archs=set(public.archs[: config.train_archs]) | set(reference))

    profiler_cls = profilers.get(config.runtime)
    protocol = MeasurementProtocol(warmup=config.warmup, repeats=config.repeats)
    profiler = profiler_cls(name=config.device_name, protocol=protocol, threads=config.threads)
    device = profiler.device_name
    console.print(f"[bold]This machine as a new device:[/bold] {device}")

    # Draw every architecture set up front from one seeded sample; the adaptation sample is
    # disjoint from the candidates, and the check set is a random part of the candidates.
    reference_set = set(reference)
    pool = [a for a in dict.fromkeys(space.sample(2 * (config.candidates + config.extra_adapt_samples), seed=config.seed))
            if a not in reference_set]
    adapt_extra = pool[: config.extra_adapt_samples]
    candidates = pool[config.extra_adapt_samples : config.extra_adapt_samples + config.candidates]
    rng = np.random.default_rng(config.seed)
    check = [candidates[i] for i in rng.choice(len(candidates), size=config.check_samples, replace=False)]
    # "Best" under a budget = the most compute (a stand-in for accuracy) that still fits, so the
    # picks sit near the budget and checking them is a real test of the calibration.
    capacity = space.cost_matrix(candidates)[:, COST_COLUMNS.index("macs")]

    with profiler:
        adapt_archs = list(reference) + adapt_extra
        # Latency on a shared host drifts by tens of percent over minutes; measuring the
        # adaptation sample and the check set interleaved gives both the same drift, so the
        # check measures the predictor, not the host's mood between two phases.
        first_pass = adapt_archs + check
        first_pass = [first_pass[i] for i in rng.permutation(len(first_pass))]
        first_ms = _measure(profiler, space, first_pass, measurements, console,
                            f"1/4 measuring {len(adapt_archs)} adaptation + {len(check)} check architectures")
        adapt_ms = first_ms.loc[adapt_archs]

        console.print(f"[bold]2/4 training[/bold] the joint predictor on {config.dataset}: "
                      f"{len(public.devices)} devices, {len(public.archs)} architectures")
        predictor = JointPredictor()
        from edgeperf.progress import progress_callback, status, takes_progress

        if takes_progress(predictor.fit):  # contract C3: a bar over the boosting rounds
            with progress_callback("2/4 training") as progress:
                predictor.fit(public, progress=progress)
        else:
            with status("2/4 training the joint predictor (a few minutes on 2 cores)"):
                predictor.fit(public)
        predictor.adapt(device, archs=adapt_archs, values=adapt_ms.to_numpy())

        console.print(f"[bold]3/4 ranking[/bold] {len(candidates)} candidates by proxy reuse")
        joint_ms = predictor.predict(candidates, device=device)
        budget_ms = float(np.quantile(joint_ms, config.budget_quantile))
        ranked = proxy.rank(candidates, target_archs=adapt_archs, target_values=adapt_ms.to_numpy(),
                            proxies=predictor, budget_ms=budget_ms, scores=capacity, margin="auto")
        picks = [candidates[i] for i in ranked.meets_budget[: config.budget_checks]]

        picks_ms = _measure(profiler, space, picks, measurements, console, "4/4 measuring the budget picks")

        designs, objective_label = _design(predictor, space, device, joint_ms, config.design_budget_quantiles)
        design_ms = _measure(profiler, space, [d.arch for d in designs], measurements, console,
                             f"optimize: measuring the designs for {len(designs)} budgets")

    position = {a: i for i, a in enumerate(candidates)}
    check_true = first_ms.loc[check].to_numpy()
    check_joint = joint_ms[[position[a] for a in check]]
    check_proxy = ranked.latency_ms[[position[a] for a in check]]
    picks_true = picks_ms.loc[picks].to_numpy()
    picks_pred = ranked.latency_ms[[position[a] for a in picks]]

    report = {
        "device": device,
        "device_spec": profiler.describe().to_dict(),
        "dataset": config.dataset,
        "training_devices": public.devices,
        "adaptation_measurements": len(adapt_archs),
        "check_set": {
            "n": len(check),
            "joint_adapted": _scores(metrics, check_true, check_joint),
            "proxy_reuse": _scores(metrics, check_true, check_proxy),
        },
        "proxy": {"chosen": ranked.proxy, "agreement": _jsonable(ranked.agreement), "path": ranked.path,
                  "reason": ranked.reason},
        "budget": {
            "budget_ms": budget_ms,
            "picked": len(picks),
            "truly_within_budget": int((picks_true <= budget_ms).sum()),
            "pick_measured_ms": picks_true.tolist(),
            "pick_predicted_ms": picks_pred.tolist(),
        },
        "designs": [
            {"budget_ms": d.budget_ms, "arch": d.arch, "predicted_ms": d.latency_ms, "checked_ms": d.latency_bound_ms,
             "measured_ms": float(design_ms.loc[d.arch]), "objective": d.objective, "objective_name": objective_label,
             "truly_within_budget": bool(design_ms.loc[d.arch] <= d.budget_ms)}
            for d in designs
        ],
        "config": asdict(config),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _plot(check_true, check_proxy, picks_true, picks_pred, budget_ms, device, out / "predicted_vs_measured.png")

    t = Table(title=f"edgeperf demo: {device}")
    t.add_column("what")
    t.add_column("value", justify="right")
    cs = report["check_set"]
    t.add_row("adaptation measurements", str(len(adapt_archs)))
    for label, key in (("joint predictor, adapted", "joint_adapted"), ("proxy reuse", "proxy_reuse")):
        m = cs[key]
        t.add_row(f"{label}: Spearman / Kendall / MAPE (n={cs['n']})",
                  f"{m['spearman']:.3f} / {m['kendall']:.3f} / {m['mape_percent']:.1f}%")
    t.add_row("proxy / path", f"{ranked.proxy} / {ranked.path}")
    b = report["budget"]
    t.add_row(f"budget picks meeting {budget_ms:.3f} ms", f"{b['truly_within_budget']}/{b['picked']}")
    for d in report["designs"]:
        t.add_row(f"design for {d['budget_ms']:.3f} ms ({d['objective_name']} {d['objective']:.2f}): "
                  "predicted / measured", f"{d['predicted_ms']:.3f} / {d['measured_ms']:.3f} ms")
    console.print(t)
    for d in report["designs"]:
        console.print(f"design for {d['budget_ms']:.3f} ms: {d['arch']}", markup=False, highlight=False)
    console.print(f"report: {out / 'report.json'}, plot: {out / 'predicted_vs_measured.png'}, "
                  f"measurements: {measurements}")
    return report


def _design(predictor, space, device, predicted_ms, quantiles):
    """The best design for this machine under budgets at ``quantiles`` of ``predicted_ms``, and
    the objective's label (accuracy needs the optional extra analog-nasbench)."""
    from edgeperf.errors import DataValidationError, ObjectiveUnavailableError
    from edgeperf.optimize import objectives, search

    objective = objectives.get("macs")
    if space.name == "nasbench201":
        try:
            objective = objectives.get("nb201-cifar10")
            objective.score(space.sample(1, seed=0), space=space)  # loads (and checks) the table
        except (ObjectiveUnavailableError, DataValidationError):  # not installed, or refused
            objective = objectives.get("macs")
    label = "CIFAR-10 top-1 %" if objective.kind == "accuracy" else "MMACs (stand-in for accuracy)"
    budgets = [float(np.quantile(predicted_ms, q)) for q in quantiles]
    return [search(predictor, objective=objective, budget_ms=b, devices=[device])[device] for b in budgets], label


def _scores(metrics, true_ms, pred_ms) -> dict:
    return {
        "spearman": float(metrics.spearman(true_ms, pred_ms)),
        "kendall": float(metrics.kendall(true_ms, pred_ms)),
        "mape_percent": float(metrics.mape(true_ms, pred_ms)),
    }


def _jsonable(value):
    if hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _plot(true_ms, pred_ms, picks_true, picks_pred, budget_ms, device, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(true_ms, pred_ms, s=18, label="check set")
    if len(picks_true):
        ax.scatter(picks_true, picks_pred, s=24, marker="x", label="budget picks")
    lo = float(min(np.min(true_ms), np.min(pred_ms))) * 0.9
    hi = float(max(np.max(true_ms), np.max(pred_ms))) * 1.1
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.axvline(budget_ms, color="r", lw=0.8, ls=":", label=f"budget {budget_ms:.2f} ms")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{device}: predicted vs measured")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
