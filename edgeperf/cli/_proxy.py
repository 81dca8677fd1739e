"""``edgeperf similarity`` and ``edgeperf rank``: proxy-device analysis from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgeperf.errors import AdaptationError, DataValidationError

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
    from edgeperf.proxy._sources import load_any

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
    from rich.table import Table

    m = result.matrix
    table = Table(title=f"{result.metric} rank agreement ({result.method}), clustered order", show_lines=False)
    table.add_column("device", style="bold")
    for d in m.columns:
        table.add_column(str(d), justify="right", max_width=7, overflow="fold")
    for d, row in m.iterrows():
        cells = []
        for v in row:
            if v != v:  # NaN
                cells.append("-")
            else:
                style = "green" if v >= 0.9 else "yellow" if v >= 0.7 else "red"
                cells.append(f"[{style}]{v:.2f}[/]")
        table.add_row(str(d), *cells)
    _console().print(table)


def read_candidates(path: Path) -> tuple[list[str], Optional[list[float]]]:
    """Architectures from a file: one per line, or a CSV with an ``arch`` column (+ optional ``score``)."""
    import pandas as pd

    text = Path(path).read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataValidationError("expected at least one candidate architecture, the file is empty", path=str(path))
    header = [h.strip().strip('"') for h in lines[0].split(",")]
    if "arch" in header:
        frame = pd.read_csv(path, comment=None)
        frame = frame.dropna(subset=["arch"])
        scores = None
        if "score" in frame.columns:
            s = pd.to_numeric(frame["score"], errors="coerce")
            if s.isna().any():
                row = int(s.isna().to_numpy().argmax()) + 2  # 1-based, after the header
                raise DataValidationError("expected a number", path=str(path), row=row, field="score")
            scores = s.tolist()
        return [str(a) for a in frame["arch"]], scores
    return lines, None


def read_target_measurements(path: Path, *, metric: str = "latency_ms", device: Optional[str] = None):
    """``(archs, values, note)`` of one target device from a tidy, wide or ``arch,<metric>`` CSV.

    Empty cells mean "not measured" (as in every edgeperf data file) and are skipped.
    """
    import pandas as pd

    frame = pd.read_csv(path)
    cols = list(frame.columns)
    if "arch" not in cols:
        raise DataValidationError(
            f"expected a CSV with an 'arch' column (tidy: arch,device,metric,value; wide: arch,<device>...; "
            f"or arch,{metric}), got columns {cols}",
            path=str(path),
        )
    if {"device", "value"} <= set(cols):  # tidy
        if "metric" in cols:
            frame = frame[frame["metric"] == metric]
        devices = sorted(frame["device"].dropna().unique())
        if device is None and len(devices) != 1:
            raise DataValidationError(
                f"the tidy file holds devices {devices}; pass --target-device NAME", path=str(path), field="device"
            )
        device = device or devices[0]
        frame = frame[frame["device"] == device]
        column = "value"
    else:
        value_cols = [c for c in cols if c not in ("arch", "arch_index", "space")]
        if device is not None:
            if device not in value_cols:
                raise DataValidationError(f"no column {device!r}; columns are {value_cols}", path=str(path))
            column = device
        elif metric in value_cols:
            column = metric
        elif len(value_cols) == 1:
            column = value_cols[0]
        else:
            raise DataValidationError(
                f"cannot tell which column is the target device among {value_cols}; pass --target-device NAME",
                path=str(path),
            )
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column].notna() & values.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 2
        raise DataValidationError(f"expected a number, got {frame[column][bad].iloc[0]!r}", path=str(path), row=row,
                                  field=str(column))
    keep = values.notna()
    note = f"{int((~keep).sum())} empty cell(s) skipped" if (~keep).any() else ""
    return [str(a) for a in frame["arch"][keep]], values[keep].tolist(), note


def register(app: typer.Typer) -> None:
    """Add ``similarity`` and ``rank`` to ``app``."""

    @app.command("similarity")
    def similarity_cmd(
        data: List[str] = typer.Argument(..., help="Data files, built-in dataset names (concatenated) or one model file."),
        out: Path = typer.Option(Path("report"), "--out", help="Folder for similarity.csv/.json/.png."),
        method: str = typer.Option("spearman", "--method", help="spearman | kendall | topk"),
        archs: Optional[int] = typer.Option(None, "--archs", help="Use a random sample of this many architectures."),
        metric: str = typer.Option("latency_ms", "--metric"),
        seed: int = typer.Option(0, "--seed"),
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
        candidates: Path = typer.Option(..., "--candidates", exists=True, dir_okay=False,
                                        help="One architecture per line, or a CSV with 'arch' (and optional 'score')."),
        target_measurements: Optional[Path] = typer.Option(
            None, "--target-measurements", exists=True, dir_okay=False,
            help="Target device measurements: tidy/wide CSV or 'arch,latency_ms'. Omit for none."),
        target_device: Optional[str] = typer.Option(None, "--target-device", help="Which device of a multi-device file."),
        budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help="Latency budget on the target, ms."),
        margin: str = typer.Option("0", "--margin", help="Budget headroom as a fraction (0.1 = 10%) or 'auto'."),
        threshold: Optional[float] = typer.Option(None, "--agreement-threshold",
                                                  help="Adapt below this lower bound of the proxy's agreement."),
        exclude: List[str] = typer.Option([], "--exclude", help="Device never used as proxy (repeatable)."),
        top: int = typer.Option(DEFAULT_TOP, "--top", help="Candidates printed."),
        metric: str = typer.Option("latency_ms", "--metric"),
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
                raise AdaptationError(f"--margin expects a number >= 0 or 'auto', got {margin!r}") from None
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
