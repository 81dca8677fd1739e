"""Devices of a farm: what a worker can reach, how a task rebuilds its profiler.

A :class:`FarmDevice` is plain data (profiler kind + constructor options + the Dask resource that
guards it), so the client can ship it inside a task and any worker holding the resource can
rebuild the profiler. Resource names are unique in a cluster: ``phone-SERIAL`` for a phone,
``<runtime>-<host>`` for a local runtime. Local runtimes of one host also ask for the host's
``cpu-<host>`` resource, so two of them never time models at once on the same cores.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from edgeperf.errors import FarmError, InvalidParameterError, UnknownNameError

__all__ = ["FarmDevice", "discover_devices", "make_profiler", "options_for", "PHONE_PREFIX", "CPU_PREFIX"]

#: Resource prefix of a phone: ``phone-SERIAL`` (what ``dask worker --resources`` is given).
PHONE_PREFIX = "phone-"
#: Resource every local runtime of a host also needs, so they take turns on its cores.
CPU_PREFIX = "cpu-"
#: Constructor keywords every profiler takes besides its declared ``options``.
_COMMON_OPTIONS = ("threads", "batch_size")


@dataclass(frozen=True)
class FarmDevice:
    """One device a worker owns.

    ``resource`` is the Dask resource a task asks for (one unit: one task at a time);
    ``profiler`` the registry name (``android``, ``onnxruntime`` ...); ``options`` its constructor
    keywords (strings as from the command line are fine); ``name`` the device name written into
    rows (None: derived once from the device, see :func:`edgeperf.farm.describe_device`);
    ``extra_resources`` other resources the task also needs (the host's ``cpu-HOST``);
    ``energy`` an energy meter name (:mod:`edgeperf.profilers.energy`) read around the timed
    runs, built with ``energy_options`` (a phone's battery meter gets its serial).
    """

    resource: str
    profiler: str
    options: Mapping[str, Any] = field(default_factory=dict)
    host: str = ""
    name: str | None = None
    extra_resources: tuple[str, ...] = ()
    energy: str | None = None
    energy_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics a measurement of this device writes."""
        return ("latency_ms", "energy_mj") if self.energy else ("latency_ms",)

    @property
    def resources(self) -> dict[str, int]:
        """What a task on this device asks the scheduler for."""
        return {r: 1 for r in (self.resource, *self.extra_resources)}

    @property
    def name_suffix(self) -> str:
        """Appended to the profiler's default name, so two phones of one model (or two hosts with
        one CPU) stay two devices: the serial, else the host."""
        serial = self.options.get("serial")
        return str(serial if serial else self.host).lower()

    def with_options(self, overrides: Mapping[str, Any]) -> "FarmDevice":
        """A copy with ``overrides`` merged into the options (only keys this profiler takes; never
        the serial, which is the device itself)."""
        mine = {k: v for k, v in options_for(self.profiler, overrides).items() if k != "serial"}
        return dataclasses.replace(self, options={**self.options, **mine})


def accepted_options(kind: str) -> set[str]:
    from edgeperf import profilers

    return set(profilers.get(kind).options) | set(_COMMON_OPTIONS)


def options_for(kind: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of flat ``options`` (``{"runner": .., "threads": ..}``) that profiler ``kind`` takes."""
    allowed = accepted_options(kind)
    return {k: v for k, v in (options or {}).items() if k in allowed}


def _check_options(kind: str, options: Mapping[str, Any]) -> None:
    allowed = accepted_options(kind)
    for key in options:
        if key not in allowed:
            raise UnknownNameError(f"option of profiler {kind!r}", key, allowed)


def phone_device(serial: str, *, options: Mapping[str, Any] | None = None, host: str | None = None) -> FarmDevice:
    """The farm device of the phone ``serial`` (android profiler)."""
    opts = {k: v for k, v in (options or {}).items() if k != "serial"}
    _check_options("android", opts)
    return FarmDevice(
        resource=f"{PHONE_PREFIX}{serial}",
        profiler="android",
        options={**opts, "serial": serial},
        host=host or socket.gethostname(),
    )


def runtime_device(kind: str, *, options: Mapping[str, Any] | None = None, host: str | None = None) -> FarmDevice:
    """The farm device of local runtime ``kind`` on this host."""
    host = host or socket.gethostname()
    opts = dict(options or {})
    _check_options(kind, opts)
    suffix = f"-t{opts['threads']}" if opts.get("threads") else ""
    return FarmDevice(
        resource=f"{kind}{suffix}-{host}",
        profiler=kind,
        options=opts,
        host=host,
        extra_resources=(f"{CPU_PREFIX}{host}",),
    )


def discover_devices(
    *,
    runtimes: Iterable[str] = (),
    adb: bool = True,
    serials: Iterable[str] | None = None,
    options: Mapping[str, Any] | None = None,
    adb_path: str | None = None,
) -> list[FarmDevice]:
    """The devices this host can reach: every phone ``adb devices -l`` lists as ``device`` (or just
    ``serials``) and each available local runtime of ``runtimes``.

    ``options`` are constructor options, each given to the profilers that take it (e.g.
    ``{"runner": "/opt/benchmark_model", "threads": 1}``). A runtime that is not usable here
    raises :class:`FarmError` saying why; no phone attached is not an error (a host may serve only
    runtimes).
    """
    from edgeperf import profilers

    host = socket.gethostname()
    found: list[FarmDevice] = []
    for kind in runtimes:
        cls = profilers.get(kind)
        reason = cls.availability()
        if reason is not None:
            raise FarmError(f"runtime {kind!r} cannot run on {host}: {reason}")
        found.append(runtime_device(kind, options=options_for(kind, options), host=host))
    if adb:
        android = profilers.get("android")
        wanted = set(serials) if serials is not None else None
        if android.availability() is None:
            attached = [d["serial"] for d in android.discover(adb_path=adb_path) if d["state"] == "device"]
        else:
            attached = []
        if wanted is not None and not wanted <= set(attached):
            raise FarmError(
                f"expected phones {sorted(wanted - set(attached))} in `adb devices -l` on {host}, found "
                f"{attached or 'none'}; check the cable, `adb devices` and the USB-debugging prompt"
            )
        android_opts = options_for("android", options)
        for serial in attached:
            if wanted is None or serial in wanted:
                found.append(phone_device(serial, options=android_opts, host=host))
    return found


def make_profiler(device: FarmDevice, *, protocol=None):
    """The profiler of ``device``, named ``device.name`` (its default name when None)."""
    from edgeperf import profilers

    cls = profilers.get(device.profiler)
    options = dict(device.options)
    for key in _COMMON_OPTIONS:  # from a command line these are strings; every profiler wants ints
        if isinstance(options.get(key), str):
            try:
                options[key] = int(options[key]) if options[key] else None
            except ValueError:
                raise InvalidParameterError(f"expected an integer {key}, got {options[key]!r}") from None
    return cls(name=device.name, protocol=protocol, energy_meter=_energy_meter(device), **options)


def _energy_meter(device: FarmDevice):
    """The device's energy meter, checked (so a missing sensor stops the device at once), or None."""
    if not device.energy:
        return None
    from edgeperf.profilers import energy

    kwargs = dict(device.energy_options)
    if device.energy == energy.AndroidBatteryMeter.name and device.options.get("serial"):
        kwargs.setdefault("serial", device.options["serial"])
    meter = energy.get(device.energy, **kwargs)
    meter.check()
    return meter
