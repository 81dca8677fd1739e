"""Profile architectures on an Android phone over adb with a benchmark runner the user supplies.

Two runners are supported (see RUNNERS.md for where to get them): TFLite's ``benchmark_model``
(``tool="tflite"``) and ONNX Runtime's ``onnxruntime_perf_test`` (``tool="ort"``). Per
architecture the model is pushed to ``/data/local/tmp/edgeperf/``, run with the protocol's
warm-up and repeats, parsed into :class:`TimingStats`, and removed again (also on error).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from edgeperf.datasets import DeviceSpec
from edgeperf.errors import DeviceUnavailableError, ProfilingError
from edgeperf.profilers import register
from edgeperf.profilers._base import Profiler
from edgeperf.profilers._protocol import TimingStats
from edgeperf.profilers.adb._client import AdbClient, find_adb
from edgeperf.profilers.adb._parsers import (
    parse_cpu_list,
    parse_dumpsys_battery,
    parse_grep_h,
    parse_meminfo_mb,
    parse_ort_perf_test,
    parse_tflite_benchmark,
)

__all__ = ["AndroidProfiler", "REMOTE_DIR"]

#: Where pushed files live on the phone: world-writable without root on every Android.
REMOTE_DIR = "/data/local/tmp/edgeperf"
#: Seconds one benchmark invocation may take before it counts as hung.
DEFAULT_RUN_TIMEOUT_S = 600.0
_KHZ_PER_MHZ = 1e3
_CPU_DIR = "/sys/devices/system/cpu"

#: tool -> (runner file name on the phone, model format, delegates it accepts)
_TOOLS = {
    "tflite": ("benchmark_model", "tflite", ("cpu", "gpu", "nnapi", "xnnpack")),
    "ort": ("onnxruntime_perf_test", "onnx", ("cpu", "nnapi", "xnnpack")),
}
_TFLITE_DELEGATE_FLAGS = {"gpu": "--use_gpu=true", "nnapi": "--use_nnapi=true", "xnnpack": "--use_xnnpack=true"}
_TRUE = {"1", "true", "yes", "on"}


def _as_bool(value) -> bool:
    return value.strip().lower() in _TRUE if isinstance(value, str) else bool(value)


@register
class AndroidProfiler(Profiler):
    """Latency of architectures on an Android phone, via adb and a user-supplied runner.

    Parameters
    ----------
    serial:
        adb serial of the phone (``adb devices -l``); the only attached device when None.
    runner:
        Local path of the benchmark binary built for the phone's ABI (see RUNNERS.md).
    tool:
        ``"tflite"`` or ``"ort"``; inferred from the runner's file name when None.
    delegate:
        ``cpu`` (default), ``xnnpack``, ``nnapi`` or (TFLite only) ``gpu``.
    cpu_mask:
        Hex CPU affinity mask for ``taskset`` (e.g. ``"f0"`` = the big cores of many 4+4 SoCs).
    pin_frequency:
        Set every core's cpufreq governor to ``performance`` with ``su -c`` (needs root) and
        restore the previous governors on :meth:`close`. Off by default; root is never used
        otherwise.
    model_paths:
        ``{arch: local model file}`` (or a JSON file of it) to run instead of exporting; how
        ``.tflite`` models are given (edgeperf cannot convert ONNX to TFLite itself).
    converter:
        For ``tool="tflite"`` without ``model_paths``: a callable ``(onnx_path, tflite_path)`` or
        a command template with ``{onnx}`` and ``{tflite}`` placeholders, e.g. a wrapper
        around ``onnx2tf``.
    """

    kind = "android"
    model_format = "onnx"
    options = {
        "serial": "adb serial of the phone (see `adb devices -l`)",
        "runner": "local path of benchmark_model or onnxruntime_perf_test built for the phone",
        "tool": "tflite or ort (default: from the runner's file name)",
        "delegate": "cpu, xnnpack, nnapi, or gpu (tflite only)",
        "cpu_mask": "hex taskset mask, e.g. f0 for the big cores",
        "pin_frequency": "true to set the performance governor with su (needs root)",
        "model_paths": "JSON file mapping arch -> local model file (.tflite or .onnx)",
        "converter": "command template converting {onnx} to {tflite}",
    }

    def __init__(
        self,
        *,
        serial: str | None = None,
        runner: str | Path | None = None,
        tool: str | None = None,
        delegate: str = "cpu",
        cpu_mask: str | None = None,
        pin_frequency: bool | str = False,
        model_paths: Mapping[str, str | Path] | str | Path | None = None,
        converter: Callable[[Path, Path], Any] | str | None = None,
        adb_path: str | None = None,
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
        name: str | None = None,
        protocol=None,
        energy_meter=None,
        batch_size: int = 1,
        threads: int | str | None = None,
    ):
        super().__init__(
            name=name,
            protocol=protocol,
            energy_meter=energy_meter,
            batch_size=int(batch_size),
            threads=int(threads) if threads not in (None, "") else None,
        )
        self.serial = serial
        self.runner = Path(runner) if runner else None
        if tool is None and self.runner is not None:
            tool = "ort" if "onnxruntime" in self.runner.name else "tflite" if "benchmark" in self.runner.name else None
        if tool not in _TOOLS:
            raise ProfilingError(
                f"expected tool 'tflite' or 'ort' (or a runner named benchmark_model / onnxruntime_perf_test), "
                f"got tool={tool!r}, runner={runner!r}; see edgeperf/profilers/adb/RUNNERS.md"
            )
        self.tool = tool
        self.delegate = (delegate or "cpu").lower()
        if self.delegate not in _TOOLS[tool][2]:
            raise ProfilingError(f"expected a delegate among {_TOOLS[tool][2]} for tool {tool!r}, got {delegate!r}")
        self.model_format = _TOOLS[tool][1]
        self.cpu_mask = cpu_mask
        if cpu_mask is not None:
            try:
                int(str(cpu_mask), 16)
            except ValueError:
                raise ProfilingError(f"expected a hex CPU mask for taskset such as 'f0', got {cpu_mask!r}") from None
        self.pin_frequency = _as_bool(pin_frequency)
        if isinstance(model_paths, (str, Path)):
            model_paths = json.loads(Path(model_paths).read_text())
        self.model_paths = {k: Path(v) for k, v in (model_paths or {}).items()}
        self.converter = converter
        self.run_timeout_s = float(run_timeout_s)
        self.client = AdbClient(serial, adb_path=adb_path)
        self._runner_pushed = False
        self._saved_governors: dict[str, str] | None = None

    # ---- discovery and identity -------------------------------------------------------------
    @classmethod
    def availability(cls) -> str | None:
        try:
            find_adb()
        except DeviceUnavailableError as exc:
            return str(exc)
        return None

    @classmethod
    def discover(cls, *, adb_path: str | None = None) -> list[dict]:
        """Attached devices from ``adb devices -l``: ``[{"serial", "state", "model", ...}]``."""
        return AdbClient(None, adb_path=adb_path).devices()

    def _describe(self) -> DeviceSpec:
        props = self.client.getprop()
        possible = self.client.shell(["cat", f"{_CPU_DIR}/possible"]).strip()
        cores = parse_cpu_list(possible) if possible else []
        # one call for every core's max frequency (kHz); glob expanded by the phone's shell
        freq_text = self.client.shell(f"grep -H . {_CPU_DIR}/cpu*/cpufreq/cpuinfo_max_freq", check=False)
        freqs = {}
        for path, value in parse_grep_h(freq_text).items():
            cpu = PurePosixPath(path).parts[-3]  # .../cpuN/cpufreq/cpuinfo_max_freq
            if cpu[3:].isdigit() and value.isdigit():
                freqs[int(cpu[3:])] = int(value) / _KHZ_PER_MHZ
        mem_mb = parse_meminfo_mb(self.client.shell(["cat", "/proc/meminfo"]))
        battery = parse_dumpsys_battery(self.client.shell(["dumpsys", "battery"], check=False))
        model = props.get("ro.product.model") or "android"
        manufacturer = props.get("ro.product.manufacturer", "")
        platform = props.get("ro.board.platform") or None
        soc = props.get("ro.soc.model") or platform
        runner_name, _, _ = _TOOLS[self.tool]
        return DeviceSpec(
            name=f"{manufacturer} {model}".strip(),
            kind="phone",
            soc=soc,
            cpu_model=soc,
            cpu_cores=len(cores) or (len(freqs) or None),
            cpu_max_freq_mhz=tuple(freqs[c] for c in sorted(freqs)) or None,
            memory_mb=mem_mb,
            runtime=runner_name,
            threads=self.threads,
            batch_size=self.batch_size,
            os=f"Android {props.get('ro.build.version.release', '?')}",
            extra={
                "manufacturer": manufacturer,
                "model": model,
                "board_platform": platform,
                "soc_manufacturer": props.get("ro.soc.manufacturer"),
                "abi": props.get("ro.product.cpu.abi"),
                "sdk": props.get("ro.build.version.sdk"),
                "delegate": self.delegate,
                "cpu_mask": self.cpu_mask,
                "pin_frequency": self.pin_frequency,
                "battery_level": battery.get("level"),
                "battery_temperature": battery.get("temperature"),
                "battery_technology": battery.get("technology"),
            },
        )

    def default_name(self) -> str:
        spec = self.describe()
        parts = [spec.extra.get("manufacturer") or "", spec.extra.get("model") or "android", self.tool, self.delegate]
        if self.threads:
            parts.append(f"t{self.threads}")
        if self.cpu_mask:
            parts.append(f"m{self.cpu_mask}")
        parts.append(f"b{self.batch_size}")
        base = "-".join(p for p in parts if p).lower()
        base = "".join(c if c.isalnum() else "-" for c in base)
        while "--" in base:
            base = base.replace("--", "-")
        return base.strip("-")

    # ---- frequency pinning (root, only when asked) -----------------------------------------
    def _governor_files(self) -> dict[str, str]:
        text = self.client.shell(f"grep -H . {_CPU_DIR}/cpu*/cpufreq/scaling_governor", check=False)
        return parse_grep_h(text)

    def _pin(self) -> None:
        saved = self._governor_files()
        if not saved:
            raise ProfilingError(f"pin_frequency=True but no {_CPU_DIR}/cpu*/cpufreq/scaling_governor was readable")
        self._saved_governors = {}
        for path, governor in saved.items():
            self._su(f"echo performance > {path}")
            self._saved_governors[path] = governor  # only what we changed gets restored

    def _restore(self) -> None:
        saved, self._saved_governors = self._saved_governors, None
        for path, governor in (saved or {}).items():
            self._su(f"echo {governor} > {path}")

    def _su(self, command: str) -> None:
        out = self.client.run(["shell", shlex.join(["su", "-c", command])], check=False)
        if out.returncode != 0:
            raise ProfilingError(
                f"pin_frequency=True needs root: `su -c {command!r}` failed (exit {out.returncode}); "
                "root the phone or run without pin_frequency",
                raw_output=(out.stdout or "") + (out.stderr or ""),
            )

    # ---- running ----------------------------------------------------------------------------
    def _local_model(self, space, arch: str, workdir: Path) -> Path:
        if arch in self.model_paths:
            path = self.model_paths[arch]
            if not path.is_file():
                raise ProfilingError(f"model_paths[{arch!r}] points to {path}, which is not a file")
            return path
        onnx_path = space.export_onnx(arch, workdir / "model.onnx", batch_size=self.batch_size)
        if self.model_format == "onnx":
            return Path(onnx_path)
        if self.converter is None:
            raise ProfilingError(
                f"tool='tflite' needs a .tflite model for {arch!r}: give model_paths={{arch: file.tflite}} or a "
                "converter (edgeperf does not depend on ai-edge-torch/onnx2tf; see RUNNERS.md)"
            )
        tflite_path = workdir / "model.tflite"
        if callable(self.converter):
            self.converter(Path(onnx_path), tflite_path)
        else:
            argv = [a.format(onnx=onnx_path, tflite=tflite_path) for a in shlex.split(self.converter)]
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                raise ProfilingError(f"converter {argv!r} failed (exit {proc.returncode})", raw_output=proc.stdout + proc.stderr)
        if not tflite_path.is_file():
            raise ProfilingError(f"the converter did not write {tflite_path}")
        return tflite_path

    def _load(self, space, arch: str, workdir: Path) -> dict:
        if self.runner is None or not self.runner.is_file():
            raise ProfilingError(
                f"expected the {_TOOLS[self.tool][0]} runner binary at runner={self.runner}, found nothing; "
                "see edgeperf/profilers/adb/RUNNERS.md for where to get it"
            )
        local = self._local_model(space, arch, workdir)
        runner_remote = f"{REMOTE_DIR}/{_TOOLS[self.tool][0]}"
        if not self._runner_pushed:
            self.client.shell(["mkdir", "-p", REMOTE_DIR])
            self.client.push(self.runner, runner_remote)
            self.client.shell(["chmod", "755", runner_remote])
            self._runner_pushed = True
            if self.pin_frequency and not self._saved_governors:
                self._pin()
        stem = uuid.uuid4().hex[:12]
        handle = {
            "runner": runner_remote,
            "model": f"{REMOTE_DIR}/{stem}{local.suffix}",
            "result": f"{REMOTE_DIR}/{stem}.result.txt",
            "arch": arch,
        }
        try:
            self.client.push(local, handle["model"])
        except Exception:
            self._unload(handle)
            raise
        return handle

    def _warmup(self, handle) -> None:
        """Nothing to do here: every runner invocation is a fresh process that warms itself up
        (TFLite ``--warmup_runs``; for ORT the first ``warmup`` runs are dropped)."""

    def _command(self, handle) -> list[str]:
        warm, reps = self.protocol.warmup, self.protocol.repeats
        if self.tool == "tflite":
            args = [handle["runner"], f"--graph={handle['model']}", f"--warmup_runs={max(warm, 1)}",
                    "--warmup_min_secs=0", f"--num_runs={reps}", "--min_secs=0"]
            if self.threads:
                args.append(f"--num_threads={self.threads}")
            if self.delegate in _TFLITE_DELEGATE_FLAGS:
                args.append(_TFLITE_DELEGATE_FLAGS[self.delegate])
        else:
            args = [handle["runner"], "-m", "times", "-r", str(warm + reps), "-e", self.delegate, "-I", "-s"]
            if self.threads:
                args += ["-x", str(self.threads)]
            args += [handle["model"], handle["result"]]
        if self.cpu_mask:
            args = ["taskset", str(self.cpu_mask)] + args
        return args

    def _timed_round(self, handle) -> TimingStats:
        if self.tool == "ort":  # the result file is appended to, never truncated
            self.client.shell(["rm", "-f", handle["result"]])
        proc = self.client.run(["shell", shlex.join(self._command(handle))], timeout_s=self.run_timeout_s, check=False)
        out = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0:
            raise ProfilingError(
                f"{_TOOLS[self.tool][0]} exited with status {proc.returncode} on {handle['arch']!r}",
                raw_output=out,
            )
        if self.tool == "tflite":
            return parse_tflite_benchmark(out)
        result = self.client.run(["shell", shlex.join(["cat", handle["result"]])], check=False)
        per_run = result.stdout if result.returncode == 0 else None
        return parse_ort_perf_test(out, per_run, skip_first=self.protocol.warmup)

    def _unload(self, handle) -> None:
        self.client.shell(["rm", "-f", handle["model"], handle["result"]])

    def close(self) -> None:
        """Restore governors (if pinned) and remove everything pushed; quiet if the phone is gone."""
        try:
            if self._saved_governors:
                self._restore()
            if self._runner_pushed:
                self.client.shell(["rm", "-rf", REMOTE_DIR])
        except DeviceUnavailableError:
            pass  # unplugged: nothing left to clean that we can reach
        finally:
            self._runner_pushed = False
