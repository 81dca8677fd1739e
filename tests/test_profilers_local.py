"""Local profilers run real models in ONNX Runtime, PyTorch and TVM and fill provenance."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from edgeperf import profilers, spaces
from edgeperf.datasets import DeviceSpec
from edgeperf.errors import DeviceUnavailableError, InvalidParameterError
from edgeperf.profilers import MeasurementProtocol
from edgeperf.profilers import _sysinfo

FAST = MeasurementProtocol(warmup=2, repeats=5, max_rounds=1)
# OFA at its lowest resolution and depth keeps TVM compilation and runs short.
OFA_SMALL = json.dumps({"d": [2] * 5, "e": [3] * 20, "ks": [3] * 20, "r": 128}, separators=(",", ":"))
OFA_OTHER = json.dumps({"d": [2] * 5, "e": [6] * 20, "ks": [5] * 20, "r": 128}, separators=(",", ":"))


def _archs(space_name, n):
    if space_name == "ofa_mbv3":
        return [OFA_SMALL, OFA_OTHER][:n]
    return spaces.get(space_name).sample(n, seed=1)


def _check_rows(rows, prof, space_name, arch):
    assert len(rows) == 1
    r = rows[0]
    assert r.metric == "latency_ms" and r.value > 0
    assert (r.space, r.arch, r.device) == (space_name, spaces.get(space_name).canonical(arch), prof.device_name)
    assert r.runtime == prof.kind
    assert r.runtime_version and r.runtime_version[0].isdigit()
    assert r.threads == 1 and r.batch_size == 1
    assert r.runs is not None and 3 <= r.runs <= FAST.repeats
    assert r.p10 <= r.value <= r.p90
    assert r.timestamp and r.edgeperf_version


@pytest.mark.parametrize("space_name", ["nasbench201", "fbnet", "ofa_mbv3"])
@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_fast_runtimes_profile_real_archs_of_every_space(kind, space_name):
    prof = profilers.get(kind)(protocol=FAST)
    for arch in _archs(space_name, 2):
        _check_rows(prof.profile(space_name, arch), prof, space_name, arch)


@pytest.mark.slow  # TVM compiles each model with LLVM: ~5-12 s per arch on 2 cores
@pytest.mark.parametrize("space_name,n", [("nasbench201", 2), ("fbnet", 2), ("ofa_mbv3", 2)])
def test_tvm_profiles_real_archs_of_every_space(space_name, n):
    prof = profilers.get("tvm")(protocol=FAST)
    for arch in _archs(space_name, n):
        _check_rows(prof.profile(space_name, arch), prof, space_name, arch)
    spec = prof.device_spec()
    assert spec.extra["target"] == "llvm" and spec.extra["mcpu"] and spec.extra["tuned"] is False


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs a CPU affinity to restore (Linux, 2+ CPUs)")
def test_tvm_leaves_the_process_on_the_cores_it_had():
    """TVM's thread pool pins the calling thread to its cores; later work in the process (an ONNX
    Runtime session with 2 threads) must get every core back once TVM's models are unloaded."""
    before = os.sched_getaffinity(0)
    prof = profilers.get("tvm")(threads=1, protocol=FAST)
    first, second = _archs("nasbench201", 2)
    space = spaces.get("nasbench201")
    with prof.open(space, first) as held:
        held.measure()
        prof.measure(space, second)  # loaded and unloaded while the first stays loaded
        held.measure()
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("kind", ["onnxruntime", "torch", "tvm"])
def test_device_spec_is_filled_from_the_host(kind):
    import psutil

    prof = profilers.get(kind)(threads=1, batch_size=2)
    spec = prof.device_spec()
    assert isinstance(spec, DeviceSpec)
    assert spec.name == prof.device_name
    assert spec.runtime == kind and spec.threads == 1 and spec.batch_size == 2
    assert spec.cpu_model
    assert spec.cpu_cores == (psutil.cpu_count(logical=False) or psutil.cpu_count())
    assert spec.extra["logical_cores"] == psutil.cpu_count()
    assert spec.memory_mb == pytest.approx(psutil.virtual_memory().total / 2**20, rel=1e-3)
    # The spec survives the JSON sidecar round trip.
    assert DeviceSpec.from_json(spec.to_json()) == spec


def test_runtime_version_is_the_installed_one():
    import onnxruntime
    import torch

    assert profilers.get("onnxruntime")().describe().runtime_version == onnxruntime.__version__
    assert profilers.get("torch")().describe().runtime_version == torch.__version__


def test_default_names_are_stable_and_tell_runtime_threads_batch_apart():
    ort = profilers.get("onnxruntime")
    names = {
        ort(threads=1).device_name,
        ort(threads=2).device_name,
        ort(threads=1, batch_size=4).device_name,
        profilers.get("torch")(threads=1).device_name,
        profilers.get("tvm")(threads=1).device_name,
    }
    assert len(names) == 5
    assert ort(threads=2).device_name == ort(threads=2).device_name
    assert ort(threads=2, batch_size=4).device_name.endswith("-onnxruntime-t2-b4")
    assert ort(name="my-box").device_name == "my-box"


def test_batch_size_changes_the_model_that_runs():
    nb = spaces.get("nasbench201")
    arch = nb.sample(1, seed=3)[0]
    one = profilers.get("onnxruntime")(protocol=FAST, batch_size=1).profile(nb, arch)[0]
    eight = profilers.get("onnxruntime")(protocol=FAST, batch_size=8).profile(nb, arch)[0]
    assert eight.batch_size == 8 and eight.device != one.device
    assert eight.value > 2 * one.value  # 8 images cost clearly more than 1 on one thread


