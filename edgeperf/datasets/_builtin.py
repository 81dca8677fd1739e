"""Built-in public latency tables shipped with the package (see ``data/PROVENANCE.md``)."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgeperf.datasets._records import DeviceSpec
from edgeperf.datasets._table import MeasurementTable
from edgeperf.errors import DatasetNotFoundError, UnknownNameError

__all__ = ["load", "list_builtin", "info", "names", "reference_archs", "data_path", "public_devices"]

_HELP_CITATION = "Lee et al., HELP: Hardware-Adaptive Efficient Latency Prediction for NAS via Meta-Learning, NeurIPS 2021"
_HELP_SOURCE = "github.com/HayeonLee/HELP (MIT licence)"
_DEVICES_FILE = "public_devices.json"


@dataclass(frozen=True)
class _Builtin:
    name: str
    space: str
    file: str
    metric: str
    citation: str
    source: str
    #: HELP's 10 hardware-embedding reference architectures, by arch_index, in HELP's order.
    help_reference_indices: tuple[int, ...]


_HELP_TABLES = (
    _Builtin(
        "help-nb201", "nasbench201", "help_nb201_latency_ms.csv.gz", "latency_ms",
        _HELP_CITATION + "; pixel3 = HW-NAS-Bench (Li et al., ICLR 2021)",
        _HELP_SOURCE + "; GATECH-EIC/HW-NAS-Bench (MIT licence)",
        (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462),
    ),
    _Builtin(
        "help-fbnet", "fbnet", "help_fbnet_latency_ms.csv.gz", "latency_ms", _HELP_CITATION, _HELP_SOURCE,
        (3328, 3790, 3313, 890, 3052, 2538, 1640, 2514, 457, 2100),
    ),
    _Builtin(
        "help-ofa-mbv3", "ofa_mbv3", "help_ofa_mbv3_latency_ms.csv.gz", "latency_ms", _HELP_CITATION, _HELP_SOURCE,
        (1316, 1587, 1621, 1636, 1980, 2329, 2487, 3355, 3740, 4948),
    ),
)


def _runtime_zoo(help_table: _Builtin, space_flag: str) -> _Builtin:
    """``zoo-*``: this machine's runtimes measured on ``help_table``'s architectures (same
    ``arch_index``, so the same reference architectures) by ``build_runtime_zoo.py --space space_flag``."""
    name = "zoo-" + help_table.name.removeprefix("help-")
    stem = name.replace("-", "_")
    return _Builtin(
        name, help_table.space, f"{stem}_latency_ms.csv.gz", "latency_ms",
        f"measured by edgeperf on a shared 2-core cloud VM (benchmarks/build_runtime_zoo.py --space {space_flag})",
        f"edgeperf; see {stem}_provenance.json",
        help_table.help_reference_indices,
    )


_REGISTRY: dict[str, _Builtin] = {
    b.name: b
    for b in (*_HELP_TABLES, *(_runtime_zoo(t, flag) for t, flag in zip(_HELP_TABLES, ("nb201", "fbnet", "ofa"))))
}
#: Other spellings accepted by :func:`reference_archs` (space names, HELP's short names).
_ALIASES = {"nasbench201": "help-nb201", "nb201": "help-nb201", "fbnet": "help-fbnet",
            "ofa_mbv3": "help-ofa-mbv3", "ofa": "help-ofa-mbv3"}
_REFERENCE_VERSIONS = ("help",)

# Per-process caches: the parsed table and the file summaries never change at run time.
_TABLES: dict[str, MeasurementTable] = {}
_SUMMARIES: dict[str, dict[str, Any]] = {}
_DEVICES: dict[str, DeviceSpec] = {}


def names() -> list[str]:
    """Names of the built-in datasets."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Builtin:
    if name not in _REGISTRY:
        raise DatasetNotFoundError("built-in dataset", name, _REGISTRY)
    return _REGISTRY[name]


def data_path(name: str) -> Path:
    """Path of a built-in dataset's file inside the installed package."""
    return Path(str(resources.files("edgeperf.datasets") / "data" / _entry(name).file))


