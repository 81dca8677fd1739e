"""Read and write measurement tables: tidy or wide, CSV, gzipped CSV or parquet.

Layouts (see ``docs/DATA_FORMAT.md``):

* **tidy**: one row per measurement, columns ``space, arch, device, metric, value``
  [+ ``arch_index``] [+ provenance]. ``space`` may be left out of a file (then it
  comes from ``space=`` or is detected from the architecture strings).
* **wide**: one row per architecture, columns ``arch`` [+ ``arch_index``] [+ ``space``]
  and one column per device holding the ``metric=`` values (default ``latency_ms``).
  This is how public benchmarks publish latencies. An empty cell means "not
  measured" and is dropped; ``-1`` and ``0``, the sentinels public benchmarks write
  for a failed measurement, are treated as missing too, with a warning naming the
  file, the count and the devices. Any other value must be finite and > 0.

Device static features travel in a JSON sidecar ``<file>.devices.json`` that maps
device name -> :class:`DeviceSpec` dict; it is read when present and written when the
table has ``devices_info``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import uuid
import warnings
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from edgeperf.datasets._records import METRICS, DeviceSpec
from edgeperf.datasets._rowwriter import ROW_CHECK_COLUMN
from edgeperf.datasets._table import MeasurementTable
from edgeperf.datasets._validate import (
    STRING_COLUMNS,
    _check_text_column,
    _first,
    _numeric,
    canonical_archs,
    validate_tidy_frame,
)
from edgeperf.errors import DataValidationError, EdgePerfError, FileAccessError, InvalidParameterError, UnknownDeviceError

__all__ = ["read", "write", "open_table", "read_text", "check_readable", "check_writable", "sidecar_path", "read_devices_json", "write_devices_json", "LAYOUTS", "FORMATS"]

#: File name endings this module reads and writes, and the format each means.
FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}
LAYOUTS = ("tidy", "wide")
#: Sentinels public benchmarks write for "measurement failed" (wide tables only).
FAILED_SENTINELS = (-1.0, 0.0)
#: Suffix of the device-features sidecar, appended to the full file name.
SIDECAR_SUFFIX = ".devices.json"
#: Columns of a wide table that are not devices.
_WIDE_META = ("arch", "arch_index", "space")
#: Fixed gzip timestamp so writing the same table twice gives the same bytes.
_GZIP_MTIME = 0
#: zlib level: 6 is gzip's default trade-off; 9 is much slower for little gain on CSV.
_GZIP_LEVEL = 6
#: Decompression failures of a corrupted .gz file (``zlib.error`` is not an OSError).
_DECODE_ERRORS = (OSError, UnicodeDecodeError, EOFError, zlib.error, csv.Error)
#: Plausible (low, high) value of each metric, in its unit; outside it, ``read`` warns.
PLAUSIBLE_RANGE = {
    "latency_ms": (1e-3, 1e7),  # 1 microsecond .. 2.8 hours per inference
    "energy_mj": (1e-6, 1e9),
    "power_mw": (1e-3, 1e8),
    "memory_mb": (1e-6, 1e7),
}
#: A latency device whose every value is below this (ms) was most likely written in seconds.
SECONDS_SUSPECT_MS = 0.01
#: pandas < 3 parses floats approximately unless asked; pandas 3 is exact and deprecates the option.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise DataValidationError(
        f"unsupported file type; expected a name ending in one of {sorted(FORMATS)}", path=path
    )


def sidecar_path(path: str | os.PathLike) -> Path:
    """``<file>.devices.json`` next to ``path``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


