"""The client side of ``edgeperf farm profile``: one task per (device, batch of architectures).

The client owns every output file (one :class:`~edgeperf.datasets.RowWriter` per device, so one
writer per file), writes each batch's rows the moment the batch finishes, and on a re-run skips
what the files already hold. Failure handling, by what fails:

- one architecture fails on the device: recorded in that device's ``failed``, the batch goes on;
- the device goes away (phone unplugged): the batch returns what it measured, the device's later
  batches are cancelled, ``stopped`` says why; re-run to resume;
- a worker dies: Dask re-runs its in-flight batch on a worker holding the device's resource (a
  restarted worker, or another one that owns the device); only that batch's work is lost. A batch
  that kills ``distributed.scheduler.allowed-failures`` workers is reported as failed;
- no worker holds a device's resource any more for ``lost_device_timeout_s``: its batches are
  cancelled and the device is reported as lost;
- a task raises: Dask retries it ``retries`` times, then its archs are reported as failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from edgeperf.errors import ArchitectureError, FarmError, InvalidParameterError
from edgeperf.farm._devices import PHONE_PREFIX, FarmDevice, discover_devices, options_for, phone_device
from edgeperf.farm._tasks import EVENT_TOPIC, describe_device, run_batch
from edgeperf.farm._worker import FarmPlugin, worker_devices
from edgeperf.profilers import ProfileSummary, progress_bar, sample_archs

__all__ = ["FarmSummary", "profile", "cluster_devices", "connect", "DEFAULT_BATCH_ARCHS"]

log = logging.getLogger(__name__)

#: Architectures per task: small enough that a worker's death loses little, large enough that the
#: scheduler's per-task overhead (a few ms, see benchmarks/farm.py) is noise next to the runs.
DEFAULT_BATCH_ARCHS = 8
#: Dask retries of a batch whose task raised (not counting re-runs after a worker died).
DEFAULT_RETRIES = 2
#: Seconds a device may have no worker in the cluster before its batches are given up.
DEFAULT_LOST_DEVICE_TIMEOUT_S = 120.0
#: Seconds to wait for the scheduler when connecting.
CONNECT_TIMEOUT_S = 15.0
#: Batches submitted per device at a time (topped up as they finish): the device never waits for
#: the scheduler, and the scheduler holds a few tasks per device, not a whole campaign's.
DEFAULT_WINDOW = 3
#: Seconds the devices' description (a few adb calls or a CPU probe each) may take in all.
DESCRIBE_TIMEOUT_S = 300.0
#: How often the client wakes up to check for lost devices while waiting for batches.
_POLL_S = 1.0


@dataclass
class FarmSummary:
    """What a farm run did: one :class:`~edgeperf.profilers.ProfileSummary` per device (by name)."""

    out_dir: Path
    devices: dict[str, ProfileSummary] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # resource -> why it could not be described
    reruns: list[str] = field(default_factory=list)  # batches Dask ran again after a worker died
    batches: int = 0
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.unreachable and all(s.complete for s in self.devices.values())

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "devices": {d: s.to_dict() for d, s in self.devices.items()},
            "unreachable": dict(self.unreachable),
            "reruns": list(self.reruns),
            "batches": self.batches,
            "elapsed_s": self.elapsed_s,
            "complete": self.complete,
        }

    def report(self) -> list[str]:
        """One line per device, then one per problem: what a user reads after a run."""
        lines = []
        for name, s in sorted(self.devices.items()):
            state = "interrupted" if s.interrupted else "stopped" if s.stopped else "incomplete" if s.failed else "complete"
            lines.append(
                f"{name}: {s.measured} measured, {s.skipped} already there, {len(s.failed)} failed, "
                f"{s.rows_in_file} rows in {s.out_path} ({state})"
            )
        for name, s in sorted(self.devices.items()):
            if s.stopped:
                lines.append(f"stopped: {name}: {s.stopped.splitlines()[0]}")
            for arch, msg in s.failed.items():
                lines.append(f"failed: {name}: {arch}: {msg.splitlines()[0]}")
        for resource, why in sorted(self.unreachable.items()):
            lines.append(f"unreachable: {resource}: {why.splitlines()[0]}")
        lines.extend(f"re-run: {r}" for r in self.reruns)
        return lines


# ---- cluster -------------------------------------------------------------------------------------
@contextlib.contextmanager
def connect(
    *,
    client=None,
    scheduler: str | None = None,
    runtimes: Iterable[str] = (),
    adb: bool = True,
    options: Mapping[str, Any] | None = None,
    processes: bool = False,
):
    """A Dask client: ``client`` itself, one connected to ``scheduler``, or (neither given) one on an
    embedded ``LocalCluster`` whose single worker owns this machine's devices (phones on adb and
    the local ``runtimes``)."""
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if scheduler is not None:
        try:
            c = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise FarmError(
                f"could not reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S:.0f} s ({exc}); "
                "start one with `dask scheduler` and check the address"
            ) from None
        with c:
            yield c
        return
    devices = discover_devices(runtimes=runtimes, adb=adb, options=options)
    if not devices:
        raise FarmError(
            "no device on this machine: no phone in `adb devices -l` and no --runtime given; attach a phone "
            "or pass e.g. --runtime onnxruntime, or connect to a farm with --scheduler"
        )
    resources = {r: 1 for d in devices for r in d.resources}
    with LocalCluster(
        n_workers=1,
        threads_per_worker=len(devices),
        processes=processes,
        resources=resources,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,  # a failed task is reported in the summary, not as a traceback
    ) as cluster, Client(cluster) as c:
        c.register_plugin(FarmPlugin(devices))
        yield c


def cluster_devices(client, *, options: Mapping[str, Any] | None = None) -> list[FarmDevice]:
    """Every device of the cluster: those registered by a :class:`FarmPlugin`, plus phones of plain
    workers started with ``--resources phone-SERIAL=1`` (profiled with ``options``, e.g. a runner)."""
    registered = client.run(worker_devices)
    info = client.scheduler_info(n_workers=-1)["workers"]
    owner: dict[str, str] = {}
    devices: list[FarmDevice] = []
    for addr, devs in sorted(registered.items()):
        for d in devs:
            if d.resource in owner and owner[d.resource] != addr:
                raise FarmError(
                    f"device {d.resource} is registered by workers {owner[d.resource]} and {addr}; one device "
                    "must belong to exactly one worker, or two tasks could run on it at once"
                )
            owner[d.resource] = addr
            devices.append(d)
    for addr, winfo in sorted(info.items()):
        for resource in winfo.get("resources", {}):
            if resource.startswith(PHONE_PREFIX) and resource not in owner:
                owner[resource] = addr
                devices.append(phone_device(resource[len(PHONE_PREFIX):], options=options_for("android", options)))
    overrides = dict(options or {})
    return [d.with_options(overrides) for d in devices]


def _present_resources(client) -> set[str]:
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {r for w in info.values() for r, q in w.get("resources", {}).items() if q > 0}


# ---- one run -------------------------------------------------------------------------------------
@dataclass
class _DeviceRun:
    device: FarmDevice
    writer: Any
    summary: ProfileSummary
    done: set
    todo: list[str]
    pending: set = field(default_factory=set)
    queue: list = field(default_factory=list)  # batches not submitted yet, in order
    submitted: int = 0
    lost_since: float | None = None
    bar_task: Any = None


def _matches(device: FarmDevice, wanted: str) -> bool:
    return wanted in {device.resource, device.name, device.profiler, str(device.options.get("serial", ""))}


def _select(devices: list[FarmDevice], wanted: Sequence[str] | None) -> list[FarmDevice]:
    if wanted is None:
        return devices
    unknown = [w for w in wanted if not any(_matches(d, w) for d in devices)]
    if unknown:
        known = sorted(f"{d.name} ({d.resource})" for d in devices)
        raise FarmError(f"expected devices of the cluster, got {unknown}; the cluster has: {', '.join(known) or 'none'}")
    return [d for d in devices if any(_matches(d, w) for w in wanted)]


def _archs_for(device: FarmDevice, archs) -> list[str] | None:
    if not isinstance(archs, Mapping):
        return list(archs)
    for key, value in archs.items():
        if _matches(device, key):
            return list(value)
    return None


def profile(
    space,
    *,
    out,
    samples: int | None = None,
    archs: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    client=None,
    scheduler: str | None = None,
    devices: Sequence[str] | None = None,
    runtimes: Iterable[str] = (),
    adb: bool = True,
    options: Mapping[str, Any] | None = None,
    protocol=None,
    batch_archs: int = DEFAULT_BATCH_ARCHS,
    retries: int = DEFAULT_RETRIES,
    lost_device_timeout_s: float = DEFAULT_LOST_DEVICE_TIMEOUT_S,
    window: int = DEFAULT_WINDOW,
    energy: str | None = None,
    energy_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> FarmSummary:
    """Profile architectures of ``space`` on every device of a Dask cluster, one CSV per device in ``out``.

    Architectures: the first ``samples`` distinct ones drawn with ``seed`` (the same on every
    device), or ``archs`` -- a list for every device, or ``{device: list}`` (a device is matched by
    name, resource, serial or profiler kind; devices not in the mapping are skipped).
    Cluster: ``client``, else ``scheduler`` (``tcp://host:8786``), else an embedded LocalCluster
    serving this machine's phones and the local ``runtimes``. ``devices`` restricts the run to
    some devices; ``options`` (``{"runner": path, "threads": 1}``) is given to every profiler
    that takes it. ``batch_archs`` archs go in one task and ``window`` tasks per device are
    submitted at a time. ``energy`` names an energy meter read on every device (with
    ``energy_options``; a phone's ``android-battery`` gets its serial), adding ``energy_mj`` rows.
    Re-running the same call resumes: rows already in the files are not measured.
    """
    from edgeperf import spaces
    from edgeperf.datasets import RowWriter

    space = spaces.get(space)
    if (samples is None) == (archs is None):
        raise ArchitectureError("expected exactly one of samples=N or archs=[...]")
    if batch_archs < 1 or window < 1:
        raise InvalidParameterError(f"expected batch_archs >= 1 and window >= 1, got {batch_archs} and {window}")
    shared = sample_archs(space, samples, seed=seed) if samples is not None else archs
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = FarmSummary(out_dir=out_dir)
    t_start = time.perf_counter()
    token = uuid.uuid4().hex[:8]

    with connect(client=client, scheduler=scheduler, runtimes=runtimes, adb=adb, options=options) as c:
        found = cluster_devices(c, options=options)
        if energy:
            found = [dataclasses.replace(d, energy=energy, energy_options=dict(energy_options or {})) for d in found]
        named = _describe_all(c, found, summary, token, DESCRIBE_TIMEOUT_S)
        runs: dict[str, _DeviceRun] = {}
        futures: dict[Any, tuple[str, list[str]]] = {}
        with contextlib.ExitStack() as stack:
            for device, spec in _select_named(named, devices, summary.unreachable):
                mine = _archs_for(device, shared)
                if mine is None:
                    continue
                mine = list(dict.fromkeys(space.validate(mine)))
                path = out_dir / f"{device.name}.csv"
                writer = stack.enter_context(RowWriter(path, devices_info=[spec]))
                done = writer.existing_keys()
                todo = [a for a in mine if not all((space.name, a, device.name, m) in done for m in device.metrics)]
                s = ProfileSummary(out_path=path, device=device.name, requested=len(mine), skipped=len(mine) - len(todo))
                runs[device.name] = _DeviceRun(device=device, writer=writer, summary=s, done=done, todo=todo)
            if not runs:
                why = "".join(f"\n  {r}: {m.splitlines()[0]}" for r, m in sorted(summary.unreachable.items()))
                raise FarmError(
                    "no device to profile: " + (f"none could be described:{why}" if why else
                                                "the cluster has none that matches (see `edgeperf farm devices`)")
                )

            def submit(run: _DeviceRun) -> None:
                """Keep ``window`` batches of ``run``'s device submitted."""
                while run.queue and len(run.pending) < window:
                    batch = run.queue.pop(0)
                    fut = c.submit(
                        run_batch, run.device, space.name, batch, protocol,
                        resources=run.device.resources, retries=retries, pure=False,
                        key=f"edgeperf-batch-{token}-{run.device.resource}-{run.submitted}",
                    )
                    run.submitted += 1
                    futures[fut] = (run.device.name, batch)
                    run.pending.add(fut)

            for run in runs.values():
                run.queue = [run.todo[i : i + batch_archs] for i in range(0, len(run.todo), batch_archs)]
                summary.batches += len(run.queue)
                submit(run)
            with progress_bar(progress) as bar:
                for name, run in runs.items():
                    run.bar_task = bar.add_task(name, total=len(run.todo), last="")
                try:
                    _wait_all(c, runs, futures, bar, lost_device_timeout_s, submit)
                except KeyboardInterrupt:
                    c.cancel(list(futures))
                    for run in runs.values():
                        run.summary.interrupted = True
            for name, run in runs.items():
                run.summary.rows_in_file = len(run.writer)
                run.summary.elapsed_s = time.perf_counter() - t_start
                summary.devices[name] = run.summary
        summary.reruns = _reruns(c, token, futures)
    summary.elapsed_s = time.perf_counter() - t_start
    return summary


def _describe_all(client, devices, summary, token, timeout_s):
    """Name and describe every device on its own worker: ``[(named device, spec)]``."""
    from distributed import wait

    futs = {
        client.submit(describe_device, d, resources=d.resources, pure=False, key=f"edgeperf-describe-{token}-{d.resource}"): d
        for d in devices
    }
    with contextlib.suppress(TimeoutError):  # a device nobody described in time is reported below
        wait(list(futs), timeout=timeout_s)
    named = []
    for fut, d in futs.items():
        if fut.status == "finished":
            named.append(fut.result())
        elif fut.status == "error":
            summary.unreachable[d.resource] = f"{type(fut.exception()).__name__}: {fut.exception()}"
        else:
            fut.cancel()
            summary.unreachable[d.resource] = f"no worker described it within {timeout_s:.0f} s"
    return named


def _select_named(named, wanted, unreachable):
    """The described devices ``wanted`` asks for; two devices under one name would share a file."""
    try:
        chosen = {d.resource for d in _select([d for d, _ in named], wanted)} if named or wanted else set()
    except FarmError as exc:
        why = "".join(f"; {r} could not be described: {m.splitlines()[0]}" for r, m in sorted(unreachable.items()))
        raise FarmError(f"{exc}{why}") from None
    picked = [(d, s) for d, s in named if d.resource in chosen]
    names: dict[str, str] = {}
    for d, _ in picked:
        if d.name in names:
            raise FarmError(
                f"devices {names[d.name]} and {d.resource} are both named {d.name!r}: their rows would go to one "
                "file; give them distinct names"
            )
        names[d.name] = d.resource
    return picked


def _wait_all(client, runs, futures, bar, lost_timeout_s, submit) -> None:
    from distributed import wait
    from distributed.scheduler import KilledWorker

    while True:
        # The devices' own sets: a stopped device's cancelled batches are no longer waited for.
        pending = set().union(*(run.pending for run in runs.values()))
        if not pending:
            return
        try:
            done, _ = wait(list(pending), timeout=_POLL_S, return_when="FIRST_COMPLETED")
        except TimeoutError:  # nothing finished within the poll: check for lost devices
            done = set()
        for fut in done:
            name, batch = futures[fut]
            run = runs[name]
            run.pending.discard(fut)
            if fut.status == "finished":
                _write(client, run, fut.result())
            elif fut.status == "error":
                exc = fut.exception()
                why = (
                    f"its task killed {type(exc).__name__} workers (a crash on the device or runtime?): {exc}"
                    if isinstance(exc, KilledWorker) else f"{type(exc).__name__}: {exc}"
                )
                for arch in batch:
                    run.summary.failed.setdefault(arch, why)
            submit(run)
            bar.update(run.bar_task, completed=run.summary.measured + len(run.summary.failed), last=_status(run))
        _give_up_lost(client, runs, futures, lost_timeout_s, bar)


def _write(client, run: _DeviceRun, result) -> None:
    new = [r for r in result.rows if (r.space, r.arch, r.device, r.metric) not in run.done]
    run.summary.rows_written += run.writer.append(new)
    run.done.update((r.space, r.arch, r.device, r.metric) for r in new)
    run.summary.measured += len({r.arch for r in new})
    run.summary.failed.update(result.failed)
    if result.stopped and not run.summary.stopped:
        run.summary.stopped = result.stopped
        _drop_batches(client, run)  # the device is gone: its later batches too


def _status(run: _DeviceRun) -> str:
    if run.summary.stopped:
        return "[red]stopped"
    if run.summary.failed:
        return f"[yellow]{len(run.summary.failed)} failed"
    return "" if run.pending or run.queue else "[green]done"


def _give_up_lost(client, runs, futures, timeout_s, bar) -> None:
    waiting = [r for r in runs.values() if r.pending]
    if not waiting:
        return
    present = _present_resources(client)
    now = time.monotonic()
    for run in waiting:
        if run.device.resource in present:
            run.lost_since = None
            continue
        run.lost_since = run.lost_since or now
        if now - run.lost_since >= timeout_s:
            left = sum(len(futures[f][1]) for f in run.pending) + sum(len(b) for b in run.queue)
            run.summary.stopped = (
                f"no worker in the cluster has held {run.device.resource} for {timeout_s:.0f} s (its worker died "
                f"or left); {left} archs not measured; restart that worker and re-run to resume"
            )
            _drop_batches(client, run)
            bar.update(run.bar_task, last=_status(run))


def _drop_batches(client, run: _DeviceRun) -> None:
    client.cancel(list(run.pending))
    run.pending.clear()
    run.queue.clear()


def _reruns(client, token, futures) -> list[str]:
    """Batches that started more than once (their first worker died), from the workers' events."""
    starts: dict[str, list[str]] = {}
    try:
        events = client.get_events(EVENT_TOPIC)
    except Exception:  # noqa: BLE001  a report detail must not fail the run
        return []
    for _, msg in events:
        if isinstance(msg, dict) and msg.get("event") == "start" and token in str(msg.get("key")):
            starts.setdefault(str(msg["key"]), []).append(str(msg.get("worker")))
    by_key = {f.key: (name, batch) for f, (name, batch) in futures.items()}
    out = []
    for key, workers in sorted(starts.items()):
        if len(workers) > 1 and key in by_key:
            name, batch = by_key[key]
            out.append(
                f"{name}: a batch of {len(batch)} archs ran {len(workers)} times (on {', '.join(workers)}): "
                "a worker died or left with it in flight; its rows were written once"
            )
    return out
