"""Android phones over adb: a small adb client, the ``android`` profiler and output parsers.

Importing this package registers :class:`AndroidProfiler` under ``"android"`` with
:func:`edgeperf.profilers.register`.
"""

from __future__ import annotations

from edgeperf.profilers.adb._android import REMOTE_DIR, AndroidProfiler
from edgeperf.profilers.adb._client import AdbClient, find_adb
from edgeperf.profilers.adb._parsers import parse_ort_perf_test, parse_tflite_benchmark

__all__ = ["AdbClient", "AndroidProfiler", "REMOTE_DIR", "find_adb", "parse_ort_perf_test", "parse_tflite_benchmark"]