def hardware_family(device: str) -> str:
    """The hardware a device of the built-in tables runs on: batch-size variants of one GPU share
    it (``titanxp_32`` -> ``titanxp``); a CPU or phone is its own (``essential_ph_1`` stays)."""
    spec = public_devices().get(device)
    suffix = f"_{spec.batch_size}" if spec is not None and spec.batch_size else None
    return device[: -len(suffix)] if suffix and device.endswith(suffix) else device


def public_devices() -> dict[str, DeviceSpec]:
    """DeviceSpec of every device of the built-in tables (a fresh dict)."""
    if not _DEVICES:
        from edgeperf.datasets._io import read_devices_json

        path = Path(str(resources.files("edgeperf.datasets") / "data" / _DEVICES_FILE))
        _DEVICES.update(read_devices_json(path))
    return dict(_DEVICES)


def load(name: str) -> MeasurementTable:
    """The built-in table ``name`` (tidy, with ``arch_index`` and ``devices_info``).

    Parsed once per process; every call returns a new table over a copy of the
    frame, so changing what you get never changes what the next caller gets.
    Unknown names raise :class:`DatasetNotFoundError` listing the known ones.
    """
    entry = _entry(name)
    if name not in _TABLES:
        from edgeperf.datasets._io import read

        table = read(data_path(name), space=entry.space, metric=entry.metric)
        devices = public_devices()
        table.devices_info = {**table.devices_info, **{d: devices[d] for d in table.devices if d in devices}}
        _TABLES[name] = table
    cached = _TABLES[name]
    return MeasurementTable(
        cached.frame.copy(), devices_info=dict(cached.devices_info), source=cached.source, validate=False
    )


def _summary(name: str) -> dict[str, Any]:
    """Archs and devices of a built-in file, from its header and row count (no full parse)."""
    if name not in _SUMMARIES:
        entry = _entry(name)
        path = data_path(name)
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            n_rows = sum(1 for _ in reader)
        devices = sorted(c for c in header if c not in ("arch", "arch_index", "space"))
        _SUMMARIES[name] = {
            "name": name,
            "space": entry.space,
            "metric": entry.metric,
            "n_archs": n_rows,
            "n_devices": len(devices),
            "devices": devices,
            "file": path.name,
            "citation": entry.citation,
        }
    return _SUMMARIES[name]


def list_builtin() -> list[dict[str, Any]]:
    """One dict per built-in dataset: name, space, metric, n_archs, n_devices, devices, file, citation."""
    return [json.loads(json.dumps(_summary(n))) for n in names()]  # deep copy


def info(name: str) -> dict[str, Any]:
    """Everything known about a built-in dataset: the summary plus source, path and reference indices."""
    entry = _entry(name)
    out = json.loads(json.dumps(_summary(name)))
    out.update(
        source=entry.source,
        path=str(data_path(name)),
        help_reference_indices=list(entry.help_reference_indices),
        provenance=str(Path(str(resources.files("edgeperf.datasets") / "data" / "PROVENANCE.md"))),
    )
    return out


def reference_archs(name_or_space: str, version: str = "help") -> list[str]:
    """The 10 reference architectures (canonical strings) of a dataset or space, in the source's order.

    ``name_or_space`` is a built-in name (``help-nb201``) or a space (``nasbench201``,
    ``fbnet``, ``ofa_mbv3``). ``version="help"``: HELP's hardware-embedding set, resolved
    by ``arch_index`` in the built-in table.
    """
    if version not in _REFERENCE_VERSIONS:
        raise UnknownNameError("reference-architecture version", version, _REFERENCE_VERSIONS)
    name = _ALIASES.get(name_or_space, name_or_space)
    if name not in _REGISTRY:
        raise DatasetNotFoundError("built-in dataset or space", name_or_space, list(_REGISTRY) + list(_ALIASES))
    if name not in _TABLES:
        load(name)
    table = _TABLES[name]  # read-only use: no copy needed
    frame = table.frame.drop_duplicates("arch_index").set_index("arch_index")["arch"]
    return [str(frame.loc[i]) for i in _REGISTRY[name].help_reference_indices]
