"""``edgeperf similarity`` and ``edgeperf rank``: proxy-device analysis from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgeperf.errors import DataValidationError, InvalidParameterError

#: Rows of the ranking printed by default.
DEFAULT_TOP = 10
#: Matrices wider than this print without cell colours' legend clutter (values only).
MAX_PRINTED_DEVICES = 40


def _console():
    from rich.console import Console

    return Console(width=200)


def _load_sources(data: List[str]):
    """One table (several data files are concatenated) or one predictor."""
    from edgeperf.datasets import MeasurementTable
    from edgeperf.proxy import load_any

    loaded = [load_any(d) for d in data]
    tables = [x for x in loaded if isinstance(x, MeasurementTable)]
    if len(tables) == len(loaded):
        return tables[0] if len(tables) == 1 else MeasurementTable.concat(tables)
    if len(loaded) == 1:
        return loaded[0]
    raise DataValidationError(
        f"expected data files / dataset names (concatenated) or exactly one model file, got {len(loaded)} "
        f"sources of which {len(tables)} are tables"
    )


def _print_matrix(result) -> None:
    """The matrix with full device names: rows are named, columns numbered (names would not fit)."""
    from rich.table import Table

    m = result.matrix
    table = Table(title=f"{result.metric} rank agreement ({result.method}), clustered order; "
                        "column k is the device of row k", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("device", style="bold", no_wrap=True)
    for k in range(1, len(m.columns) + 1):
        table.add_column(str(k), justify="right")
    for k, (d, row) in enumerate(m.iterrows(), start=1):
        cells = []
        for v in row:
            if v != v:  # NaN
                cells.append("-")
            else:
                style = "green" if v >= 0.9 else "yellow" if v >= 0.7 else "red"
                cells.append(f"[{style}]{v:.2f}[/]")
        table.add_row(str(k), str(d), *cells)
    _console().print(table)


def read_candidates(path: Path) -> tuple[list[str], Optional[list[float]]]:
    """Architectures from a file: one per line, or a CSV with an ``arch`` column (+ optional ``score``)."""
    import csv
    import io
    import math

    from edgeperf.cli._predict import read_archs_file

    lines = read_archs_file(path)  # UTF-8, not empty, comments skipped; errors name the file
    header = next(csv.reader([lines[0]]))
    if "arch" not in [h.strip() for h in header]:
        return lines, None
    rows = list(csv.DictReader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    archs, scores = [], []
    for number, row in enumerate(rows, start=1):
        arch = (row.get("arch") or "").strip()
        if not arch:
            raise DataValidationError("expected an architecture, got an empty cell", path=path, row=number, field="arch")
        archs.append(arch)
        if "score" in row:
            try:
                value = float(row["score"])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise DataValidationError(f"expected a finite number, got {row['score']!r}", path=path, row=number,
                                          field="score")
            scores.append(value)
    return archs, (scores if "score" in header else None)


def read_target_measurements(path: Path, *, metric: str = "latency_ms", device: Optional[str] = None):
    """``(archs, values, note)`` of one target device from a tidy or wide file (``arch,<metric>`` is a wide
    file of one column), read by :func:`edgeperf.datasets.read`: the same validation as every data file."""
    from edgeperf import datasets
    from edgeperf.errors import UnknownDeviceError

    table = datasets.read(path, metric=metric)
    devices = table.devices
    if device is not None and device not in devices:
        raise UnknownDeviceError(device, devices, hint=f"(the devices of --target-measurements {path})")
    if device is None:
        if len(devices) != 1:
            raise DataValidationError(
                f"the file holds devices {devices}; pass --target-device NAME", path=path, field="device"
            )
        device = devices[0]
    vals = table.values(device, metric)
    if vals.empty:
        raise DataValidationError(f"expected {metric} rows of device {device!r}, found none", path=path)
    return [str(a) for a in vals.index], vals.tolist(), ""


def register(app: typer.Typer) -> None:
    """Add ``similarity`` and ``rank`` to ``app``."""

    @app.command("similarity")
    def similarity_cmd(
        data: List[str] = typer.Argument(..., help="Data files, built-in dataset names (concatenated) or one model file."),
        out: Path = typer.Option(Path("report"), "--out", help="Folder for similarity.csv/.json/.png."),
        method: str = typer.Option("spearman", "--method", help="spearman | kendall | topk"),
        archs: Optional[int] = typer.Option(None, "--archs", help="Use a random sample of this many architectures."),
        metric: str = typer.Option("latency_ms", "--metric", help="Metric compared (latency_ms, energy_mj, ...)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the architecture sample (--archs)."),
    ) -> None:
        """Device x device rank agreement (how monotone latency is), clustered, with a heatmap."""
        from edgeperf.proxy import similarity

        src = _load_sources(data)
        result = similarity(src, archs=archs, metric=metric, method=method, seed=seed)
        if len(result.order) <= MAX_PRINTED_DEVICES:
            _print_matrix(result)
        files = result.write_report(out)
        central = result.centrality()
        typer.echo(f"most central device: {central.index[0]} (mean agreement {central.iloc[0]:.3f})")
        for note in result.notes:
            typer.echo(f"note: {note}")
        for kind, path in files.items():
            typer.echo(f"wrote {path}")

    @app.command("rank")
    def rank_cmd(
        model: str = typer.Argument(..., help="Saved model file, data file or built-in dataset name (the proxies)."),
        candidates: Path = typer.Option(..., "--candidates",
                                        help="One architecture per line, or a CSV with 'arch' (and optional 'score')."),
        target_measurements: Optional[Path] = typer.Option(
            None, "--target-measurements",
            help="Target device measurements: a tidy or wide data file, or 'arch,latency_ms'. Omit for none."),
        target_device: Optional[str] = typer.Option(None, "--target-device",
                                                    help="Which device of a multi-device target file."),
        budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help="Latency budget on the target, ms."),
        margin: str = typer.Option("0", "--margin", help="Budget headroom as a fraction (0.1 = 10%) or 'auto'."),
        threshold: Optional[float] = typer.Option(None, "--agreement-threshold",
                                                  help="Adapt below this lower bound of the proxy's agreement."),
        exclude: List[str] = typer.Option([], "--exclude", help="Device never used as proxy (repeatable)."),
        top: int = typer.Option(DEFAULT_TOP, "--top", help="Candidates printed."),
        metric: str = typer.Option("latency_ms", "--metric", help="Metric ranked (latency_ms, energy_mj, ...)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the ranking: .csv (table) or .json (everything)."),
    ) -> None:
        """Rank candidates for a target device by the best-agreeing proxy device."""
        from rich.table import Table

        from edgeperf.proxy import DEFAULT_AGREEMENT_THRESHOLD, rank

        archs, scores = read_candidates(candidates)
        t_archs, t_values, note = ([], [], "")
        if target_measurements is not None:
            t_archs, t_values, note = read_target_measurements(target_measurements, metric=metric, device=target_device)
        if margin != "auto":
            try:
                margin_value: float | str = float(margin)
            except ValueError:
                raise InvalidParameterError(f"--margin expects a number >= 0 or 'auto', got {margin!r}") from None
        else:
            margin_value = "auto"
        r = rank(archs, target_archs=t_archs, target_values=t_values, proxies=model, budget_ms=budget_ms,
                 margin=margin_value, scores=scores, metric=metric, exclude_devices=exclude,
                 agreement_threshold=DEFAULT_AGREEMENT_THRESHOLD if threshold is None else threshold)
        con = _console()
        con.print(f"[bold]proxy:[/] {', '.join(r.proxy)}  ({r.source_kind}, {len(t_archs)} target measurement(s))")
        con.print(f"[bold]agreement:[/] {r.agreement}")
        con.print(f"[bold]path:[/] {r.path}: {r.reason}")
        con.print(f"[bold]calibration:[/] {r.calibration}")
        nxt = r.value_of_next_measurement
        con.print(f"[bold]next measurement:[/] {nxt.note}" + (f"; most informative: {nxt.suggested_arch}" if nxt.suggested_arch else ""))
        if note:
            con.print(f"note: {note}")
        frame = r.to_frame()
        shown = Table(title=f"top {min(top, len(frame))} of {len(frame)} candidates")
        for col in ("rank", "latency_ms", "arch") + (("score",) if "score" in frame else ()) + (
                ("meets_budget",) if "meets_budget" in frame else ()):
            shown.add_column(col, justify="left" if col == "arch" else "right")
        for _, row in frame.head(top).iterrows():
            cells = [str(row["rank"]), f"{row['latency_ms']:.3f}", str(row["arch"])]
            if "score" in frame:
                cells.append(f"{row['score']:.4g}")
            if "meets_budget" in frame:
                cells.append("yes" if row["meets_budget"] else "no")
            shown.add_row(*cells)
        con.print(shown)
        if budget_ms is not None:
            hits = r.meets_budget
            con.print(f"[bold]budget {budget_ms:g} ms:[/] {len(hits)} of {len(archs)} candidates predicted to meet it"
                      + (f"; best: {r.candidates[hits[0]]} ({r.latency_ms[hits[0]]:.3f} ms)" if len(hits) else ""))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.suffix.lower() == ".json":
                out.write_text(json.dumps(r.to_dict(), indent=2, default=float))
            else:
                frame.to_csv(out, index=False)
            con.print(f"wrote {out}")
