"""Parsers of what a phone prints: getprop, /proc/meminfo, dumpsys battery, adb devices, and the
two benchmark tools (TFLite ``benchmark_model``, ONNX Runtime ``onnxruntime_perf_test``).

Every parser is a pure function of text, so it is tested on recorded real outputs. A benchmark
output that cannot be parsed raises :class:`ProfilingError` carrying the raw text -- never a
latency of 0.

Formats, from the tools' sources:

- TFLite ``tensorflow/lite/tools/benchmark/benchmark_model.cc`` logs one line per ``Run``
  (``Stat::OutputToStream``): ``count=N first=.. curr=.. min=.. max=.. avg=.. std=..`` (newer
  builds append ``p5=.. median=.. p95=..``; a run whose samples were all equal prints
  ``count=N curr=X(all same)``), first for the warm-up runs and then for the timed runs, and
  finally ``Inference timings in us: Init: .., First inference: .., Warmup (avg): ..,
  Inference (avg): ..``. Numbers are microseconds and may be in C++ scientific notation
  (``2.95034e+06``); lines may carry a logcat prefix (``INFO: ``, ``I tflite  : ``).
- ONNX Runtime ``onnxruntime/test/perftest/performance_runner.cc`` prints ``Total inference
  requests: N``, ``Average inference time cost: X ms`` and, with ``-s``, ``Min/Max/P50/P90/P95/
  P99/P999 Latency: X s``; the result file gets one CSV line per run:
  ``model_name,seconds,peak_workingset_bytes,cpu_percent,run_index``.
"""

from __future__ import annotations

import math
import re

from edgeperf.errors import ProfilingError
from edgeperf.profilers._protocol import TimingStats

__all__ = [
    "parse_getprop",
    "parse_meminfo_mb",
    "parse_dumpsys_battery",
    "parse_devices",
    "parse_cpu_list",
    "parse_grep_h",
    "parse_tflite_benchmark",
    "parse_ort_perf_test",
]

_US_PER_MS = 1e3
_MS_PER_S = 1e3
_KB_PER_MB = 1024.0
#: z-score of the 90th percentile of a normal distribution: used to estimate p10/p90 when a
#: tool reports only mean and std (TFLite's summary line).
_Z90 = 1.2815515655446004

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_getprop(text: str) -> dict[str, str]:
    """``adb shell getprop`` (lines ``[key]: [value]``) -> dict."""
    props = {}
    for m in re.finditer(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$", text, flags=re.M):
        props[m.group(1)] = m.group(2)
    return props


def parse_meminfo_mb(text: str) -> float | None:
    """``MemTotal`` of ``/proc/meminfo`` in MB, or None when absent."""
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, flags=re.M)
    return int(m.group(1)) / _KB_PER_MB if m else None


def parse_dumpsys_battery(text: str) -> dict[str, str]:
    """``dumpsys battery`` (indented ``key: value`` lines) -> dict of strings."""
    out = {}
    for line in text.splitlines():
        if ":" in line and line.startswith(" "):
            key, _, value = line.strip().partition(":")
            out[key.strip()] = value.strip()
    return out


def parse_devices(text: str) -> list[dict]:
    """``adb devices -l`` -> ``[{"serial", "state", "model", ...}]`` (model may be None)."""
    devices = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        info = {"serial": parts[0], "state": parts[1], "model": None}
        for extra in parts[2:]:
            key, sep, value = extra.partition(":")
            if sep:
                info[key] = value
        devices.append(info)
    return devices


