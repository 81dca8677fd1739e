"""Measurements as data: records, tables, file readers/writers and built-in public tables.

>>> from edgeperf import datasets
>>> table = datasets.load("help-nb201")          # 15,625 archs x 21 devices, latency_ms
>>> table.values("pixel3").head()                # doctest: +SKIP
>>> datasets.write(table, "nb201.parquet")       # tidy; layout="wide" for one column per device
>>> datasets.read("nb201.parquet")               # tidy or wide, .csv / .csv.gz / .parquet

File layouts, the row numbering of error messages and the policy for missing or
failed measurements are described in ``docs/DATA_FORMAT.md``.
"""

from __future__ import annotations

from edgeperf.datasets._builtin import (
    data_path,
    hardware_family,
    info,
    list_builtin,
    load,
    public_devices,
    reference_archs,
)
from edgeperf.datasets._builtin import names as builtin_names
from edgeperf.datasets._io import (
    check_readable,
    check_writable,
    open_table,
    read,
    read_devices_json,
    read_text,
    sidecar_path,
    write,
    write_devices_json,
)
from edgeperf.datasets._lock import FileLock
from edgeperf.datasets._records import METRICS, PROVENANCE_FIELDS, DeviceSpec, Measurement
from edgeperf.datasets._rowwriter import RowWriter
from edgeperf.datasets._table import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, MeasurementTable
from edgeperf.datasets._validate import validate_tidy_frame
from edgeperf.datasets.synthetic import synthetic_devices  # noqa: F401  synthetic hardware (meta-training only)

__all__ = [
    "METRICS",
    "PROVENANCE_FIELDS",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "Measurement",
    "DeviceSpec",
    "MeasurementTable",
    "RowWriter",
    "read",
    "open_table",
    "read_text",
    "check_readable",
    "check_writable",
    "FileLock",
    "write",
    "read_devices_json",
    "write_devices_json",
    "sidecar_path",
    "validate_tidy_frame",
    "load",
    "list_builtin",
    "info",
    "builtin_names",
    "reference_archs",
    "data_path",
    "public_devices",
    "hardware_family",
]

