"""``edgeperf optimize``: the best design per device under a budget, by search or designer."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from edgeperf.errors import InvalidParameterError


def _budgets(devices: list[str], budgets: list[float]) -> dict[str, float]:
    if len(budgets) == 1:
        return {d: budgets[0] for d in devices}
    if len(budgets) != len(devices):
        raise InvalidParameterError(
            f"expected one --budget-ms for all devices or one per --device, got {len(budgets)} budgets "
            f"for {len(devices)} devices"
        )
    return dict(zip(devices, budgets))


def _measured(path: Path, devices: list[str], metric: str) -> dict[str, dict[str, float]]:
    """``{device: {arch: value}}`` of the designed devices that ``path`` (a measurement file) has."""
    from edgeperf.datasets import read
    from edgeperf.errors import DataValidationError

    table = read(path)
    if metric not in table.metrics:
        raise DataValidationError(f"expected {metric} rows (the model's metric), the file has {table.metrics}", path=path)
    found = [d for d in devices if d in table.devices]
    if not found:
        raise InvalidParameterError(
            f"--measurements {path}: expected rows of a --device ({', '.join(devices)}), got devices "
            f"{', '.join(table.devices)}; name the device as it is in the file")
    return {d: {a: float(v) for a, v in table.values(d, metric).items()} for d in found}


def _print_designs(designs, title: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([d.__dict__ for d in designs], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in ("#", "device", "budget ms", "predicted ms", "checked ms", "objective", "fits"):
        t.add_column(c, justify="left" if c == "device" else "right")
    for i, d in enumerate(designs, 1):
        t.add_row(str(i), d.device, f"{d.budget_ms:.4g}", f"{d.latency_ms:.4g}", f"{d.latency_bound_ms:.4g}",
                  f"{d.objective:.4g}", "yes" if d.feasible else "NO: fastest")
    console = Console()
    console.print(t)
    for i, d in enumerate(designs, 1):  # whole strings, one per line, to copy into NAS code
        console.print(f"{i}\t{d.arch}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``optimize`` to ``app``."""
    from edgeperf.optimize.objectives import SPEC_HELP

    @app.command("optimize")
    def optimize(
        model: Path = typer.Argument(..., help="latency model file (edgeperf train / adapt)"),
        device: Optional[List[str]] = typer.Option(None, "--device", help="device to design for (repeat for several)"),
        budget_ms: Optional[List[float]] = typer.Option(
            None, "--budget-ms", help="latency budget in ms: one for all devices, or one per --device"),
        objective: str = typer.Option("macs", "--objective", help=f"what 'best' means: {SPEC_HELP} (macs is the last resort)"),
        designer: Optional[Path] = typer.Option(None, "--designer", help="design with this trained designer file"),
        train_designer: bool = typer.Option(False, "--train-designer", help="train a designer and save it to --out"),
        out: Optional[Path] = typer.Option(None, "--out", help="designer file to write (with --train-designer)"),
        pareto: bool = typer.Option(False, "--pareto", help="also print each device's Pareto front size"),
        top_k: int = typer.Option(1, "--top-k", min=1, help="designs per device (with --designer)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
        measurements: Optional[Path] = typer.Option(
            None, "--measurements",
            help="measurement file: those archs' latency is known, checked without a margin (default: the "
                 "measurements each adapted device was adapted from, saved in the model)"),
        tolerance: str = typer.Option(
            "auto", "--tolerance",
            help="designs within this share of the best score tie and the one with most slack wins "
                 "(auto: 0.002 for accuracy objectives, 0 otherwise)"),
    ) -> None:
        """Print per device the best design within the budget, its predicted latency and objective.

        Search is exact on NAS-Bench-201 and regularised evolution on FBNet / OFA. With --train-designer, train the NN designer once; with --designer FILE, design in one forward pass for any device the model knows (also ones adapted after training).
        """  # noqa: E501  (typer keeps a docstring's line breaks)
        from edgeperf.optimize import Designer, InfeasibleBudgetWarning, load_designer, search
        from edgeperf.predictors import load

        if train_designer:
            if out is None:
                raise InvalidParameterError("--train-designer needs --out FILE for the designer")
            predictor = load(model)
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("training the designer", total=4)
                d = Designer().fit(predictor, objective=objective, devices=device or None,
                                   progress=lambda done, total, stage: bar.update(task, completed=done, description=stage))
            d.save(out)
            typer.echo(f"trained a designer for {d.space_} on {len(d.training_['devices'])} devices "
                       f"({d.training_['samples']} (device, budget) labels, objective {d.objective_}); wrote {out}")
            return
        if not device or not budget_ms:
            raise InvalidParameterError("expected --device D and --budget-ms X (or --train-designer --out FILE)")
        budgets = _budgets(list(device), list(budget_ms))
        if tolerance != "auto":
            try:
                tolerance = float(tolerance)
            except ValueError:
                raise InvalidParameterError(f"--tolerance: expected 'auto' or a share such as 0.002, got {tolerance!r}") from None
        predictor = load(model)
        measured = "auto" if measurements is None else _measured(measurements, list(budgets), predictor.metric_)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InfeasibleBudgetWarning)
            if designer is not None:
                des = load_designer(designer).set_params(tolerance=tolerance)
                rows = des.design_many(list(budgets.items()), k=top_k, predictor=predictor, measured=measured)
                designs = [d for row in rows for d in row]
                title = f"designer {designer.name} ({des.objective_})"
            else:
                result = search(predictor, objective=objective, budget_ms=budgets, pareto=pareto, tolerance=tolerance,
                                measured=measured)
                designs = list(result)
                title = f"{result.optimizer} search, {result.n_evaluated} evaluated, {result.bound}"
                if pareto:
                    title += "; Pareto fronts: " + ", ".join(f"{k} {len(v)}" for k, v in result.pareto.items())
        _print_designs(designs, title, as_json)
        for w in caught:
            if issubclass(w.category, InfeasibleBudgetWarning):
                typer.secho(f"warning: {w.message}", fg="yellow", err=True)
