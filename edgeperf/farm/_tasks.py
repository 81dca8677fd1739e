"""What runs on a worker: describe a device, measure one batch of architectures on it.

A batch never raises for one architecture's failure, nor when the device goes away: it returns
what it measured, so nothing measured is lost with the task. Only an unexpected error (or the
worker's death) fails the task, and then Dask retries it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from edgeperf.errors import DeviceUnavailableError, EnergyMeterUnavailableError
from edgeperf.farm._devices import FarmDevice, make_profiler

__all__ = ["BatchResult", "describe_device", "run_batch", "EVENT_TOPIC"]

#: Topic of the worker events a batch logs when it starts (the client counts re-runs from them).
EVENT_TOPIC = "edgeperf-farm"


@dataclass
class BatchResult:
    """What one batch measured. ``runs`` holds ``(arch, start_s, end_s)`` wall-clock times."""

    resource: str
    rows: list = field(default_factory=list)  # Measurement records
    failed: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None  # the device went away: why
    worker: str = ""
    started_s: float = 0.0
    finished_s: float = 0.0
    runs: list[tuple[str, float, float]] = field(default_factory=list)


def _worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # run outside a worker (tests, a local fallback)
        return ""


def _log_start(device: FarmDevice, n_archs: int) -> None:
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return
    worker.log_event(
        EVENT_TOPIC,
        {"event": "start", "key": str(worker.get_current_task()), "resource": device.resource,
         "worker": worker.address, "archs": n_archs},
    )


def describe_device(device: FarmDevice):
    """``(device with its row name fixed, DeviceSpec under that name)``.

    The name is the profiler's default name plus the serial (phones) or host (runtimes), so a farm
    of ten identical phones has ten devices, and a re-run finds the same files again.
    """
    with make_profiler(dataclasses.replace(device, energy=None)) as prof:  # a meter is checked per batch
        name = device.name or f"{prof.default_name()}-{device.name_suffix}"
        spec = prof.describe()
    named = dataclasses.replace(device, name=name)
    extra = {**spec.extra, "farm_resource": device.resource, "farm_host": device.host}
    return named, dataclasses.replace(spec, name=name, extra=extra)


def run_batch(device: FarmDevice, space: str, archs: list[str], protocol=None) -> BatchResult:
    """Measure ``archs`` of ``space`` on ``device`` (a worker holding its resource runs this)."""
    _log_start(device, len(archs))
    result = BatchResult(resource=device.resource, worker=_worker_address(), started_s=time.time())
    try:
        prof = make_profiler(device, protocol=protocol)
    except (DeviceUnavailableError, EnergyMeterUnavailableError) as exc:
        result.stopped = str(exc)
        result.finished_s = time.time()
        return result
    with prof:
        for arch in archs:
            t0 = time.time()
            try:
                rows = prof.profile(space, arch)
            except (DeviceUnavailableError, EnergyMeterUnavailableError) as exc:
                result.stopped = str(exc)  # every later arch would fail the same way
                break
            except Exception as exc:  # noqa: BLE001  one arch's failure must not cost the batch
                result.failed[arch] = f"{type(exc).__name__}: {exc}"
                continue
            result.rows.extend(rows)
            result.runs.append((arch, t0, time.time()))
    result.finished_s = time.time()
    return result
