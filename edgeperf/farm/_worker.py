"""The worker side: a plugin that gives a Dask worker its devices, and ``edgeperf farm worker``.

A worker advertises one Dask resource per device (``phone-SERIAL=1``, ``onnxruntime-HOST=1``); a
task asks for that resource, so the scheduler never runs two tasks on one device at once. The
:class:`FarmPlugin` also keeps the :class:`FarmDevice` records (profiler kind and options), which
the client collects to know what the cluster can measure.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from distributed.diagnostics.plugin import WorkerPlugin

from edgeperf.farm._devices import FarmDevice, discover_devices

__all__ = ["FarmPlugin", "PLUGIN_NAME", "worker_devices", "serve_worker"]

log = logging.getLogger(__name__)

#: Name under which the plugin is registered on a worker.
PLUGIN_NAME = "edgeperf-farm"


class FarmPlugin(WorkerPlugin):
    """Registers devices on a worker: the given ``devices``, or (when None) those this host
    discovers at setup (phones on adb, the local ``runtimes``, each given the ``options`` it
    takes), and adds their resources. With ``rediscover_s``, discovery runs again that often and
    a phone plugged in later joins the worker (one that leaves keeps its resource: its tasks
    report it as unavailable)."""

    name = PLUGIN_NAME

    def __init__(
        self,
        devices: Iterable[FarmDevice] | None = None,
        *,
        runtimes: Iterable[str] = (),
        adb: bool = True,
        options: Mapping[str, Any] | None = None,
        serials: Iterable[str] | None = None,
        rediscover_s: float | None = None,
    ):
        self.devices = list(devices) if devices is not None else None
        self.runtimes = tuple(runtimes)
        self.adb = adb
        self.options = dict(options or {})
        self.serials = list(serials) if serials is not None else None
        self.rediscover_s = rediscover_s
        self._task = None

    async def setup(self, worker) -> None:
        import asyncio

        if self.devices is None:
            self.devices = []
            await self._discover(worker)
        await self._advertise(worker)
        if self.rediscover_s:
            self._task = asyncio.ensure_future(self._rediscover_forever(worker))

    async def teardown(self, worker) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _discover(self, worker) -> None:
        import asyncio

        found = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: discover_devices(runtimes=self.runtimes, adb=self.adb, serials=self.serials, options=self.options),
        )
        known = {d.resource for d in self.devices}
        new = [d for d in found if d.resource not in known]
        if new:
            log.info("edgeperf farm: %s discovered %s", worker.address, [d.resource for d in new])
            self.devices.extend(new)

    async def _advertise(self, worker) -> None:
        wanted = {r: 1 for d in self.devices for r in d.resources}
        missing = {r: q for r, q in wanted.items() if r not in worker.state.total_resources}
        if missing:
            await worker.set_resources(**{**worker.state.total_resources, **missing})

    async def _rediscover_forever(self, worker) -> None:
        import asyncio

        while True:  # ends with the worker (teardown cancels it)
            await asyncio.sleep(self.rediscover_s)
            try:
                await self._discover(worker)
                await self._advertise(worker)
            except Exception as exc:  # noqa: BLE001  adb hiccups must not kill the worker
                log.warning("edgeperf farm: re-discovery on %s failed: %s", worker.address, exc)


def worker_devices(dask_worker) -> list[FarmDevice]:
    """The devices of a worker's :class:`FarmPlugin` (for ``client.run``); [] without one."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return list(plugin.devices or []) if plugin is not None else []


def serve_worker(
    scheduler: str,
    devices: list[FarmDevice],
    *,
    host: str | None = None,
    name: str | None = None,
    nthreads: int | None = None,
    rediscover: FarmPlugin | None = None,
) -> None:
    """Run a Dask worker that owns ``devices`` until the scheduler goes away or SIGINT/SIGTERM.

    ``rediscover``: a :class:`FarmPlugin` with ``rediscover_s`` set (and no devices), so phones
    plugged in later join this worker; ``nthreads`` then defaults to at least 8 (resources, not
    threads, keep one task per device).
    """
    import asyncio
    import signal

    from distributed import Worker

    resources = {r: 1 for d in devices for r in d.resources}
    plugin = rediscover or FarmPlugin(devices)
    if rediscover is not None:
        plugin.devices = list(devices)

    async def _serve() -> None:
        async with Worker(
            scheduler,
            host=host,
            name=name,
            nthreads=nthreads or max(len(devices), 8 if rediscover is not None else 1),
            resources=resources,
            plugins={plugin},
        ) as worker:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.close()))
            await worker.finished()

    asyncio.run(_serve())
