"""``edgeperf train | predict | adapt | eval``: predictors from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperCommand

from edgeperf.errors import DataValidationError, InvalidParameterError

#: Encoding of generic ONNX graph features (any model; slow to train: every arch is exported).
GRAPH_ENCODING = "graph"
#: Model kinds of ``train --model``.
MODEL_KINDS = ("joint", "per-device")


def _table(data: List[str], metric: str):
    from edgeperf import datasets
    from edgeperf.datasets import MeasurementTable

    tables = [datasets.open_table(d) for d in data]
    table = tables[0] if len(tables) == 1 else MeasurementTable.concat(tables)
    return table.select(metric=metric)


def read_archs_file(path: Path) -> list[str]:
    """Architectures of a text file, one per line (blank lines and ``#`` comments skipped)."""
    from edgeperf import datasets

    text = datasets.read_text(path, what="a UTF-8 text file with one architecture per line")
    archs = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not archs:
        raise DataValidationError("expected at least one architecture, one per line; the file has none", path=path)
    return archs


def adapt_strategy_names() -> list[str]:
    """Registered adapt strategies (the C5 registry when present, else the built-in tuple)."""
    try:
        from edgeperf.predictors import adapt as registry

        return list(registry.names())
    except ImportError:
        from edgeperf.predictors import ADAPT_STRATEGIES

        return list(ADAPT_STRATEGIES)


class _AdaptCommand(TyperCommand):
    """``adapt`` whose ``--help`` lists the registered strategies (imported only when asked)."""

    def get_help(self, ctx):
        from edgeperf.predictors import DEFAULT_ADAPT_STRATEGY

        for param in self.params:
            if param.name == "strategy":
                param.help = (f"Adaptation strategy, one of: {', '.join(adapt_strategy_names())} "
                              f"(default: the model's, normally {DEFAULT_ADAPT_STRATEGY}).")
        return super().get_help(ctx)


def _print_adapt_report(p, device: str, strategy: str, n_rows: int, missing_refs: list[str]) -> None:
    report = getattr(p, "adapt_reports_", {}).get(device)  # contract C2; absent before it is merged
    if report is not None:
        typer.echo(
            f"strategy {report.strategy}: {report.n_measurements} measurements of {report.n_distinct_archs} "
            f"distinct architectures; leave-one-out MAPE {report.loo_mape_pct:.2f} %, "
            f"Spearman {report.loo_spearman:.3f}"
        )
        for w in report.warnings:
            typer.secho(f"warning: {w}", fg="yellow", err=True)
    else:
        typer.echo(f"strategy {strategy}: {n_rows} measurements")
    if missing_refs and report is None:  # the report already warns about them
        typer.secho(
            f"warning: {len(missing_refs)} of the {len(p.reference_archs_)} reference architectures of "
            f"{p.space_} were not measured on {device!r}; the device signature is then predicted, which is "
            "less accurate. Measure them with `edgeperf profile --reference ...`",
            fg="yellow", err=True,
        )


def _device_map(pairs: List[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        file_name, sep, model_name = pair.partition("=")
        if not sep or not file_name.strip() or not model_name.strip():
            raise typer.BadParameter(f"expected FILE_DEVICE=MODEL_DEVICE, got {pair!r}", param_hint="--device")
        out[file_name.strip()] = model_name.strip()
    return out


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict``, ``adapt`` and ``eval`` to ``app``."""

    @app.command("train")
    def train(
        data: List[str] = typer.Argument(..., help="Measurement files or built-in names (help-nb201, ...)."),
        out: Path = typer.Option(..., "--out", help="Model file to write (never one of the inputs)."),
        devices: Optional[List[str]] = typer.Option(None, "--devices", help="Train on these devices only (repeatable)."),
        model: str = typer.Option("joint", "--model", help=f"Predictor kind: {' | '.join(MODEL_KINDS)}."),
        metric: str = typer.Option("latency_ms", "--metric", help="Metric to learn (latency_ms, energy_mj, ...)."),
        encoding: Optional[str] = typer.Option(
            None, "--encoding",
            help=f"Architecture encoding: onehot, structural (default: the space's first) or {GRAPH_ENCODING} "
                 "(generic ONNX graph features; lets the model predict any ONNX file; slow: exports every arch)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an --out that is not an edgeperf model file."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train a predictor on measurements and save it."""
        from edgeperf import spaces
        from edgeperf.cli._common import check_model_out
        from edgeperf.progress import progress_callback, status, takes_progress

        if model not in MODEL_KINDS:
            raise InvalidParameterError(f"expected --model {' or '.join(MODEL_KINDS)}, got {model!r}")
        check_model_out(out, data, force=force)
        with status("reading the measurements", enabled=not quiet):
            table = _table(data, metric)
        if encoding is not None:
            allowed = list(spaces.get(table.space).encodings) + [GRAPH_ENCODING]
            if encoding not in allowed:
                raise InvalidParameterError(f"expected --encoding one of {allowed}, got {encoding!r}")
        from edgeperf.predictors import JointPredictor, PerDevicePredictor

        p = {"joint": JointPredictor, "per-device": PerDevicePredictor}[model](metric=metric, encoding=encoding)
        if takes_progress(p.fit):  # contract C3
            with progress_callback(f"training {model}", enabled=not quiet) as progress:
                p.fit(table, devices=devices or None, progress=progress)
        else:
            with status(f"training the {model} predictor on {len(table):,} rows", enabled=not quiet):
                p.fit(table, devices=devices or None)
        p.save(out)
        typer.echo(f"trained {model} on {len(p.devices_)} devices of {p.space_} ({p.encoding_} encoding); wrote {out}")

    @app.command("predict")
    def predict(
        model: str = typer.Argument(..., help="Model file, or a built-in dataset name for its shipped model "
                                              "(help-nb201, help-fbnet, help-ofa-mbv3)."),
        device: str = typer.Option(..., "--device", help="Device to predict for (one the model knows)."),
        arch: Optional[str] = typer.Option(None, "--arch", help="One architecture string."),
        archs: Optional[Path] = typer.Option(None, "--archs", help="Text file with one architecture per line."),
        onnx: Optional[Path] = typer.Option(None, "--onnx", help="An ONNX file (models trained with --encoding graph)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No spinner while the model loads."),
    ) -> None:
        """Print predictions: a '#' line naming the metric and unit, then value<TAB>arch per line."""
        from edgeperf import spaces
        from edgeperf.cli._common import load_model
        from edgeperf.progress import status

        given = [x for x in (arch, archs, onnx) if x is not None]
        if len(given) != 1:
            raise InvalidParameterError("expected exactly one of --arch, --archs, --onnx")
        items = [arch] if arch is not None else read_archs_file(archs) if archs is not None else None
        if onnx is not None and not onnx.is_file():
            raise DataValidationError("expected an existing ONNX file", path=onnx)
        with status(f"loading {model}", enabled=not quiet):
            p = load_model(model)
        if device not in p.devices_:
            from edgeperf.errors import UnknownDeviceError

            raise UnknownDeviceError(device, p.devices_, hint="(adapt the model to a new device with `edgeperf adapt`)")
        if onnx is not None and p.encoding_ != GRAPH_ENCODING:
            raise InvalidParameterError(
                f"--onnx needs a model trained with --encoding {GRAPH_ENCODING}; this one uses the {p.encoding_!r} "
                f"encoding of {p.space_} and takes architecture strings (--arch / --archs)"
            )
        if items is not None:
            items = spaces.get(p.space_).validate(items)  # a bad string fails before any prediction work
        unit = p.metric_.rsplit("_", 1)[-1]  # the unit is part of the metric name: latency_ms -> ms
        typer.echo(f"# {p.metric_} ({unit}) predicted on {device} by {model}; columns: value<TAB>architecture")
        if onnx is not None:
            typer.echo(f"{p.predict(str(onnx), device=device):.6g}\t{onnx}")
            return
        with status(f"predicting {len(items)} architecture(s) on {device}", enabled=not quiet):
            values = p.predict(items, device=device)
        for a, v in zip(items, values):
            typer.echo(f"{v:.6g}\t{a}")

    @app.command("adapt", cls=_AdaptCommand)
    def adapt(
        model: str = typer.Argument(..., help="Joint model file, or a built-in dataset name for its shipped model."),
        device: str = typer.Option(..., "--device", help="Name of the new device in the adapted model."),
        measurements: Path = typer.Option(..., "--measurements", help="Measurement file with this device's rows."),
        out: Path = typer.Option(..., "--out", help="Model file to write (never the measurements file)."),
        file_device: Optional[str] = typer.Option(
            None, "--file-device", help="The device's name in the file, when it differs from --device."),
        strategy: Optional[str] = typer.Option(None, "--strategy", help="Adaptation strategy (see the list above)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an --out that is not an edgeperf model file."),
    ) -> None:
        """Register an unseen device from a few measurements and save the result."""
        from edgeperf.cli._common import check_model_out, load_model
        from edgeperf.datasets import read
        from edgeperf.errors import UnknownDeviceError

        check_model_out(out, [measurements], force=force)  # the model itself may be replaced by its adapted self
        table = read(measurements)
        name = file_device or device
        if name not in table.devices:
            if file_device is not None or len(table.devices) != 1:
                raise UnknownDeviceError(name, table.devices, hint=f"(file {measurements}; pick one with --file-device)")
            name = table.devices[0]  # a one-device file under another name: take its only device
        p = load_model(model)
        if not hasattr(p, "adapt"):
            raise InvalidParameterError(f"expected a joint model to adapt, got a {type(p).__name__}")
        if strategy is not None and strategy not in adapt_strategy_names():
            raise InvalidParameterError(f"unknown --strategy {strategy!r}; expected one of {adapt_strategy_names()}")
        if p.metric_ not in table.metrics:
            raise DataValidationError(f"expected {p.metric_} rows (the model's metric), the file has {table.metrics}",
                                      path=measurements)
        vals = table.values(name, p.metric_)
        p.adapt(device, archs=list(vals.index), values=vals.to_numpy(), strategy=strategy)
        missing_refs = [a for a in p.reference_archs_ if a not in set(vals.index)]
        _print_adapt_report(p, device, strategy or p.adapt_strategy, len(vals), missing_refs)
        p.save(out)
        typer.echo(f"adapted {device!r} from {len(vals)} measurements of {name!r}; wrote {out}")

    @app.command("eval")
    def evaluate(
        model: str = typer.Argument(..., help="Model file, or a built-in dataset name for its shipped model."),
        data: List[str] = typer.Argument(..., help="Measurement files or built-in names."),
        device_map: List[str] = typer.Option(
            [], "--device", help="FILE_DEVICE=MODEL_DEVICE: score the file's device against the model's (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Per-device MAPE, RMSE, +-5% / +-10% accuracy, Spearman and Kendall.

        A device the model was trained or adapted on is marked: its scores are in-sample
        (they measure memory, not how well the model generalises)."""
        from edgeperf import metrics
        from edgeperf.cli._common import load_model
        from edgeperf.errors import UnknownDeviceError

        mapping = _device_map(device_map)
        p = load_model(model)
        for model_device in mapping.values():
            if model_device not in p.devices_:
                raise UnknownDeviceError(model_device, p.devices_, hint="(the model side of --device)")
        table = _table(data, p.metric_)
        for file_device in mapping:
            if file_device not in table.devices:
                raise UnknownDeviceError(file_device, table.devices, hint="(the file side of --device)")
        trained = set(getattr(p, "train_devices_", p.devices_))
        seen = {d: "trained on it (in-sample)" if d in trained else "adapted to it" for d in p.devices_}
        results = {}
        for dev in table.devices:
            target = mapping.get(dev, dev)
            if target not in p.devices_:
                continue
            vals = table.values(dev, p.metric_)
            r = metrics.summary(vals.to_numpy(), p.predict(list(vals.index), device=target))
            r.update(model_device=target, in_training_data=seen[target])
            results[dev] = r
        if not results:
            raise DataValidationError(
                f"no device of the data ({table.devices[:10]}) is known to the model ({p.devices_[:10]}...); "
                "map one with --device FILE_DEVICE=MODEL_DEVICE"
            )
        if as_json:
            typer.echo(json.dumps(results, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{Path(model).name} on {', '.join(data)}")
        for c in ("device", "model device", "in model's data", "n", "MAPE %", "RMSE", "+-5%", "+-10%",
                  "Spearman", "Kendall"):
            t.add_column(c, justify="left" if c in ("device", "model device", "in model's data") else "right")
        for dev, r in results.items():
            t.add_row(dev, r["model_device"], r["in_training_data"], str(r["n"]), f"{r['mape']:.2f}",
                      f"{r['rmse']:.4g}", f"{r['acc_5']:.3f}", f"{r['acc_10']:.3f}", f"{r['spearman']:.4f}",
                      f"{r['kendall']:.4f}")
        Console(width=200).print(t)
        if any(r["model_device"] in trained for r in results.values()):
            typer.echo("note: the model was trained on the devices marked in-sample, so their scores measure "
                       "memory, not accuracy on a new device; for that, train without the device and adapt to a "
                       "few of its rows (`edgeperf adapt`)")
