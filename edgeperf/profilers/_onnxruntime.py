"""ONNX Runtime on this machine's CPU (or another execution provider it has)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeperf.errors import DeviceUnavailableError, ProfilingError
from edgeperf.profilers import register
from edgeperf.profilers._sysinfo import LocalProfiler

__all__ = ["OnnxRuntimeProfiler"]

_MS_PER_S = 1e3
#: ``graph_optimization_level`` names -> onnxruntime.GraphOptimizationLevel member names.
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass
class _Session:
    session: Any
    feed: dict


@register
class OnnxRuntimeProfiler(LocalProfiler):
    """Latency of the space's exported ONNX model in an ONNX Runtime session.

    Parameters
    ----------
    threads:
        Intra-op threads (default 1; ``None`` lets ONNX Runtime use every core).
    provider:
        Execution provider, default ``"CPUExecutionProvider"``.
    graph_optimization_level:
        ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"`` (default).
    Other keywords as :class:`edgeperf.profilers.Profiler`.
    """

    kind = "onnxruntime"
    model_format = "onnx"
    runtime_package = "onnxruntime"
    options = {
        "provider": "ONNX Runtime execution provider (default CPUExecutionProvider)",
        "graph_optimization_level": "disable | basic | extended | all (default all)",
    }

    def __init__(self, *, provider: str = "CPUExecutionProvider", graph_optimization_level: str = "all", **kwargs):
        if graph_optimization_level not in OPT_LEVELS:
            raise DeviceUnavailableError(
                f"unknown graph_optimization_level {graph_optimization_level!r}; expected one of {sorted(OPT_LEVELS)}"
            )
        self.provider = provider
        self.graph_optimization_level = graph_optimization_level
        super().__init__(**kwargs)
        import onnxruntime as ort

        available = ort.get_available_providers()
        if provider not in available:
            raise DeviceUnavailableError(
                f"execution provider {provider!r} is not in this onnxruntime build; available: {available}"
            )

    def default_name(self) -> str:
        name = super().default_name()
        if self.provider != "CPUExecutionProvider":  # keep the common case short
            short = self.provider.replace("ExecutionProvider", "").lower()
            name = name.replace(f"-{self.kind}", f"-{self.kind}-{short}", 1)
        return name

    def _runtime_extra(self) -> dict[str, Any]:
        return {"provider": self.provider, "graph_optimization_level": self.graph_optimization_level}

    def _load(self, space, arch: str, workdir: Path) -> _Session:
        path = space.export_onnx(arch, workdir / "model.onnx", batch_size=self.batch_size)
        return self._session(path, space.input_shape(arch, batch_size=self.batch_size), what=repr(arch))

    def _load_onnx(self, path: Path, input_shape) -> _Session:
        """A session of a user's ONNX file; ``input_shape`` fixes symbolic dimensions."""
        from edgeperf.errors import InvalidParameterError

        session = self._session(path, None, what=str(path))
        (inp,) = session.session.get_inputs() if len(session.session.get_inputs()) == 1 else (None,)
        if inp is None:
            raise InvalidParameterError(f"{path}: expected a model with one input, got "
                                        f"{len(session.session.get_inputs())}")
        dims = list(inp.shape)
        if input_shape is None:
            if not all(isinstance(d, int) and d > 0 for d in dims):
                raise InvalidParameterError(
                    f"{path}: input {inp.name!r} has symbolic dimensions {dims}; pass --input-shape N,C,H,W"
                )
            input_shape = dims
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, input_shape)):
            raise InvalidParameterError(f"{path}: --input-shape {input_shape} does not fit input {inp.name!r} {dims}")
        session.feed = {inp.name: self.random_input(input_shape)}
        return session

    def _session(self, path: Path, shape, *, what: str) -> _Session:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads is not None:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1  # one branch at a time: NAS cells are mostly sequential
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[self.graph_optimization_level])
        opts.log_severity_level = 3  # errors only: warnings would drown the progress bar
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=[self.provider])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ProfilingError(f"onnxruntime could not load the model of {what}: {exc}") from exc
        if shape is None:
            return _Session(session, {})
        (inp,) = session.get_inputs()
        return _Session(session, {inp.name: self.random_input(shape)})

    def _run(self, handle: _Session) -> None:
        handle.session.run(None, handle.feed)

    def _warmup(self, handle: _Session) -> None:
        for _ in range(self.protocol.warmup):
            self._run(handle)

    def _timed_round(self, handle: _Session) -> list[float]:
        samples = []
        for _ in range(self.protocol.repeats):
            t0 = time.perf_counter()
            self._run(handle)
            samples.append((time.perf_counter() - t0) * _MS_PER_S)
        return samples

    def _unload(self, handle: _Session) -> None:
        handle.session = None
