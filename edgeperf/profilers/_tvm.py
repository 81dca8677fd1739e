"""Apache TVM (Relax) on this machine's CPU: the exported ONNX model compiled with LLVM, untuned."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeperf.errors import ProfilingError
from edgeperf.profilers import register
from edgeperf.profilers._sysinfo import LocalProfiler

__all__ = ["TvmProfiler"]

_MS_PER_S = 1e3
#: ``runtime.config_threadpool`` affinity mode meaning "big cores" (every core on a uniform CPU).
_AFFINITY_BIG = 1


@dataclass
class _Compiled:
    vm: Any
    dev: Any
    inp: Any


@register
class TvmProfiler(LocalProfiler):
    """Latency of the ONNX model compiled by TVM for this CPU and run in the Relax VM.

    Timing uses TVM's own ``time_evaluator``: each of ``protocol.repeats`` repeats runs the
    model ``number`` times and reports the mean, which becomes one per-run sample.

    Parameters
    ----------
    mcpu:
        LLVM CPU name; default the host CPU as LLVM sees it.
    number:
        Runs averaged into one sample (default 1: a sample is one run).
    """

    kind = "tvm"
    model_format = "onnx"
    runtime_package = "apache-tvm"
    options = {
        "mcpu": "LLVM CPU to compile for (default: the host CPU)",
        "number": "runs averaged into one timing sample (default 1)",
    }

    def __init__(self, *, mcpu: str | None = None, number: int = 1, **kwargs):
        self.mcpu = mcpu
        self.number = int(number)
        self.runs_per_sample = self.number
        self._n_loaded = 0
        self._affinity_before: set[int] | None = None
        super().__init__(**kwargs)

    @classmethod
    def runtime_module(cls) -> str:
        return "tvm"

    def _host_mcpu(self) -> str:
        if self.mcpu is None:
            from tvm.target import codegen

            self.mcpu = str(codegen.llvm_get_system_cpu())
        return self.mcpu

    def _target(self):
        from tvm.target import Target

        # Options in a target string are rejected by TVM 0.27: use the dict form.
        config = {"kind": "llvm", "mcpu": self._host_mcpu()}
        if self.threads is not None:
            config["num-cores"] = self.threads
        return Target(config)

    def _runtime_extra(self) -> dict[str, Any]:
        return {"target": "llvm", "mcpu": self._host_mcpu(), "tuned": False}

    def _set_threads(self) -> None:
        if self.threads is None:
            return
        import tvm

        tvm.get_global_func("runtime.config_threadpool")(_AFFINITY_BIG, self.threads)

    def _load(self, space, arch: str, workdir: Path) -> _Compiled:
        import onnx
        import tvm
        from tvm.relax.frontend.onnx import from_onnx

        path = space.export_onnx(arch, workdir / "model.onnx", batch_size=self.batch_size)
        model = onnx.load(str(path))
        (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        shape = tuple(space.input_shape(arch, batch_size=self.batch_size))
        try:
            mod = from_onnx(model, shape_dict={inp.name: shape}, keep_params_in_input=False)
            ex = tvm.compile(mod, target=self._target())
        except Exception as exc:  # TVM raises its own error types (TVMError, InternalError)
            raise ProfilingError(f"TVM could not import or compile the model of {arch!r}: {exc}") from exc
        dev = tvm.cpu()
        # TVM's thread pool pins the calling thread to its cores, and the pin outlives the models:
        # after a TVM timing, an ONNX Runtime session with 2 threads in the same process ran 3.5x
        # slower on the one core left. The affinity is restored when the last model is unloaded.
        if self._n_loaded == 0 and hasattr(os, "sched_getaffinity"):
            self._affinity_before = os.sched_getaffinity(0)
        self._n_loaded += 1
        self._set_threads()
        vm = tvm.relax.VirtualMachine(ex, dev)
        return _Compiled(vm, dev, tvm.runtime.tensor(self.random_input(shape), dev))

    def _warmup(self, handle: _Compiled) -> None:
        for _ in range(self.protocol.warmup):
            handle.vm["main"](handle.inp)

    def _timed_round(self, handle: _Compiled) -> list[float]:
        timer = handle.vm.time_evaluator("main", handle.dev, number=self.number, repeat=self.protocol.repeats)
        # results: one mean time (seconds) per repeat over `number` runs -> per-run ms samples.
        return [float(r) * _MS_PER_S for r in timer(handle.inp).results]

    def _unload(self, handle: _Compiled) -> None:
        handle.vm = handle.inp = None
        self._n_loaded = max(0, self._n_loaded - 1)
        if self._n_loaded == 0 and self._affinity_before is not None:
            os.sched_setaffinity(0, self._affinity_before)
            self._affinity_before = None
