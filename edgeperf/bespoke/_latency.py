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
    targets: a house profiled on several ONNX targets exports every module once."""

    name = "bespoke"

    def __init__(self, export_cache: Path | None = None):
        self._modules: dict[str, tuple] = {}
        self._cache = export_cache

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
            digest = hashlib.sha1(f"{arch}|{batch_size}".encode()).hexdigest()[:16]
            cached = self._cache / f"{digest}.onnx"
            if cached.is_file():
                shutil.copyfile(cached, path)
                return Path(path)
        with warnings.catch_warnings():  # the exporter's constant-folding notes on index_select/Slice
            warnings.simplefilter("ignore", UserWarning)
            export_module_onnx(module, (batch_size, *shape), path)
        if cached is not None:
            shutil.copyfile(path, cached)
        return Path(path)


class ModuleLatency:
    """Times torch modules on one target: ``ms(module, input_shape)`` -> median latency in ms.

    ``export_cache``: a folder where ONNX exports are kept by ``key`` (see :meth:`ms`), so timing
    the same modules on another target skips the export."""

    def __init__(self, target: Target | str, *, protocol=None, export_cache=None, **options):
        self.target = parse_target(target) if isinstance(target, str) else target
        self.profiler = self.target.profiler(protocol, **options)
        self._space = _ModuleSpace(Path(export_cache) if export_cache is not None else None)
        self._count = 0

    def stats(self, module, input_shape, *, key: str | None = None):
        import torch

        key = self._space.add(key or f"m{self._count}", module, input_shape)
        self._count += 1
        with torch.no_grad():
            stats, _ = self.profiler.measure(self._space, key)
        return stats

    def ms(self, module, input_shape, *, key: str | None = None) -> float:
        """Latency in ms: the fastest kept run (``min_ms``). Other processes only ever add time, so
        on a shared machine the minimum is the estimate least disturbed by them (the median moved
        3x within minutes here). ``key`` names the module in the export cache."""
        return float(self.stats(module, input_shape, key=key).min_ms)

    def describe(self) -> dict:
        spec = self.profiler.describe()
        return {"target": self.target.name, "device": self.profiler.device_name, "runtime": spec.runtime,
                "runtime_version": spec.runtime_version, "threads": self.target.threads,
                "protocol": self.profiler.protocol.to_dict()}

    def close(self) -> None:
        self.profiler.close()
