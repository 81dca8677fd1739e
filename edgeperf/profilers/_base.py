"""The profiler extension point: how to run a model on one device.

A profiler turns (space, arch) into measurement records. The template method
:meth:`Profiler.profile` fixes the order every profiler follows -- build the
model, warm up, time rounds under the shared :class:`MeasurementProtocol`,
read the energy meter around the timed rounds -- so a subclass only says how
to load a model (:meth:`_load`), how to warm it up and how to time one round.
"""

from __future__ import annotations

import abc
import datetime as _dt
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Sequence

from edgeperf._version import __version__
from edgeperf.datasets import DeviceSpec, Measurement
from edgeperf.profilers._protocol import MeasurementProtocol, TimingStats

__all__ = ["Profiler", "OpenModel"]


class Profiler(abc.ABC):
    """Abstract base class of every profiler (local runtime or remote device).

    Parameters
    ----------
    name:
        Device name written into every row. Default: derived from the runtime
        and the machine (see :meth:`default_name`), so one machine with two
        thread settings gives two devices.
    protocol:
        Warm-up, repeats and stability rules; the default protocol if omitted.
    energy_meter:
        An :class:`edgeperf.profilers.energy.EnergyMeter` read around the timed
        rounds; adds an ``energy_mj`` row per architecture.
    batch_size, threads:
        Device settings; part of the device's identity.
    """

    #: Registry name, e.g. ``"onnxruntime"``.
    kind: ClassVar[str] = ""
    #: The model format the runtime consumes: ``"onnx"``, ``"torch"`` or ``"tflite"``.
    model_format: ClassVar[str] = "onnx"
    #: Forward passes behind one timing sample (a runtime that averages several runs per sample
    #: says so, so energy per inference divides by every pass the meter saw).
    runs_per_sample: int = 1
    #: Extra constructor keywords this profiler takes from the command line, name -> help
    #: (e.g. ``{"serial": "adb serial of the phone"}``); ``edgeperf profile`` passes
    #: ``--serial`` and ``--option NAME=VALUE`` only to profilers that declare them.
    options: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        name: str | None = None,
        protocol: MeasurementProtocol | None = None,
        energy_meter=None,
        batch_size: int = 1,
        threads: int | None = None,
    ):
        self.protocol = protocol or MeasurementProtocol()
        self.energy_meter = energy_meter
        self.batch_size = batch_size
        self.threads = threads
        self._name = name
        self._spec: DeviceSpec | None = None

    # ---- identity -----------------------------------------------------------------------
    @classmethod
    def availability(cls) -> str | None:
        """``None`` when this profiler can run here, else a sentence saying what is missing."""
        return None

    @abc.abstractmethod
    def _describe(self) -> DeviceSpec:
        """Harvest the device descriptor (CPU, memory, runtime version, settings)."""

    def describe(self) -> DeviceSpec:
        """The device descriptor, harvested once and cached."""
        if self._spec is None:
            self._spec = self._describe()
        return self._spec

    def default_name(self) -> str:
        spec = self.describe()
        base = (spec.cpu_model or spec.soc or "device").lower()
        base = "".join(c if c.isalnum() else "-" for c in base).strip("-")
        while "--" in base:
            base = base.replace("--", "-")
        threads = f"-t{self.threads}" if self.threads else ""
        return f"{base}-{self.kind}{threads}-b{self.batch_size}"

    @property
    def device_name(self) -> str:
        return self._name or self.default_name()

    def device_spec(self) -> DeviceSpec:
        """The descriptor under the name written into rows (what goes into ``.devices.json``)."""
        import dataclasses

        return dataclasses.replace(self.describe(), name=self.device_name)

    # ---- running ------------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self, space, arch: str, workdir: Path) -> Any:
        """Build, export or compile the model of ``arch``; return a handle to time."""

    @abc.abstractmethod
    def _warmup(self, handle: Any) -> None:
        """Untimed runs before timing (``protocol.warmup`` of them)."""

    @abc.abstractmethod
    def _timed_round(self, handle: Any) -> Sequence[float] | TimingStats:
        """One round of ``protocol.repeats`` timed runs: per-run ms, or a device tool's summary."""

    def _unload(self, handle: Any) -> None:
        """Free what :meth:`_load` allocated (remote files, sessions)."""

    def close(self) -> None:
        """Release the device (servers, connections)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def measure(self, space, arch: str) -> tuple[TimingStats, dict | None]:
        """Time one architecture; also the energy reading's summary when a meter is attached."""
        with self.open(space, arch) as model:
            return model.measure()

    def open(self, space, arch: str) -> "OpenModel":
        """Load ``arch`` once (export, compile, open a session) and keep it loaded: the returned
        :class:`OpenModel` times it as often as asked, without paying the load again (a TVM
        compile costs seconds; timing a model alternately with a reference needs many timings)."""
        workdir = tempfile.TemporaryDirectory(prefix="edgeperf-")
        try:
            handle = self._load(space, arch, Path(workdir.name))
        except BaseException:
            workdir.cleanup()
            raise
        return OpenModel(self, handle, workdir)

    def measure_onnx(self, path, *, input_shape=None) -> tuple[TimingStats, dict | None]:
        """Time a user's own ONNX model (any network, not only a search space's) under the same
        protocol. ``input_shape`` (N, C, H, W ...) is needed when the graph's input has symbolic
        dimensions. Profilers that cannot run an ONNX file raise :class:`InvalidParameterError`."""
        from edgeperf.errors import InvalidParameterError

        loader = getattr(self, "_load_onnx", None)
        if loader is None:
            raise InvalidParameterError(f"profiler {self.kind!r} cannot run an ONNX file; use onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise InvalidParameterError(f"expected an existing ONNX file, got {path}")
        return self._measure_handle(loader(path, input_shape))

    def _measure_handle(self, handle) -> tuple[TimingStats, dict | None]:
        """Time a loaded model once, then unload it."""
        try:
            return self._time_handle(handle)
        finally:
            self._unload(handle)

    def _time_handle(self, handle) -> tuple[TimingStats, dict | None]:
        """Warm up and time a loaded model (reading the energy meter around the timed rounds)."""
        self._warmup(handle)
        if self.energy_meter is None:
            return self.protocol.stabilize(lambda: self._timed_round(handle)), None
        self.energy_meter.start()
        try:
            stats = self.protocol.stabilize(lambda: self._timed_round(handle))
        finally:
            reading = self.energy_meter.stop()
        inferences = self.protocol.repeats * stats.attempts * self.runs_per_sample
        return stats, {"energy_mj": reading.per_inference_mj(inferences), "reading": reading}

    def profile(self, space, arch: str) -> list[Measurement]:
        """Measure ``arch`` of ``space``: a ``latency_ms`` record, plus ``energy_mj`` with a meter."""
        from edgeperf import spaces

        space = spaces.get(space)
        arch = space.canonical(arch)
        stats, energy = self.measure(space, arch)
        spec = self.describe()
        common = dict(
            space=space.name,
            arch=arch,
            device=self.device_name,
            runtime=spec.runtime,
            runtime_version=spec.runtime_version,
            batch_size=self.batch_size,
            threads=self.threads,
            runs=stats.runs,
            timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            edgeperf_version=__version__,
        )
        rows = [
            Measurement(
                metric="latency_ms",
                value=stats.median_ms,
                std=stats.std_ms,
                p10=stats.p10_ms,
                p90=stats.p90_ms,
                cv=stats.cv,
                **common,
            )
        ]
        if energy is not None:
            rows.append(Measurement(metric="energy_mj", value=energy["energy_mj"], **common))
        return rows


class OpenModel:
    """A model loaded on a profiler (see :meth:`Profiler.open`): :meth:`measure` warms it up and
    times it under the profiler's protocol, as often as called; :meth:`close` (or leaving the
    ``with`` block) unloads it."""

    def __init__(self, profiler: Profiler, handle: Any, workdir: tempfile.TemporaryDirectory):
        self._profiler = profiler
        self._handle = handle
        self._workdir = workdir

    def measure(self, protocol: MeasurementProtocol | None = None) -> tuple[TimingStats, dict | None]:
        """Warm up and time the model; under ``protocol`` instead of the profiler's when given
        (e.g. fewer repeats for the later timings of a model already warm)."""
        if self._handle is None:
            from edgeperf.errors import InvalidParameterError

            raise InvalidParameterError("this model was closed: open it again with profiler.open(space, arch)")
        if protocol is None or protocol == self._profiler.protocol:
            return self._profiler._time_handle(self._handle)
        # Implementations read `self.protocol` (warm-up and repeats, on the host or a device tool):
        # swapped for this one timing, so every profiler kind honours it.
        saved, self._profiler.protocol = self._profiler.protocol, protocol
        try:
            return self._profiler._time_handle(self._handle)
        finally:
            self._profiler.protocol = saved

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                self._profiler._unload(handle)
            finally:
                self._workdir.cleanup()

    def __enter__(self) -> "OpenModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
