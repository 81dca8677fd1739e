"""ONNX Runtime on this machine's CPU (or another execution provider it has)."""

from __future__ import annotations

import logging
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


#: ``quantize`` settings -> the precision they give (also the device-name suffix).
QUANTIZE = {"none": "fp32", "int8-dynamic": "int8"}


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
    quantize:
        ``"none"`` (default, fp32) or ``"int8-dynamic"``: the exported model goes through
        ``onnxruntime.quantization.quantize_dynamic`` (weights uint8, activations quantised at
        run time; ONNX Runtime's CPU ConvInteger takes uint8 weights only) before it is timed.
        The device name gains ``-int8`` and its descriptor says ``precision: int8``.
    Other keywords as :class:`edgeperf.profilers.Profiler`.
    """

    kind = "onnxruntime"
    model_format = "onnx"
    runtime_package = "onnxruntime"
    options = {
        "provider": "ONNX Runtime execution provider (default CPUExecutionProvider)",
        "graph_optimization_level": "disable | basic | extended | all (default all)",
        "quantize": "none (default, fp32) | int8-dynamic (onnxruntime quantize_dynamic)",
    }

    def __init__(self, *, provider: str = "CPUExecutionProvider", graph_optimization_level: str = "all",
                 quantize: str = "none", **kwargs):
        if graph_optimization_level not in OPT_LEVELS:
            raise DeviceUnavailableError(
                f"unknown graph_optimization_level {graph_optimization_level!r}; expected one of {sorted(OPT_LEVELS)}"
            )
        if quantize not in QUANTIZE:
            raise DeviceUnavailableError(f"unknown quantize {quantize!r}; expected one of {sorted(QUANTIZE)}")
        self.provider = provider
        self.graph_optimization_level = graph_optimization_level
        self.quantize = quantize
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
        if self.quantize != "none":
            name = name.replace(f"-{self.kind}", f"-{self.kind}-{QUANTIZE[self.quantize]}", 1)
        return name

    def _runtime_extra(self) -> dict[str, Any]:
        extra = {"provider": self.provider, "graph_optimization_level": self.graph_optimization_level}
        if self.quantize != "none":  # fp32 descriptors stay as they were
            extra.update(quantize=self.quantize, precision=QUANTIZE[self.quantize])
        return extra

    def _load(self, space, arch: str, workdir: Path) -> _Session:
        path = space.export_onnx(arch, workdir / "model.onnx", batch_size=self.batch_size)
        if self.quantize == "int8-dynamic":
            path = self._quantized(path, what=repr(arch))
        return self._session(path, space.input_shape(arch, batch_size=self.batch_size), what=repr(arch))

    @staticmethod
    def _quantized(path: Path, *, what: str, out: Path | None = None) -> Path:
        """The int8 (dynamic) model of the fp32 ONNX file ``path`` (written to ``out``, default beside it)."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = out if out is not None else path.with_name(path.stem + ".int8.onnx")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it advises pre-processing on the root logger for every model
        try:
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QUInt8)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ProfilingError(f"onnxruntime could not quantise the model of {what}: {exc}") from exc
        finally:
            root.setLevel(level)
        return out

    def _load_onnx(self, path: Path, input_shape) -> _Session:
        """A session of a user's ONNX file; ``input_shape`` fixes symbolic dimensions."""
        from edgeperf.errors import InvalidParameterError

        if self.quantize == "int8-dynamic":  # quantised in a scratch folder: the user's folder is theirs
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                session = self._session(self._quantized(path, what=str(path), out=Path(tmp) / "model.int8.onnx"),
                                        None, what=str(path))
        else:
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
