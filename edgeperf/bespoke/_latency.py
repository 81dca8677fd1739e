"""Latency of modules (blocks, alternatives, students) on a target, with the project's profilers.

A target is ``KIND[:tN]``: a registered profiler kind (``onnxruntime``, ``tvm``, ``torch``, or
``android`` with ``serial=...``) and an optional thread count, e.g. ``onnxruntime:t2``. The module
goes through the profiler's own path (ONNX export and a session, TVM compilation, eager torch) and
the shared :class:`~edgeperf.profilers.MeasurementProtocol` (warm-up, repeats, outlier rejection).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from edgeperf.errors import BespokeError, InvalidParameterError

__all__ = ["Target", "parse_target", "ModuleLatency"]

#: The house's measurement protocol (see :func:`_protocol`).
WARMUP, REPEATS, MAX_CV, MAX_ROUNDS = 3, 15, 0.15, 2
_TARGET_RE = re.compile(r"^(?P<kind>[a-z_]+)(?::t(?P<threads>\d+))?$")


def _protocol():
    from edgeperf.profilers import MeasurementProtocol

    # Blocks are small and there are hundreds: fewer runs than the profiling default, still the
    # median of outlier-filtered runs, re-measured once when noisy.
    return MeasurementProtocol(warmup=WARMUP, repeats=REPEATS, max_cv=MAX_CV, max_rounds=MAX_ROUNDS)



@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    threads: int | None

    def profiler(self, protocol=None, **options):
        from edgeperf import profilers

        cls = profilers.get(self.kind)
        missing = cls.availability()
        if missing:
            raise BespokeError(f"target {self.name!r} cannot run here: {missing}")
        return cls(threads=self.threads, protocol=protocol or _protocol(), **options)


def parse_target(text: str) -> Target:
    """``"onnxruntime:t2"`` -> ``Target("onnxruntime:t2", "onnxruntime", 2)``."""
    from edgeperf import profilers

    m = _TARGET_RE.match(str(text).strip())
    if not m:
        raise InvalidParameterError(f"expected a target like 'onnxruntime:t1' or 'tvm:t2' (KIND[:tTHREADS]), got {text!r}")
    kind = m["kind"]
    if kind not in profilers.names():
        raise InvalidParameterError(f"unknown target kind {kind!r} in {text!r}; expected one of {profilers.names()}")
    threads = int(m["threads"]) if m["threads"] else None
    if threads is not None and threads < 1:
        raise InvalidParameterError(f"expected at least 1 thread in target {text!r}")
    return Target(str(text).strip(), kind, threads)


class _ModuleSpace:
    """Looks like a search space to a profiler: each "arch" is a key of a module to time.

    With ``export_cache`` (a folder), each key's ONNX file is exported once and copied for later
    targets: a house profiled on several ONNX targets exports every module once. With
    ``fold_constants``, each export is constant-folded by ONNX Runtime's basic (ONNX-only) graph
    optimisations: the TorchScript exporter computes the pads of "same"-padded convolutions
    (EfficientNet) with a chain of shape ops, which TVM's importer rejects as dynamic pads."""

    name = "bespoke"

    def __init__(self, export_cache: Path | None = None, *, fold_constants: bool = False):
        self._modules: dict[str, tuple] = {}
        self._cache = export_cache
        self._fold = fold_constants

    def add(self, key: str, module, input_shape) -> str:
        self._modules[key] = (module, tuple(int(s) for s in input_shape))
        return key

    def canonical(self, arch: str) -> str:
        return arch

    def input_shape(self, arch: str, batch_size: int = 1) -> tuple[int, ...]:
        return (batch_size, *self._modules[arch][1])

    def build_module(self, arch: str):
        return self._modules[arch][0].eval()

    def export_onnx(self, arch: str, path, batch_size: int = 1):
        import warnings

        from edgeperf.spaces import export_module_onnx

        module, shape = self._modules[arch]
        cached = None
        if self._cache is not None:
            digest = hashlib.sha1(f"{arch}|{batch_size}|{self._fold}".encode()).hexdigest()[:16]
            cached = self._cache / f"{digest}.onnx"
            if cached.is_file():
                shutil.copyfile(cached, path)
                return Path(path)
        with warnings.catch_warnings():  # the exporter's constant-folding notes on index_select/Slice
            warnings.simplefilter("ignore", UserWarning)
            export_module_onnx(module, (batch_size, *shape), path)
        if self._fold:
            _fold_constants(Path(path))
        if cached is not None:
            shutil.copyfile(path, cached)
        return Path(path)