def test_onnxruntime_settings():
    ort = profilers.get("onnxruntime")
    with pytest.raises(DeviceUnavailableError, match="not in this onnxruntime build"):
        ort(provider="NoSuchExecutionProvider")
    with pytest.raises(DeviceUnavailableError, match="graph_optimization_level"):
        ort(graph_optimization_level="turbo")
    with pytest.raises(InvalidParameterError, match="threads"):
        ort(threads=0)
    prof = ort(graph_optimization_level="disable", protocol=FAST)
    assert prof.describe().extra["graph_optimization_level"] == "disable"
    nb = spaces.get("nasbench201")
    assert prof.profile(nb, nb.sample(1, seed=0)[0])[0].value > 0


def test_torch_thread_setting_is_restored():
    import torch

    original = torch.get_num_threads()
    seen = []
    prof = profilers.get("torch")(threads=1, protocol=FAST)
    # Record the thread count the model actually runs with.
    run = prof._run
    prof._run = lambda handle: (seen.append(torch.get_num_threads()), run(handle))
    try:
        torch.set_num_threads(3)  # the caller's setting (not run with: only restored)
        nb = spaces.get("nasbench201")
        prof.profile(nb, nb.sample(1, seed=0)[0])
        assert torch.get_num_threads() == 3
        assert seen and set(seen) == {1}
    finally:
        torch.set_num_threads(original)


def test_every_local_runtime_is_available_here():
    for kind in ("onnxruntime", "torch", "tvm"):
        assert profilers.get(kind).availability() is None


def test_missing_runtime_is_reported_not_crashed(monkeypatch):
    cls = profilers.get("onnxruntime")
    monkeypatch.setattr(cls, "runtime_package", "edgeperf-no-such-runtime")
    reason = cls.availability()
    assert reason and "edgeperf_no_such_runtime" in reason
    with pytest.raises(DeviceUnavailableError, match="cannot run here"):
        cls()


def test_energy_meter_adds_an_energy_row():
    class CountingMeter:
        """Stands in for a power sensor (none on this machine); speaks the meter protocol."""

        def __init__(self):
            self.started = self.stopped = 0

        def start(self):
            self.started += 1

        def stop(self):
            self.stopped += 1
            return SimpleNamespace(per_inference_mj=lambda n: 100.0 / n)

    meter = CountingMeter()
    prof = profilers.get("onnxruntime")(protocol=FAST, energy_meter=meter)
    nb = spaces.get("nasbench201")
    rows = prof.profile(nb, nb.sample(1, seed=0)[0])
    assert [r.metric for r in rows] == ["latency_ms", "energy_mj"]
    assert rows[1].value == pytest.approx(100.0 / FAST.repeats)
    assert meter.started == meter.stopped == 1


def test_cpufreq_is_read_in_mhz(tmp_path, monkeypatch):
    for cpu, (hi, lo) in enumerate([(3_000_000, 800_000), (2_400_000, 800_000)]):
        d = tmp_path / f"cpu{cpu}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "cpuinfo_max_freq").write_text(f"{hi}\n")
        (d / "cpuinfo_min_freq").write_text(f"{lo}\n")
    monkeypatch.setattr(_sysinfo, "_CPUFREQ", tmp_path)
    assert _sysinfo._frequencies(2) == ((3000.0, 2400.0), (800.0, 800.0))
    assert _sysinfo._frequencies(3) == (None, None)  # a core without cpufreq: no partial answer


def test_importing_profilers_loads_no_runtime():
    code = "import sys, edgeperf.profilers as p; print(p.names()); print([m for m in ('torch','tvm','onnxruntime') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert {"onnxruntime", "torch", "tvm"} <= set(eval(out[0]))
    assert out[1] == "[]"


def test_onnxruntime_int8_dynamic_quantisation_runs_a_quantised_model(tmp_path):
    import onnx

    ort = profilers.get("onnxruntime")
    with pytest.raises(DeviceUnavailableError, match="quantize"):
        ort(quantize="int4")
    prof = ort(quantize="int8-dynamic", protocol=FAST)
    fp32 = ort(protocol=FAST)
    assert prof.device_name == fp32.device_name.replace("-onnxruntime", "-onnxruntime-int8", 1)
    assert prof.describe().extra["precision"] == "int8" and "precision" not in fp32.describe().extra
    nb = spaces.get("nasbench201")
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    path = nb.export_onnx(arch, tmp_path / "m.onnx")
    ops = {n.op_type for n in onnx.load(str(prof._quantized(path, what="test"))).graph.node}
    assert {"ConvInteger", "DynamicQuantizeLinear"} <= ops and "Conv" not in ops  # every conv runs in int8
    rows = prof.profile(nb, arch)
    assert rows[0].device == prof.device_name and rows[0].value > 0
    stats, _ = prof.measure_onnx(path)  # a user's ONNX file is quantised in a scratch folder
    assert stats.median_ms > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx", "m.onnx"]


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_an_open_model_is_loaded_once_and_timed_as_often_as_asked(kind, monkeypatch):
    prof = profilers.get(kind)(protocol=FAST)
    loads, unloads = [], []
    real_load, real_unload = type(prof)._load, type(prof)._unload
    monkeypatch.setattr(type(prof), "_load", lambda self, *a: (loads.append(a[1]), real_load(self, *a))[1])
    monkeypatch.setattr(type(prof), "_unload", lambda self, h: (unloads.append(1), real_unload(self, h))[1])
    arch = _archs("nasbench201", 1)[0]
    with prof.open(spaces.get("nasbench201"), arch) as model:
        timings = [model.measure()[0] for _ in range(3)]
    assert loads == [arch] and len(unloads) == 1
    assert all(t.runs == FAST.repeats and t.min_ms > 0 for t in timings)
    with pytest.raises(InvalidParameterError, match="closed"):
        model.measure()
    model.close()  # closing twice is harmless
    assert len(unloads) == 1
