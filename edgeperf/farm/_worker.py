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
    takes), and adds their resources."""

    name = PLUGIN_NAME

    def __init__(
        self,
        devices: Iterable[FarmDevice] | None = None,
        *,
        runtimes: Iterable[str] = (),
        adb: bool = True,
        options: Mapping[str, Any] | None = None,
    ):
        self.devices = list(devices) if devices is not None else None
        self.runtimes = tuple(runtimes)
        self.adb = adb
        self.options = dict(options or {})

    async def setup(self, worker) -> None:
        if self.devices is None:
            self.devices = discover_devices(runtimes=self.runtimes, adb=self.adb, options=self.options)
            log.info("edgeperf farm: %s discovered %s", worker.address, [d.resource for d in self.devices])
        wanted = {r: 1 for d in self.devices for r in d.resources}
        missing = {r: q for r, q in wanted.items() if r not in worker.state.total_resources}
        if missing:
            await worker.set_resources(**{**worker.state.total_resources, **missing})


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
) -> None:
    """Run a Dask worker that owns ``devices`` until the scheduler goes away or SIGINT/SIGTERM."""
    import asyncio
    import signal

    from distributed import Worker

    resources = {r: 1 for d in devices for r in d.resources}

    async def _serve() -> None:
        async with Worker(
            scheduler,
            host=host,
            name=name,
            nthreads=nthreads or max(1, len(devices)),
            resources=resources,
            plugins={FarmPlugin(devices)},
        ) as worker:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.close()))
            await worker.finished()

    asyncio.run(_serve())