# ---- device sidecar ------------------------------------------------------------------------
def read_devices_json(path: str | os.PathLike) -> dict[str, DeviceSpec]:
    """Device name -> :class:`DeviceSpec` from a ``.devices.json`` file."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"expected UTF-8 JSON (device name -> device dict), got bytes that are not UTF-8 "
                                  f"({exc.reason} at byte {exc.start})", path=path) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DataValidationError(f"expected JSON (device name -> device dict): {what}", path=path) from None
    if not isinstance(data, dict):
        raise DataValidationError(
            f"expected a JSON object mapping device name -> device dict, got {type(data).__name__}", path=path
        )
    out = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise DataValidationError(
                f"expected a JSON object for device {name!r}, got {type(spec).__name__}", path=path, field=name
            )
        spec = {"name": name, **spec}
        if not isinstance(name, str) or not name.strip() or spec["name"] != name:
            raise DataValidationError(
                f"device stored under key {name!r} is named {spec['name']!r}; key and name must agree",
                path=path, field=name,
            )
        try:
            out[name] = DeviceSpec.from_dict(spec)
        except DataValidationError as exc:
            raise DataValidationError(f"device {name!r}: {exc}", path=path, field=exc.field or name) from None
        except (TypeError, ValueError, OverflowError) as exc:  # a field of the wrong JSON type
            raise DataValidationError(f"device {name!r}: a field has the wrong type ({exc})", path=path,
                                      field=name) from None
    return out


def write_devices_json(devices: dict[str, DeviceSpec], path: str | os.PathLike) -> Path:
    """Write device name -> DeviceSpec dict as sorted, indented JSON (atomically)."""
    text = json.dumps({n: devices[n].to_dict() for n in sorted(devices)}, indent=2, sort_keys=True) + "\n"
    return _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# ---- reading -------------------------------------------------------------------------------
def check_readable(path: Path) -> None:
    """A clear error unless ``path`` is an existing regular file (not a folder, a device)."""
    if path.is_dir():
        raise DataValidationError("is a directory; expected a measurement file", path=path)
    if not path.exists():
        raise DataValidationError("no such file; expected a path to an existing measurement file", path=path)
    if not path.is_file():
        raise DataValidationError("not a regular file; expected a measurement file", path=path)


def check_writable(path: Path) -> None:
    """A clear :class:`FileAccessError` when ``path`` cannot be a file we write (a folder, /proc)."""
    if path.is_dir():
        raise FileAccessError(path, "write to", IsADirectoryError(21, "is a directory"))
    if path.exists() and not path.is_file():
        raise FileAccessError(path, "write to", OSError(0, "not a regular file"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileAccessError(path, "write to", exc) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FileAccessError(path, "read", exc) from None


def read_text(path: str | os.PathLike, *, what: str = "a UTF-8 text file") -> str:
    """The text of a small input file (an architecture list), with clear errors for a missing
    file, a folder, unreadable bytes or text that is not UTF-8."""
    path = Path(path)
    check_readable(path)
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"expected {what}, got bytes that are not UTF-8 ({exc.reason} at byte "
                                  f"{exc.start})", path=path) from None


def _csv_header(path: Path, fmt: str) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            return next(csv.reader(fh), [])
    except _DECODE_ERRORS as exc:
        raise DataValidationError(f"cannot read the file as UTF-8 {fmt}: {exc}", path=path) from None


def _load_frame(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a corrupt file
            raise DataValidationError(f"cannot read the file as parquet: {exc}", path=path) from None
    header = _csv_header(path, fmt)
    if header and header[-1] == ROW_CHECK_COLUMN:
        return _checked_rows_frame(path, header)
    if not header:
        raise DataValidationError("the file is empty; expected a header row", path=path, row=0)
    blank = [i for i, c in enumerate(header) if not c.strip()]
    if blank:
        raise DataValidationError(
            f"column {blank[0] + 1} of the header has no name (an empty device name?)", path=path, row=0
        )
    seen = set()
    for c in header:
        if c in seen:
            raise DataValidationError(f"column {c!r} appears more than once in the header", path=path, field=c)
        seen.add(c)
    try:
        return pd.read_csv(
            path,
            dtype={c: str for c in STRING_COLUMNS if c in header},
            keep_default_na=False,  # a device or runtime named "NA" stays a string
            na_values=[""],
            **_EXACT_FLOATS,
        )
    except (pd.errors.ParserError, ValueError, OverflowError, *_DECODE_ERRORS) as exc:
        raise DataValidationError(f"cannot parse the file as CSV: {exc}", path=path) from None


def _checked_rows_frame(path: Path, header: list[str]) -> pd.DataFrame:
    """Frame of a file written by :class:`RowWriter`: every row's check field verified.

    A torn last row (a crash mid-write: its check does not match) is left out with a warning;
    the next ``RowWriter`` on the file cuts it. A bad check on any other row is an error.
    """
    from edgeperf.datasets._rowwriter import verify_rows

    rows, torn = verify_rows(_read_bytes(path), path=path)
    if torn:
        warnings.warn(
            f"file {path}: the last row is torn (a crash mid-write, {torn} bytes); left out. The next "
            "`edgeperf profile` on this file cuts it off and measures that architecture again",
            UserWarning,
            stacklevel=4,
        )
    frame = pd.DataFrame(rows, columns=header, dtype=object).drop(columns=[ROW_CHECK_COLUMN])
    text = set(STRING_COLUMNS)
    for c in frame.columns:
        # float() reads the shortest repr RowWriter wrote back bit for bit; text is left for the
        # validator to name ("expected a number, got ...")
        frame[c] = [None if v == "" else v if c in text else _float_or_text(v) for v in frame[c]]
    return frame


def _float_or_text(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def _detect_space(archs: pd.Series, path) -> str:
    from edgeperf import spaces

    present = archs.dropna()
    try:
        return spaces.detect(list(present.iloc[:20]))
    except EdgePerfError as exc:
        raise DataValidationError(f"{exc}", path=path, field="arch") from None


def _as_list(device) -> list[str] | None:
    if device is None:
        return None
    return [device] if isinstance(device, str) else list(device)


def _check_metric(metric, path) -> None:
    if metric is not None and metric not in METRICS:
        raise InvalidParameterError(
            f"unknown metric {metric!r}; expected one of {sorted(METRICS)} (the unit is part of the name)"
        )


def _tidy_from_file(frame: pd.DataFrame, path: Path, space: str | None) -> pd.DataFrame:
    if "space" not in frame.columns:
        if "arch" not in frame.columns:
            raise DataValidationError("missing required column 'arch'", path=path, field="arch")
        frame = frame.copy()
        frame.insert(0, "space", space or _detect_space(frame["arch"], path))
    return validate_tidy_frame(frame, path=path)


def _tidy_from_wide(
    frame: pd.DataFrame, path: Path, *, space: str | None, metric: str, devices: list[str] | None
) -> pd.DataFrame:
    """Validate a wide frame and melt it into a validated tidy frame (rows numbered as in the file)."""
    from edgeperf import spaces

    n = len(frame)
    rows = np.arange(1, n + 1)
    all_devices = [c for c in frame.columns if c not in _WIDE_META]
    if not all_devices:
        raise DataValidationError(
            f"a wide table needs one column per device besides {list(_WIDE_META)}; got only {list(frame.columns)}",
            path=path,
        )
    for c in all_devices:
        if not isinstance(c, str) or not c.strip() or c.startswith("Unnamed: "):
            raise DataValidationError(f"expected a device name as column header, got {c!r}", path=path, row=0)
    if devices is not None:
        unknown = [d for d in devices if d not in all_devices]
        if unknown:
            raise UnknownDeviceError(unknown[0], all_devices, hint=f"(file {path})")
        all_devices = [d for d in all_devices if d in devices]

    if "space" in frame.columns:
        _check_text_column(frame, "space", path=path, rows=rows, what="search-space name")
        in_file = pd.unique(frame["space"].astype(str).str.strip())
        if len(in_file) != 1:
            raise DataValidationError(
                f"a wide table holds one search space, got {sorted(in_file)}", path=path, field="space"
            )
        if space is not None and space != in_file[0]:
            raise DataValidationError(
                f"the file says space {in_file[0]!r} but space={space!r} was asked for", path=path, field="space"
            )
        space = in_file[0]
    if space is None:
        space = _detect_space(frame["arch"], path)
    if space not in spaces.names():
        raise DataValidationError(f"unknown search space {space!r}; expected one of {spaces.names()}", path=path)

    arch = canonical_archs(space, frame["arch"], path=path, rows=rows)
    dup = pd.Series(arch).duplicated(keep="first").to_numpy()
    if dup.any():
        j = _first(dup)
        i = _first(arch == arch[j])
        raise DataValidationError(
            f"architecture {arch[j]!r} appears in rows {i + 1} and {j + 1}; a wide table has one row per architecture",
            path=path, row=j + 1, field="arch",
        )

    if n == 0:
        values = np.empty((0, len(all_devices)))
    else:
        values = np.column_stack(
            [_numeric(frame[d], path=path, rows=rows, field=d) for d in all_devices]
        ) if all_devices else np.empty((n, 0))
    sentinel = np.isin(values, FAILED_SENTINELS)
    bad_checks = (
        (np.isinf(values), "expected a finite {metric} value, got {v!r}"),
        (~sentinel & (values < 0), "expected a {metric} value > 0 (or -1 / 0 / empty for not measured), got {v!r}"),
    )
    for mask, message in bad_checks:
        if mask.any():
            r, c = np.argwhere(mask)[0]
            raise DataValidationError(
                message.format(metric=metric, v=float(values[r, c])), path=path, row=int(r + 1), field=all_devices[c]
            )
    if sentinel.any():
        per_device = sentinel.sum(axis=0)
        shown = ", ".join(f"{d} ({k})" for d, k in zip(all_devices, per_device) if k)
        warnings.warn(
            f"file {path}: {int(sentinel.sum())} cells hold -1 or 0, the sentinels public benchmarks write for a "
            f"failed measurement; treating them as not measured. Devices: {shown}",
            UserWarning,
            stacklevel=4,
        )
        values = np.where(sentinel, np.nan, values)

    # melt row by row (arch-major keeps the file's architecture order), NaN holes dropped
    keep = ~np.isnan(values)
    c_idx, r_idx = np.nonzero(keep)  # c_idx = arch position, r_idx = device position
    tidy = pd.DataFrame(
        {
            "space": space,
            "arch": pd.Series(arch[c_idx], dtype=object).astype(str),
            "device": pd.Series(np.asarray(all_devices, dtype=object)[r_idx], dtype=object).astype(str),
            "metric": metric,
            "value": values[keep],
        }
    )
    if "arch_index" in frame.columns:
        ai = _numeric(frame["arch_index"], path=path, rows=rows, field="arch_index")
        tidy["arch_index"] = ai[c_idx]
    # values, archs, devices and uniqueness are checked above; this pass normalises types
    # (arch_index) and repeats the cheap vectorised checks with file row numbers
    return validate_tidy_frame(tidy, path=path, rows=rows[c_idx], assume_canonical=True)


def read(
    path: str | os.PathLike,
    *,
    space: str | None = None,
    metric: str | None = None,
    device: str | Iterable[str] | None = None,
) -> MeasurementTable:
    """Read a tidy or wide measurement file (.csv, .csv.gz, .parquet) into a :class:`MeasurementTable`.

    The layout is detected: a file with ``device``, ``metric`` and ``value`` columns is
    tidy; one with an ``arch`` column and one column per device is wide. ``space``
    names the search space when the file has no ``space`` column (default: detected
    from the architecture strings); for a tidy file that has one it keeps only that
    space. ``metric`` is what a wide table's cells hold (default ``latency_ms``) and a
    filter for a tidy one. ``device`` (a name or several) keeps only those devices.
    A ``<file>.devices.json`` sidecar, if present, becomes ``devices_info``.

    Raises :class:`DataValidationError` naming file, row and field for bad content
    (see :func:`validate_tidy_frame` for the row numbering) and
    :class:`UnknownDeviceError` for a ``device`` the file does not hold.
    """
    path = Path(path)
    fmt = _format_of(path)
    check_readable(path)
    _check_metric(metric, path)
    devices = _as_list(device)
    frame = _load_frame(path, fmt)
    columns = set(map(str, frame.columns))

    if {"device", "metric", "value"} <= columns:
        tidy = _tidy_from_file(frame, path, space)
        mask = np.ones(len(tidy), dtype=bool)
        if space is not None:
            mask &= (tidy["space"] == space).to_numpy()
        if metric is not None:
            mask &= (tidy["metric"] == metric).to_numpy()
        if devices is not None:
            known = sorted(pd.unique(tidy["device"]))
            unknown = [d for d in devices if d not in known]
            if unknown:
                raise UnknownDeviceError(unknown[0], known, hint=f"(file {path})")
            mask &= tidy["device"].isin(devices).to_numpy()
        if not mask.all():
            tidy = tidy.loc[mask].reset_index(drop=True)
    elif "arch" in columns:
        tidy = _tidy_from_wide(frame, path, space=space, metric=metric or "latency_ms", devices=devices)
    else:
        raise DataValidationError(
            "cannot tell the layout: a tidy file has columns space, arch, device, metric, value; a wide file "
            f"has an 'arch' column and one column per device; got {sorted(columns)}",
            path=path,
        )

    info: dict[str, DeviceSpec] = {}
    side = sidecar_path(path)
    if side.is_file():
        info = read_devices_json(side)
        if devices is not None:
            info = {d: s for d, s in info.items() if d in devices}
    warn_implausible(tidy, path)
    return MeasurementTable(tidy, devices_info=info, source=str(path), validate=False)


def warn_implausible(tidy: pd.DataFrame, path) -> None:
    """Warn (naming file and device) about values outside :data:`PLAUSIBLE_RANGE` and about latency
    devices whose every value is below :data:`SECONDS_SUSPECT_MS` (most likely seconds)."""
    if tidy.empty:
        return
    groups = tidy.groupby(["metric", "device"], sort=True)["value"]
    stats = groups.agg(["min", "max", "median"])
    notes = []
    for (metric, device), row in stats.iterrows():
        low, high = PLAUSIBLE_RANGE.get(metric, (0.0, np.inf))
        unit = metric.rsplit("_", 1)[-1]
        if metric == "latency_ms" and row["max"] < SECONDS_SUSPECT_MS:
            others = stats.loc[metric].drop(index=device)["median"]
            context = f" while the other devices' median is {others.median():.4g} ms" if len(others) else ""
            notes.append(f"device {device!r}: every latency_ms value is below {SECONDS_SUSPECT_MS} ms{context}; "
                         "are these seconds? multiply by 1000")
        elif row["min"] < low or row["max"] > high:
            notes.append(f"device {device!r}: {metric} values from {row['min']:.4g} to {row['max']:.4g} {unit}, "
                         f"outside the plausible {low:g}..{high:g} {unit}; check the unit")
    if notes:
        warnings.warn(f"file {path}: implausible values: " + "; ".join(notes), UserWarning, stacklevel=3)


def open_table(source, *, metric: str | None = None, device=None) -> MeasurementTable:
    """A table from an existing measurement file, else from a built-in dataset name.

    A string that names neither is an error that says which it looked like: a path (it has a
    data-file ending or a folder) gets "no such file", a bare name the list of built-ins.
    """
    from edgeperf.datasets import _builtin

    if isinstance(source, MeasurementTable):
        return source
    text = str(source)
    path = Path(text)
    if not path.exists() and text in _builtin.names():
        table = _builtin.load(text)
        return table.select(metric=metric, devices=_as_list(device)) if (metric or device) else table
    looks_like_path = path.exists() or os.sep in text or any(text.lower().endswith(s) for s in FORMATS)
    if looks_like_path:
        return read(path, metric=metric, device=device)
    from edgeperf.errors import DatasetNotFoundError

    raise DatasetNotFoundError("measurement file or built-in dataset", text, _builtin.names())


# ---- writing -------------------------------------------------------------------------------
def _atomic_write(path: Path, write_to) -> Path:
    """Call ``write_to(tmp_path)`` then move the result over ``path``: never a half-written file.

    OS errors (a folder given as the file, no permission, a read-only file system) become
    :class:`FileAccessError`; the temporary file never stays behind."""
    check_writable(path)
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        # os.open with 0o666 (not mkstemp, whose files are 0o600): the file gets the permissions
        # the user's umask gives any new file, so teammates can read shared tables as before
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise FileAccessError(path, "write to", exc) from None
    os.close(fd)
    try:
        write_to(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FileAccessError(path, "write to", exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _frame_for(table: MeasurementTable, layout: str, metric: str | None, path: Path) -> pd.DataFrame:
    if layout == "tidy":
        frame = table.frame
        return frame[frame["metric"] == metric].reset_index(drop=True) if metric is not None else frame
    metrics = table.metrics
    if metric is None:
        if len(metrics) != 1:
            raise DataValidationError(
                f"a wide file holds one metric and the table has {metrics}; pass metric=...", path=path
            )
        metric = metrics[0]
    wide = table.wide(metric)
    return wide.reset_index(names="arch").pipe(
        lambda f: f[["arch_index", "arch"] + [c for c in f.columns if c not in ("arch_index", "arch")]]
        if "arch_index" in f.columns else f
    )


def write(
    table: MeasurementTable,
    path: str | os.PathLike,
    *,
    layout: str = "tidy",
    metric: str | None = None,
) -> Path:
    """Write ``table`` to ``path`` (.csv, .csv.gz or .parquet) and return the path.

    ``layout="tidy"`` writes every row and column (``metric`` keeps only that metric);
    ``layout="wide"`` writes one row per architecture and one column per device for
    one ``metric`` (needed when the table has several) of one space; provenance
    columns do not fit a wide file and are left out. Values are written so that
    reading them back gives the same floats bit for bit. A ``<file>.devices.json``
    sidecar is written when the table has ``devices_info`` (and a stale one removed
    when it has none). The write is atomic: a crash leaves the old file intact.
    """
    path = Path(path)
    fmt = _format_of(path)
    if layout not in LAYOUTS:
        raise InvalidParameterError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    if not isinstance(table, MeasurementTable):
        raise DataValidationError(f"expected a MeasurementTable, got {type(table).__name__}", path=path)
    _check_metric(metric, path)
    frame = _frame_for(table, layout, metric, path)

    if fmt == "parquet":
        def write_to(tmp):
            frame.to_parquet(tmp, index=False)
    else:
        gz = path.name.lower().endswith(".gz")

        def write_to(tmp):
            # pandas' own gzip stores the (temporary) file name in the header: write it here instead,
            # with no name and a fixed time, so equal tables give equal bytes.
            data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
            with open(tmp, "wb") as raw:
                if gz:
                    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=_GZIP_MTIME,
                                       compresslevel=_GZIP_LEVEL) as out:
                        out.write(data)
                else:
                    raw.write(data)
    from edgeperf.datasets._lock import FileLock

    check_writable(path)
    with FileLock(path):  # not while a profiler appends to it (one writer per file)
        _atomic_write(path, write_to)
        side = sidecar_path(path)
        if table.devices_info:
            write_devices_json(table.devices_info, side)
        elif side.exists():
            side.unlink()  # it described the file we just replaced
    return path
