"""Crash-safe profiling runs: many architectures, one device, one file, resumable."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from edgeperf.errors import (
    ArchitectureError,
    DeviceUnavailableError,
    EnergyMeterUnavailableError,
    InvalidParameterError,
)

__all__ = ["ProfileSummary", "profile_archs", "progress_bar", "sample_archs"]

log = logging.getLogger(__name__)

#: Architectures drawn per pool in :func:`sample_archs`. Fixed, so ``sample(pool, seed)`` and
#: hence the first N archs do not depend on N: a run with more samples extends a smaller one.
SAMPLE_POOL = 4096
#: Pools tried (each ``SAMPLE_POOL * 2**k``) before giving up on finding N distinct archs.
MAX_POOL_DOUBLINGS = 8


@dataclass
class ProfileSummary:
    """What a profiling run did. ``failed`` maps arch -> error message (no row was written)."""

    out_path: Path
    device: str
    requested: int = 0
    skipped: int = 0  # already in the file (resume)
    measured: int = 0  # archs measured and written in this run
    rows_written: int = 0
    rows_in_file: int = 0  # after the run, this run's rows and earlier ones
    failed: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None  # why the run ended early (device gone), else None
    interrupted: bool = False  # Ctrl-C: rows written so far are kept
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed and self.stopped is None and not self.interrupted

    def to_dict(self) -> dict:
        return {
            "out_path": str(self.out_path),
            "device": self.device,
            "requested": self.requested,
            "skipped": self.skipped,
            "measured": self.measured,
            "rows_written": self.rows_written,
            "rows_in_file": self.rows_in_file,
            "failed": dict(self.failed),
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "elapsed_s": self.elapsed_s,
        }


def sample_archs(space, n: int, *, seed: int) -> list[str]:
    """The first ``n`` distinct archs of ``space.sample(pool, seed=seed)`` (prefix-stable in n)."""
    from edgeperf import spaces

    space = spaces.get(space)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InvalidParameterError(f"expected --samples >= 1, got {n!r}")
    if space.size is not None and n > space.size:
        raise ArchitectureError(f"expected at most {space.size} samples: space {space.name!r} has no more archs, got {n}")
    pool = SAMPLE_POOL
    for _ in range(MAX_POOL_DOUBLINGS + 1):
        seen: dict[str, None] = {}
        for a in space.sample(pool, seed=seed):
            seen.setdefault(a, None)
            if len(seen) == n:
                return list(seen)
        pool *= 2
    raise ArchitectureError(f"could not draw {n} distinct archs of {space.name!r} from {pool // 2} samples")


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
        console=Console(stderr=True),  # stdout stays free for data a caller may pipe
        disable=not enabled,
        transient=False,
    )


#: The rich progress bar of profiling runs (one row per device; fields ``last``), public for the farm.
progress_bar = _progress


class _StopRequest:
    requested = False


@contextmanager
def _stop_after_row_in_flight():
    """The first Ctrl-C asks the run to stop once the row in flight is written, so the count the
    user is told always matches the file; a second one stops at once (the torn row, if any, is
    cut on the next open). Only the main thread can own SIGINT: elsewhere Ctrl-C stays as it is."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        log.warning("stopping after the architecture in flight; press Ctrl-C again to stop now")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def profile_archs(profiler, space, archs: Iterable[str], out_path, *, progress: bool = True) -> ProfileSummary:
    """Measure ``archs`` of ``space`` with ``profiler``, appending each result to ``out_path`` at once.

    - Archs whose rows for this device are already in the file are skipped (resume).
    - Duplicates in ``archs`` are measured once.
    - A :class:`ProfilingError` on one arch is logged and recorded in ``summary.failed`` (no row is
      written: never a 0 or -1) and the run goes on.
    - :class:`DeviceUnavailableError` (or :class:`EnergyMeterUnavailableError`) stops the run: rows
      written so far stay, ``summary.stopped`` says why.
    - Ctrl-C stops after the row in flight (a second Ctrl-C at once); ``summary.interrupted`` is set.
    """
    from edgeperf import spaces
    from edgeperf.datasets import RowWriter

    space = spaces.get(space)
    archs = list(dict.fromkeys(space.validate(archs)))
    device = profiler.device_name
    metrics = ["latency_ms"] + (["energy_mj"] if getattr(profiler, "energy_meter", None) is not None else [])
    summary = ProfileSummary(out_path=Path(out_path), device=device, requested=len(archs))
    t_start = time.perf_counter()
    with RowWriter(out_path, devices_info=[profiler.device_spec()]) as writer:
        if writer.repaired_bytes:
            log.warning("cut a torn last line (%d bytes) off %s", writer.repaired_bytes, out_path)
        done = writer.existing_keys()
        todo = [a for a in archs if not all((space.name, a, device, m) in done for m in metrics)]
        summary.skipped = len(archs) - len(todo)
        with _progress(progress) as bar, _stop_after_row_in_flight() as stop:
            task = bar.add_task(f"{device}", total=len(todo), last="")
            try:
                for arch in todo:
                    if stop.requested:
                        break
                    try:
                        rows = profiler.profile(space, arch)
                    except (DeviceUnavailableError, EnergyMeterUnavailableError) as exc:
                        # Every later arch would fail the same way: stop, keep what is written.
                        summary.stopped = str(exc)
                        log.error("device %s became unavailable; stopping: %s", device, exc)
                        break
                    except Exception as exc:  # noqa: BLE001
                        # ProfilingError, or a model a runtime's exporter/compiler chokes on: one
                        # arch's failure must not cost the hours of measurements still to come.
                        summary.failed[arch] = f"{type(exc).__name__}: {exc}"
                        log.warning("failed to profile %s on %s: %s", arch, device, exc)
                        bar.advance(task)
                        continue
                    rows = [r for r in rows if (r.space, r.arch, r.device, r.metric) not in done]
                    summary.rows_written += writer.append(rows)
                    summary.measured += 1
                    latency = next((r.value for r in rows if r.metric == "latency_ms"), None)
                    bar.update(task, advance=1, last=f"{latency:.3f} ms" if latency else "")
            except KeyboardInterrupt:  # the second Ctrl-C, or one where the run does not own SIGINT
                stop.requested = True
            summary.interrupted = stop.requested
        summary.rows_in_file = len(writer)
    summary.elapsed_s = time.perf_counter() - t_start
    return summary
