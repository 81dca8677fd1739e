"""``edgeperf train | predict | adapt | eval``: predictors from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgeperf.errors import DataValidationError


def _table(data: List[str], metric: str):
    from edgeperf.datasets._table import MeasurementTable
    from edgeperf.predictors._data import as_table

    tables = [as_table(d) for d in data]
    table = tables[0] if len(tables) == 1 else MeasurementTable.concat(tables)
    return table.select(metric=metric)


def _read_archs(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict``, ``adapt`` and ``eval`` to ``app``."""

    @app.command("train")
    def train(
        data: List[str] = typer.Argument(..., help="measurement files or built-in names (help-nb201, ...)"),
        out: Path = typer.Option(..., "--out", help="model file to write"),
        devices: Optional[List[str]] = typer.Option(None, "--devices", help="train on these devices only"),
        model: str = typer.Option("joint", "--model", help="joint | per-device"),
        metric: str = typer.Option("latency_ms", "--metric"),
    ) -> None:
        """Train a predictor and save it."""
        from edgeperf.predictors import JointPredictor, PerDevicePredictor

        kinds = {"joint": JointPredictor, "per-device": PerDevicePredictor}
        if model not in kinds:
            raise DataValidationError(f"expected --model joint or per-device, got {model!r}")
        table = _table(data, metric)
        p = kinds[model](metric=metric).fit(table, devices=devices or None)
        p.save(out)
        typer.echo(f"trained {model} on {len(p.devices_)} devices of {p.space_}; wrote {out}")

    @app.command("predict")
    def predict(
        model: Path = typer.Argument(..., help="model file"),
        device: str = typer.Option(..., "--device"),
        arch: Optional[str] = typer.Option(None, "--arch", help="one architecture string"),
        archs: Optional[Path] = typer.Option(None, "--archs", help="file with one architecture per line"),
        onnx: Optional[Path] = typer.Option(None, "--onnx", help="an ONNX file (graph-feature models)"),
    ) -> None:
        """Print predictions (one per line: value<TAB>arch)."""
        from edgeperf.predictors import load

        given = [x for x in (arch, archs, onnx) if x is not None]
        if len(given) != 1:
            raise DataValidationError("expected exactly one of --arch, --archs, --onnx")
        p = load(model)
        if onnx is not None:
            typer.echo(f"{p.predict(str(onnx), device=device):.6g}\t{onnx}")
            return
        items = [arch] if arch is not None else _read_archs(archs)
        for a, v in zip(items, p.predict(items, device=device)):
            typer.echo(f"{v:.6g}\t{a}")

    @app.command("adapt")
    def adapt(
        model: Path = typer.Argument(..., help="joint model file"),
        device: str = typer.Option(..., "--device"),
        measurements: Path = typer.Option(..., "--measurements", help="measurement file with this device's rows"),
        out: Path = typer.Option(..., "--out"),
        strategy: Optional[str] = typer.Option(None, "--strategy"),
    ) -> None:
        """Register an unseen device from a few measurements and save the result."""
        from edgeperf.datasets import read
        from edgeperf.predictors import JointPredictor, load

        p = load(model)
        if not isinstance(p, JointPredictor):
            raise DataValidationError(f"expected a joint model to adapt, got a {type(p).__name__}")
        table = read(measurements)
        vals = table.values(device, p.metric_) if device in table.devices else None
        if vals is None:  # one-device file under another name: take its only device
            if len(table.devices) != 1:
                raise DataValidationError(f"no rows of device {device!r}; the file has {table.devices}", path=measurements)
            vals = table.values(table.devices[0], p.metric_)
        p.adapt(device, archs=list(vals.index), values=vals.to_numpy(), strategy=strategy)
        p.save(out)
        typer.echo(f"adapted {device!r} from {len(vals)} measurements; wrote {out}")

    @app.command("eval")
    def evaluate(
        model: Path = typer.Argument(..., help="model file"),
        data: List[str] = typer.Argument(..., help="measurement files or built-in names"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    ) -> None:
        """Per-device MAPE, RMSE, +-5% / +-10% accuracy, Spearman and Kendall."""
        from edgeperf import metrics
        from edgeperf.predictors import load

        p = load(model)
        table = _table(data, p.metric_)
        results = {}
        for dev in table.devices:
            if dev not in p.devices_:
                continue
            vals = table.values(dev, p.metric_)
            results[dev] = metrics.summary(vals.to_numpy(), p.predict(list(vals.index), device=dev))
        if not results:
            raise DataValidationError(f"no device of the data is known to the model ({p.devices_[:10]}...)")
        if as_json:
            typer.echo(json.dumps(results, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{model.name} on {', '.join(data)}")
        for c in ("device", "n", "MAPE %", "RMSE", "+-5%", "+-10%", "Spearman", "Kendall"):
            t.add_column(c, justify="left" if c == "device" else "right")
        for dev, r in results.items():
            t.add_row(dev, str(r["n"]), f"{r['mape']:.2f}", f"{r['rmse']:.4g}", f"{r['acc_5']:.3f}",
                      f"{r['acc_10']:.3f}", f"{r['spearman']:.4f}", f"{r['kendall']:.4f}")
        Console().print(t)
