"""``edgeperf farm``: profile many devices at once on a Dask cluster, and serve devices as a worker."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgeperf.cli._predict import read_archs_file
from edgeperf.cli._profile import EXIT_INCOMPLETE, EXIT_INTERRUPTED, _parse_options

farm_app = typer.Typer(
    help="Device farm on Dask: every device a Dask resource, one task per (device, batch of archs).",
    no_args_is_help=True,
)

_OPTION_HELP = "Profiler option NAME=VALUE given to every device whose profiler takes it (e.g. runner=PATH); repeatable."
_RUNTIME_HELP = "Local runtime to serve as a device (onnxruntime, torch, tvm); repeatable."


def _options(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs; a name no profiler takes is an error (values stay strings)."""
    from edgeperf import profilers

    known = {"threads", "batch_size"}.union(*(profilers.get(k).options for k in profilers.names()))
    return _parse_options(pairs, dict.fromkeys(known, ""), "any")


@farm_app.command("profile")
def profile(
    space: str = typer.Option(..., "--space", "-s", help="Search space."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder: one CSV per device (resumed if present)."),
    samples: Optional[int] = typer.Option(None, "--samples", "-n", min=1, help="The first N distinct archs sampled with --seed, on every device."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    archs_file: Optional[Path] = typer.Option(None, "--archs", help="Text file, one architecture per line (instead of --samples)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler, e.g. tcp://host:8786 (default: an embedded LocalCluster serving this machine's devices)."),
    device: List[str] = typer.Option([], "--device", "-d", help="Only this device (name, resource, serial or profiler kind); repeatable."),
    runtime: List[str] = typer.Option([], "--runtime", help=_RUNTIME_HELP + " Embedded cluster only."),
    adb: bool = typer.Option(True, "--adb/--no-adb", help="Serve the phones in `adb devices` (embedded cluster only)."),
    option: List[str] = typer.Option([], "--option", help=_OPTION_HELP),
    batch: int = typer.Option(8, "--batch", min=1, help="Archs per task: a worker's death loses at most this many measurements."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs per arch."),
    repeats: int = typer.Option(50, "--repeats", min=1, help="Timed runs per round."),
    max_rounds: int = typer.Option(3, "--max-rounds", min=1, help="Rounds tried when the spread stays above --max-cv."),
    max_cv: float = typer.Option(0.10, "--max-cv", help="Coefficient of variation under which a round is accepted."),
    retries: int = typer.Option(2, "--retries", min=0, help="Retries of a task that raised (re-runs after a worker death are automatic)."),
    lost_timeout: float = typer.Option(120.0, "--lost-timeout", min=0, help="Seconds a device may have no worker before its batches are given up."),
    energy: Optional[str] = typer.Option(None, "--energy", help="Energy meter read on every device (e.g. android-battery: each phone's own gauge)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the run's summary as JSON here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Profile archs on every device of a Dask cluster; rows land in OUT/<device>.csv as batches finish."""
    import json

    from edgeperf import farm
    from edgeperf.errors import ArchitectureError
    from edgeperf.profilers import MeasurementProtocol

    if (samples is None) == (archs_file is None):
        raise ArchitectureError("expected exactly one of --samples N or --archs FILE")
    archs = read_archs_file(archs_file) if archs_file is not None else None
    protocol = MeasurementProtocol(warmup=warmup, repeats=repeats, max_rounds=max_rounds, max_cv=max_cv)
    where = scheduler or "an embedded LocalCluster"
    typer.echo(f"profiling {space} on {where} -> {out}/", err=True)
    summary = farm.profile(
        space, out=out, samples=samples, archs=archs, seed=seed, scheduler=scheduler, devices=device or None,
        runtimes=runtime, adb=adb, options=_options(option), protocol=protocol, batch_archs=batch,
        retries=retries, lost_device_timeout_s=lost_timeout, energy=energy, progress=not quiet,
    )
    for line in summary.report():
        color = None if ":" not in line.split(" ")[0] else "yellow"
        typer.secho(line, fg=color, err=True)
    typer.echo(f"{summary.batches} batches in {summary.elapsed_s:.1f} s", err=True)
    if json_out is not None:
        json_out.write_text(json.dumps(summary.to_dict(), indent=1))
    if any(s.interrupted for s in summary.devices.values()):
        typer.secho(f"interrupted: rows written so far are saved in {out}/; re-run the same command to resume", fg="red", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    if not summary.complete:
        typer.secho(f"incomplete: rows written are saved in {out}/; re-run the same command to resume", fg="red", err=True)
        raise SystemExit(EXIT_INCOMPLETE)


@farm_app.command("worker")
def worker(
    scheduler: str = typer.Argument(..., help="Dask scheduler address, e.g. tcp://host:8786."),
    runtime: List[str] = typer.Option([], "--runtime", help=_RUNTIME_HELP),
    adb: bool = typer.Option(True, "--adb/--no-adb", help="Serve the phones in `adb devices`."),
    serial: List[str] = typer.Option([], "--serial", help="Only these phones (default: every attached one); repeatable."),
    option: List[str] = typer.Option([], "--option", help=_OPTION_HELP),
    host: Optional[str] = typer.Option(None, "--host", help="Address the worker listens on (e.g. 127.0.0.1)."),
    name: Optional[str] = typer.Option(None, "--name", help="Worker name (default: Dask's)."),
    rediscover: float = typer.Option(60.0, "--rediscover", min=0, help="Look for newly attached phones every this many seconds (0: never)."),
) -> None:
    """Serve this host's devices (phones on adb, local runtimes) to a farm, until Ctrl-C or SIGTERM."""
    from edgeperf import farm
    from edgeperf.errors import FarmError

    opts = _options(option)
    devices = farm.discover_devices(runtimes=runtime, adb=adb, serials=serial or None, options=opts)
    if not devices and not (adb and rediscover):
        raise FarmError("no device to serve: no phone in `adb devices -l` and no --runtime given")
    for d in devices:
        typer.echo(f"serving {d.resource} ({d.profiler})", err=True)
    watcher = None
    if adb and rediscover:
        watcher = farm.FarmPlugin(runtimes=runtime, adb=adb, options=opts, serials=serial or None, rediscover_s=rediscover)
    farm.serve_worker(scheduler, devices, host=host, name=name, rediscover=watcher)


@farm_app.command("devices")
def devices(
    scheduler: str = typer.Option(..., "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786."),
    option: List[str] = typer.Option([], "--option", help=_OPTION_HELP),
) -> None:
    """List the devices of a farm: resource, profiler, host."""
    from rich.console import Console
    from rich.table import Table

    from edgeperf import farm

    with farm.connect(scheduler=scheduler) as client:
        found = farm.cluster_devices(client, options=_options(option))
    table = Table(title=f"devices of {scheduler}")
    for col in ("resource", "profiler", "host"):
        table.add_column(col)
    for d in found:
        table.add_row(d.resource, d.profiler, d.host)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``farm`` command group to ``app``."""
    app.add_typer(farm_app, name="farm")
