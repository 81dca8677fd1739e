"""``edgeperf profile`` and ``edgeperf devices``: measure archs on a device, list devices."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

#: Exit code after Ctrl-C, as a shell reports a SIGINT death (128 + 2).
EXIT_INTERRUPTED = 130
#: Exit code when some archs failed or the device went away (rows written are kept).
EXIT_INCOMPLETE = 1


def _parse_options(pairs: list[str], declared: dict[str, str], kind: str) -> dict[str, str]:
    from edgeperf.errors import UnknownNameError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--option")
        if key not in declared:
            raise UnknownNameError(f"option of profiler {kind!r}", key, declared)
        # Values stay strings: each profiler converts its own (a hex CPU mask "10" is not ten).
        out[key] = raw
    return out


def _energy_meter(name: str, serial: str | None):
    """The energy meter called ``name`` from :mod:`edgeperf.profilers.energy` (given the phone's
    serial when the meter takes one)."""
    import inspect

    from edgeperf.profilers import energy

    takes_serial = "serial" in inspect.signature(energy.meter_class(name)).parameters
    meter = energy.get(name, serial=serial) if serial is not None and takes_serial else energy.get(name)
    check = getattr(meter, "check", None)
    if check is not None:
        check()  # fail before hours of profiling, not at the first arch
    return meter


#: Columns of the file ``profile --onnx`` writes: one row per model file measured.
ONNX_COLUMNS = ("model", "sha256", "device", "runtime", "runtime_version", "batch_size", "threads", "input_shape",
                "latency_ms", "std", "p10", "p90", "cv", "runs", "energy_mj", "timestamp", "edgeperf_version")


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise typer.BadParameter(f"expected positive integers like 1,3,224,224, got {text!r}", param_hint="--input-shape")
    return shape


def _profile_onnx_files(prof, files: list[Path], out: Path, input_shape, quiet: bool) -> int:
    """Measure each ONNX file, appending one row per model to ``out`` as soon as it is measured."""
    import csv
    import datetime as dt
    import hashlib

    from edgeperf._version import __version__
    from edgeperf.datasets import FileLock, check_writable
    from edgeperf.errors import DataValidationError, EdgePerfError, FileAccessError

    if out.suffix.lower() != ".csv":
        raise DataValidationError("expected a .csv file for the per-model results of --onnx", path=out)
    check_writable(out)
    failed = 0
    with FileLock(out):
        if out.exists() and out.stat().st_size:
            with open(out, encoding="utf-8", errors="replace", newline="") as fh:
                header = next(csv.reader(fh), [])
            if tuple(header) != ONNX_COLUMNS:
                raise DataValidationError(f"expected the header of a `profile --onnx` file ({','.join(ONNX_COLUMNS)}); "
                                          "write to a new --out", path=out, row=0)
        else:
            out.write_text(",".join(ONNX_COLUMNS) + "\n", encoding="utf-8")
        spec = prof.describe()
        for path in files:
            try:
                stats, energy = prof.measure_onnx(path, input_shape=input_shape)
            except (EdgePerfError, OSError) as exc:
                if isinstance(exc, FileAccessError):
                    raise
                failed += 1
                typer.secho(f"failed: {path}: {str(exc).splitlines()[0]}", fg="yellow", err=True)
                continue
            row = {
                "model": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "device": prof.device_name, "runtime": spec.runtime, "runtime_version": spec.runtime_version,
                "batch_size": prof.batch_size, "threads": prof.threads,
                "input_shape": "x".join(map(str, input_shape)) if input_shape else "",
                "latency_ms": repr(stats.median_ms), "std": repr(stats.std_ms), "p10": repr(stats.p10_ms),
                "p90": repr(stats.p90_ms), "cv": repr(stats.cv), "runs": stats.runs,
                "energy_mj": repr(energy["energy_mj"]) if energy else "",
                "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "edgeperf_version": __version__,
            }
            with open(out, "a", encoding="utf-8", newline="") as fh:  # one row per model, flushed at once
                csv.writer(fh, lineterminator="\n").writerow([row[c] for c in ONNX_COLUMNS])
            typer.echo(f"{stats.median_ms:.4g} ms (p10 {stats.p10_ms:.4g}, p90 {stats.p90_ms:.4g})\t{path}")
    typer.echo(f"{len(files) - failed} of {len(files)} models measured on {prof.device_name}; rows in {out}", err=True)
    return failed


def profile(
    device: str = typer.Option(..., "--device", "-d", help="Profiler (see `edgeperf devices`)."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Search space."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV file to append rows to (resumed if it exists)."),
    samples: Optional[int] = typer.Option(None, "--samples", "-n", min=1, help="Profile the first N distinct archs sampled with --seed."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed; more --samples with the same seed extends the sample."),
    archs_file: Optional[Path] = typer.Option(None, "--archs", help="Text file, one architecture per line (instead of --samples)."),
    reference: bool = typer.Option(False, "--reference", help="Also measure the space's reference architectures "
                                   "(what `edgeperf adapt` needs for an accurate device signature); alone or with "
                                   "--samples / --archs."),
    onnx: Optional[List[Path]] = typer.Option(None, "--onnx", help="Measure your own ONNX model file(s) instead of "
                                              "a space's architectures (repeatable); one row per model in OUT."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="Input shape N,C,H,W for --onnx models "
                                              "with symbolic dimensions."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="Runtime threads (default: the profiler's, 1 for local runtimes)."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", min=1, help="Batch size."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs per arch."),
    repeats: int = typer.Option(50, "--repeats", min=1, help="Timed runs per round."),
    max_rounds: int = typer.Option(3, "--max-rounds", min=1, help="Rounds tried when the spread stays above --max-cv."),
    max_cv: float = typer.Option(0.10, "--max-cv", help="Coefficient of variation under which a round is accepted."),
    name: Optional[str] = typer.Option(None, "--name", help="Device name in the rows (default: derived from CPU, runtime, threads, batch)."),
    energy: Optional[str] = typer.Option(None, "--energy", help="Energy meter to read around the timed runs."),
    serial: Optional[str] = typer.Option(None, "--serial", help="Phone serial (profilers that declare it, e.g. android)."),
    option: List[str] = typer.Option([], "--option", help="Profiler-specific NAME=VALUE (see `edgeperf devices`); repeatable."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Profile architectures on one device, appending rows durably to OUT (Ctrl-C keeps what is saved)."""
    from edgeperf import datasets, profilers, spaces
    from edgeperf.cli._predict import read_archs_file
    from edgeperf.errors import InvalidParameterError, UnknownNameError
    from edgeperf.profilers import MeasurementProtocol
    from edgeperf.profilers import profile_archs, sample_archs

    cls = profilers.get(device)
    shape = _parse_shape(input_shape)
    if onnx:
        if samples is not None or archs_file is not None or reference or space is not None:
            raise InvalidParameterError("--onnx measures model files: leave out --space, --samples, --archs, --reference")
        sp, archs = None, []
    else:
        if space is None:
            raise InvalidParameterError("expected --space NAME (or --onnx FILE...)")
        sp = spaces.get(space)
        if samples is not None and archs_file is not None:
            raise InvalidParameterError("expected one of --samples N or --archs FILE, not both")
        if samples is None and archs_file is None and not reference:
            raise InvalidParameterError("expected --samples N, --archs FILE or --reference")
        archs = datasets.reference_archs(sp.name) if reference else []
        if samples is not None:
            archs += sample_archs(sp, samples, seed=seed)
        elif archs_file is not None:
            archs += read_archs_file(archs_file)
    kwargs = _parse_options(option, cls.options, device)
    if serial is not None:
        if "serial" not in cls.options:
            raise UnknownNameError(f"option of profiler {device!r}", "serial", cls.options)
        kwargs["serial"] = serial
    if threads is not None:
        kwargs["threads"] = threads
    try:
        protocol = MeasurementProtocol(warmup=warmup, repeats=repeats, max_rounds=max_rounds, max_cv=max_cv)
    except ValueError as exc:  # InvalidParameterError: a usage error of these options
        raise typer.BadParameter(str(exc)) from None
    meter = _energy_meter(energy, serial) if energy else None
    with cls(name=name, protocol=protocol, energy_meter=meter, batch_size=batch_size, **kwargs) as prof:
        if onnx:
            if _profile_onnx_files(prof, list(onnx), out, shape, quiet):
                raise SystemExit(EXIT_INCOMPLETE)
            return
        typer.echo(f"profiling {len(archs)} {sp.name} archs on {prof.device_name} -> {out}", err=True)
        summary = profile_archs(prof, sp, archs, out, progress=not quiet)
    typer.echo(
        f"{summary.measured} measured, {summary.skipped} already in {out}, {len(summary.failed)} failed; "
        f"{summary.rows_written} rows written in {summary.elapsed_s:.1f} s",
        err=True,
    )
    for arch, msg in summary.failed.items():
        typer.secho(f"failed: {arch}: {msg.splitlines()[0]}", fg="yellow", err=True)
    if summary.interrupted:
        typer.secho(f"interrupted: the {summary.rows_written} rows written so far are saved in {out} "
                    f"({summary.rows_in_file} rows in the file); re-run the same command to resume", fg="red", err=True)
        # SystemExit, not typer.Exit: under standalone_mode=False click turns Exit into a return
        # value that edgeperf.cli.main drops, and the shell would see 0.
        raise SystemExit(EXIT_INTERRUPTED)
    if summary.stopped:
        typer.secho(f"stopped: {summary.stopped}\nrows written so far are saved; re-run to resume", fg="red", err=True)
        raise SystemExit(EXIT_INCOMPLETE)
    if summary.failed:
        raise SystemExit(EXIT_INCOMPLETE)


