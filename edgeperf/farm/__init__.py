"""Device farm on Dask: profile many devices in parallel, each device one Dask resource.

>>> import edgeperf as ep
>>> summary = ep.farm.profile("fbnet", samples=500, out="farm/", scheduler="tcp://host:8786")  # doctest: +SKIP
>>> print("\\n".join(summary.report()))                                                        # doctest: +SKIP

Workers own devices (``edgeperf farm worker`` discovers phones on adb and local runtimes and
registers them with a :class:`FarmPlugin`; a plain ``dask worker --resources phone-SERIAL=1``
works too). The client sends one task per (device, batch of architectures), writes every batch's
rows as it arrives into one file per device, and resumes from those files on a re-run. Without a
scheduler an embedded ``LocalCluster`` serves this machine's devices.

Needs the ``farm`` extra (``dask[distributed]``).
"""

from __future__ import annotations

try:
    import distributed  # noqa: F401
except ImportError as exc:  # the optional extra is missing: say how to get it, not a traceback
    from edgeperf.errors import FarmError

    raise FarmError(f"edgeperf.farm needs dask.distributed ({exc}); install it with pip install 'edgeperf[farm]'") from None

from edgeperf.farm._devices import FarmDevice, discover_devices, make_profiler, phone_device, runtime_device
from edgeperf.farm._profile import DEFAULT_BATCH_ARCHS, FarmSummary, cluster_devices, connect, profile
from edgeperf.farm._tasks import BatchResult, describe_device, run_batch
from edgeperf.farm._worker import FarmPlugin, serve_worker, worker_devices

__all__ = [
    "FarmDevice",
    "FarmPlugin",
    "FarmSummary",
    "BatchResult",
    "DEFAULT_BATCH_ARCHS",
    "profile",
    "connect",
    "cluster_devices",
    "discover_devices",
    "describe_device",
    "run_batch",
    "make_profiler",
    "phone_device",
    "runtime_device",
    "serve_worker",
    "worker_devices",
]