def _fold_constants(path: Path) -> None:
    import onnxruntime as ort

    folded = path.with_suffix(".folded.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    folded.replace(path)


def _unique_key() -> str:
    """A key for a module given none: never another module's, even in an export cache shared by
    several timers."""
    return f"m-{uuid.uuid4().hex}"


#: Ratios (model timing / reference timings around it) whose median :meth:`ModuleLatency.relative`
#: reports.
PAIRED_ROUNDS = 3
#: Each timing in :meth:`ModuleLatency.relative` runs about this long once the reference's speed is
#: known: a TVM-compiled teacher (~165 ms a run here) needs fewer than the protocol's repeats for a
#: steady minimum; never fewer than :data:`PAIRED_MIN_REPEATS`, never more than the protocol's.
PAIRED_TIMING_S, PAIRED_MIN_REPEATS = 1.0, 5
#: Targets whose importer needs constant-folded ONNX (see :class:`_ModuleSpace`).
_FOLD_KINDS = ("tvm",)


class ModuleLatency:
    """Times torch modules on one target: ``ms(module, input_shape)`` -> median latency in ms.

    ``export_cache``: a folder where ONNX exports are kept by ``key`` (see :meth:`ms`), so timing
    the same modules on another target skips the export."""

    def __init__(self, target: Target | str, *, protocol=None, export_cache=None, **options):
        self.target = parse_target(target) if isinstance(target, str) else target
        self.profiler = self.target.profiler(protocol, **options)
        self._space = _ModuleSpace(Path(export_cache) if export_cache is not None else None,
                                   fold_constants=self.target.kind in _FOLD_KINDS)
        self._held: dict = {}
        self._last_ms: dict[str, float] = {}  # held key -> its latest timing, to size paired timings

    def hold(self, module, input_shape, *, key: str) -> None:
        """Load ``module`` once (export, session, TVM compile) and keep it loaded under ``key``:
        every later timing of ``key`` reuses it, until :meth:`release` or :meth:`close`."""
        if key not in self._held:
            self._space.add(key, module, input_shape)
            self._held[key] = self.profiler.open(self._space, key)

    def release(self, key: str) -> None:
        held = self._held.pop(key, None)
        self._last_ms.pop(key, None)
        if held is not None:
            held.close()

    def stats(self, module, input_shape, *, key: str | None = None, protocol=None):
        """Timing summary of ``module``; ``protocol`` (held modules only) replaces the profiler's."""
        import torch

        with torch.no_grad():
            if key in self._held:
                stats = self._held[key].measure(protocol)[0]
                self._last_ms[key] = float(stats.min_ms)
                return stats
            key = self._space.add(key or _unique_key(), module, input_shape)
            stats, _ = self.profiler.measure(self._space, key)
        return stats

    def ms(self, module, input_shape, *, key: str | None = None, protocol=None) -> float:
        """Latency in ms: the fastest kept run (``min_ms``). Other processes only ever add time, so
        on a shared machine the minimum is the estimate least disturbed by them (the median moved
        3x within minutes here). ``key`` names the module in the export cache."""
        return float(self.stats(module, input_shape, key=key, protocol=protocol).min_ms)

    def _paired_protocol(self, reference_key: str):
        """The protocol of :meth:`relative`'s timings: the profiler's, with repeats cut to about
        :data:`PAIRED_TIMING_S` of the reference's runs once its speed is known."""
        import dataclasses
        import math

        base = self.profiler.protocol
        last_ms = self._last_ms.get(reference_key)
        if last_ms is None:
            return base
        repeats = max(PAIRED_MIN_REPEATS, math.ceil(PAIRED_TIMING_S * 1e3 / max(last_ms, 1e-6)))
        return dataclasses.replace(base, repeats=min(base.repeats, repeats))

    def relative(self, model, reference, input_shape, *, key: str | None = None, reference_key: str = "reference",
                 rounds: int = PAIRED_ROUNDS) -> dict:
        """Latency of ``model`` relative to ``reference``, timed alternately (R M R ... M R): each
        ratio divides one timing of the model by the mean of the reference's timings just before
        and after it, so a change of load from one minute to the next cancels out; the median of
        ``rounds`` ratios resists one disturbed pair. Both stay loaded for the rounds (a reference
        already held stays held after). Returns ``{"ratio", "ms", "reference_ms", "ratios"}`` (ms:
        medians of the timings)."""
        import numpy as np

        key = key or _unique_key()
        held_before = reference_key in self._held
        self.hold(reference, input_shape, key=reference_key)
        self.hold(model, input_shape, key=key)
        try:
            # The first reference timing sizes the rest when its speed was not known before.
            ref = [self.ms(reference, input_shape, key=reference_key, protocol=self._paired_protocol(reference_key))]
            protocol = self._paired_protocol(reference_key)
            ms = []
            for _ in range(rounds):
                ms.append(self.ms(model, input_shape, key=key, protocol=protocol))
                ref.append(self.ms(reference, input_shape, key=reference_key, protocol=protocol))
        finally:
            self.release(key)
            if not held_before:
                self.release(reference_key)
        ratios = [m / ((a + b) / 2) for m, a, b in zip(ms, ref, ref[1:])]
        return {"ratio": float(np.median(ratios)), "ms": float(np.median(ms)), "reference_ms": float(np.median(ref)),
                "ratios": ratios}

    def describe(self) -> dict:
        spec = self.profiler.describe()
        return {"target": self.target.name, "device": self.profiler.device_name, "runtime": spec.runtime,
                "runtime_version": spec.runtime_version, "threads": self.target.threads,
                "protocol": self.profiler.protocol.to_dict(),
                "paired": {"rounds": PAIRED_ROUNDS, "timing_s": PAIRED_TIMING_S, "min_repeats": PAIRED_MIN_REPEATS}}

    def close(self) -> None:
        for key in list(self._held):
            self.release(key)
        self.profiler.close()