def devices() -> None:
    """List the local runtimes (and why one is unavailable) and attached phones."""
    from rich.console import Console
    from rich.table import Table

    from edgeperf import profilers
    from edgeperf.errors import EdgePerfError

    table = Table(title="profilers")
    for col in ("device", "status", "options"):
        table.add_column(col)
    for kind in profilers.names():
        cls = profilers.get(kind)
        try:
            reason = cls.availability()
        except Exception as exc:  # noqa: BLE001  a broken runtime is itself worth reporting
            reason = f"availability check failed: {exc}"
        opts = ", ".join(sorted(cls.options))
        table.add_row(kind, "available" if reason is None else f"unavailable: {reason}", opts)
    console = Console()
    console.print(table)
    if "android" not in profilers.names():
        return
    android = profilers.get("android")
    discover = getattr(android, "discover", None)
    if discover is None or android.availability() is not None:
        console.print("phones: not looked for (the android profiler is unavailable)")
        return
    try:
        phones = list(discover())
    except EdgePerfError as exc:
        console.print(f"phones: none ({exc})")
        return
    if not phones:
        console.print("phones: none attached")
        return
    ptable = Table(title="attached phones")
    keys = sorted({k for p in phones for k in p}, key=lambda k: (k != "serial", k != "state", k))
    for k in keys:
        ptable.add_column(k)
    for p in phones:
        ptable.add_row(*(str(p.get(k, "")) for k in keys))
    console.print(ptable)


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``devices`` to ``app``."""
    import inspect

    from edgeperf import profilers, spaces

    # Choices come from the registries, so a profiler registered later (android) shows up.
    params = inspect.signature(profile).parameters
    params["device"].default.help = f"Profiler: {', '.join(profilers.names())} (see `edgeperf devices`)."
    params["space"].default.help = f"Search space: {', '.join(spaces.names())}."
    app.command("profile")(profile)
    app.command("devices")(devices)