def parse_cpu_list(text: str) -> list[int]:
    """A kernel CPU list (``0-3,6``) -> ``[0, 1, 2, 3, 6]``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def parse_grep_h(text: str) -> dict[str, str]:
    """``grep -H . FILES`` (lines ``path:value``) -> {path: value}."""
    out = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if sep:
            out[path.strip()] = value.strip()
    return out


# ---- TFLite benchmark_model -----------------------------------------------------------------
_STAT_RE = re.compile(
    rf"count=(?P<count>\d+)\s+(?:first=(?P<first>{_NUM})\s+)?curr=(?P<curr>{_NUM})"
    rf"(?:\(all same\)|\s+min=(?P<min>{_NUM})\s+max=(?P<max>{_NUM})\s+avg=(?P<avg>{_NUM})\s+std=(?P<std>{_NUM})"
    rf"(?:\s+p5=(?P<p5>{_NUM})\s+median=(?P<median>{_NUM})\s+p95=(?P<p95>{_NUM}))?)?"
)
_TFLITE_SUMMARY_RE = re.compile(
    rf"Inference timings in us:\s*Init:\s*(?P<init>{_NUM}),\s*First inference:\s*(?P<first>{_NUM}),\s*"
    rf"Warmup \(avg\):\s*(?P<warmup>{_NUM}),\s*Inference \(avg\):\s*(?P<avg>{_NUM})"
    # builds before TF 1.15 print "Average inference timings in us: Warmup: W, Init: I, no stats: A"
    rf"|Average inference timings in us:\s*Warmup:\s*{_NUM},\s*Init:\s*{_NUM},\s*no stats:\s*{_NUM}"
)


def _stats_from_summary(*, median_ms, mean_ms, std_ms, min_ms, max_ms, runs, p10_ms=None, p90_ms=None, raw):
    values = [median_ms, mean_ms, std_ms, min_ms, max_ms]
    if any(not math.isfinite(v) for v in values) or min_ms <= 0 or median_ms <= 0 or runs < 1:
        raise ProfilingError(
            f"expected positive finite latencies from the benchmark tool, got median={median_ms} "
            f"min={min_ms} runs={runs} ms; the run probably failed (see the raw output)",
            raw_output=raw,
        )
    # Percentiles the tool does not print are estimated under a normal model, clipped to
    # the observed range (documented in RUNNERS.md).
    if p10_ms is None:
        p10_ms = max(min_ms, mean_ms - _Z90 * std_ms)
    if p90_ms is None:
        p90_ms = min(max_ms, mean_ms + _Z90 * std_ms)
    return TimingStats(
        median_ms=median_ms,
        mean_ms=mean_ms,
        std_ms=std_ms,
        p10_ms=min(p10_ms, median_ms),
        p90_ms=max(p90_ms, median_ms),
        min_ms=min_ms,
        cv=std_ms / mean_ms,
        runs=runs,
    )


def parse_tflite_benchmark(text: str) -> TimingStats:
    """Timed-run statistics of a ``benchmark_model`` log.

    The last ``count=`` line is the timed runs (the one before it is the warm-up). The median
    is the tool's ``median=`` when printed, else its average; p10/p90 are estimated from
    mean and std (the tool prints no per-run times).
    """
    stats = list(_STAT_RE.finditer(text))
    summary = _TFLITE_SUMMARY_RE.search(text)
    if not stats or summary is None:
        missing = "the 'count=... avg=... std=...' line" if not stats else "the 'Inference timings in us:' line"
        raise ProfilingError(
            f"could not parse TFLite benchmark_model output: expected {missing}; check the runner "
            "binary matches the phone's ABI and the model loads (see the raw output)",
            raw_output=text,
        )
    m = stats[-1]
    runs = int(m.group("count"))
    if m.group("avg") is None:  # "count=N curr=X(all same)"
        value = float(m.group("curr")) / _US_PER_MS
        return _stats_from_summary(
            median_ms=value, mean_ms=value, std_ms=0.0, min_ms=value, max_ms=value, runs=runs, raw=text
        )
    mean = float(m.group("avg")) / _US_PER_MS
    median = float(m.group("median")) / _US_PER_MS if m.group("median") else mean
    return _stats_from_summary(
        median_ms=median,
        mean_ms=mean,
        std_ms=float(m.group("std")) / _US_PER_MS,
        min_ms=float(m.group("min")) / _US_PER_MS,
        max_ms=float(m.group("max")) / _US_PER_MS,
        runs=runs,
        raw=text,
    )


# ---- ONNX Runtime onnxruntime_perf_test -----------------------------------------------------
def _find(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def parse_ort_perf_test(stdout: str, result_file: str | None = None, *, skip_first: int = 0) -> TimingStats:
    """Timed-run statistics of an ``onnxruntime_perf_test`` run.

    With the result file (one CSV line per run, seconds in the second field) the statistics are
    computed from the per-run times, after dropping the first ``skip_first`` runs (edgeperf's
    warm-up). Without it, the printed summary is used (P50 as median, P90, min/max; std
    estimated from P50..P90).
    """
    raw = stdout if result_file is None else f"{stdout}\n--- result file ---\n{result_file}"
    if result_file:
        samples = []
        for line in result_file.splitlines():
            fields = line.strip().split(",")
            if len(fields) >= 5:
                try:
                    samples.append(float(fields[1]) * _MS_PER_S)
                except ValueError:
                    continue
        if len(samples) > skip_first:
            try:
                return TimingStats.from_samples(samples[skip_first:])
            except ProfilingError as exc:
                raise ProfilingError(f"onnxruntime_perf_test reported unusable run times: {exc}", raw_output=raw) from None
    requests = _find(r"Total inference requests:\s*(\d+)", stdout)
    avg_ms = _find(rf"Average inference time cost:\s*({_NUM})\s*ms", stdout)
    p50 = _find(rf"P50 Latency:\s*({_NUM})\s*s", stdout)
    if requests is None or avg_ms is None:
        raise ProfilingError(
            "could not parse onnxruntime_perf_test output: expected 'Total inference requests: N' and "
            "'Average inference time cost: X ms'; check the runner was built for this phone's ABI and "
            "that the model has static input shapes (see the raw output)",
            raw_output=raw,
        )
    p90 = _find(rf"P90 Latency:\s*({_NUM})\s*s", stdout)
    lo = _find(rf"Min Latency:\s*({_NUM})\s*s", stdout)
    hi = _find(rf"Max Latency:\s*({_NUM})\s*s", stdout)
    median = p50 * _MS_PER_S if p50 is not None else avg_ms
    p90_ms = p90 * _MS_PER_S if p90 is not None else None
    std = (p90_ms - median) / _Z90 if p90_ms is not None else 0.0
    return _stats_from_summary(
        median_ms=median,
        mean_ms=avg_ms,
        std_ms=max(std, 0.0),
        min_ms=lo * _MS_PER_S if lo is not None else min(avg_ms, median),
        max_ms=hi * _MS_PER_S if hi is not None else max(avg_ms, median),
        runs=int(requests),
        p90_ms=p90_ms,
        raw=raw,
    )
