"""PyTorch eager mode on this machine's CPU."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeperf.profilers import register
from edgeperf.profilers._sysinfo import LocalProfiler

__all__ = ["TorchProfiler"]

_MS_PER_S = 1e3


@dataclass
class _Model:
    module: Any
    x: Any


@register
class TorchProfiler(LocalProfiler):
    """Latency of the space's torch module in eager mode under ``torch.inference_mode``.

    ``threads`` is passed to ``torch.set_num_threads`` (a process-wide setting: the previous
    value is restored after each architecture).
    """

    kind = "torch"
    model_format = "torch"
    runtime_package = "torch"

    def _load(self, space, arch: str, workdir: Path) -> _Model:
        import torch

        module = space.build_module(arch).eval()
        x = torch.from_numpy(self.random_input(space.input_shape(arch, batch_size=self.batch_size)))
        return _Model(module, x)

    def _run(self, handle: _Model) -> None:
        handle.module(handle.x)

    def _with_threads(self, fn):
        import torch

        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return fn()
        finally:
            torch.set_num_threads(previous)

    def _warmup(self, handle: _Model) -> None:
        def run():
            for _ in range(self.protocol.warmup):
                self._run(handle)

        self._with_threads(run)

    def _timed_round(self, handle: _Model) -> list[float]:
        def run():
            samples = []
            for _ in range(self.protocol.repeats):
                t0 = time.perf_counter()
                self._run(handle)  # CPU eager: the output is ready when the call returns
                samples.append((time.perf_counter() - t0) * _MS_PER_S)
            return samples

        return self._with_threads(run)
