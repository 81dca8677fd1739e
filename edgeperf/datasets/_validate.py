"""Validation of tidy measurement frames (vectorised; one parse per unique architecture).

Row numbers in error messages
-----------------------------
``row N`` is the N-th *data* row, counted from 1, header not counted: in a CSV file
without multi-line cells that is line N + 1 of the file; in a parquet file or an
in-memory frame it is position N (1-based). Readers that reshape a file (a wide
table melted into tidy rows) pass ``rows=`` so the number still points into the file.

Policy for values
-----------------
In a tidy frame every value must be a finite number > 0. Tidy files are written by
tools (edgeperf's own ``RowWriter``) that must leave out a failed measurement instead
of writing a sentinel, so ``-1``, ``0``, NaN or inf there is an error. The lenient
policy for public *wide* tables (empty cell, ``-1`` or ``0`` = not measured) lives in
:mod:`edgeperf.datasets._io`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from edgeperf.datasets._records import METRICS, PROVENANCE_FIELDS
from edgeperf.errors import ArchitectureError, DataValidationError, UnknownNameError

__all__ = ["validate_tidy_frame", "canonical_archs", "KEY_COLUMNS", "STRING_COLUMNS"]

#: Columns that identify one measurement; a repeated key is an error.
KEY_COLUMNS = ("space", "arch", "device", "metric")
#: Columns every tidy frame has, in order (kept equal to ``_table.REQUIRED_COLUMNS``).
_REQUIRED = ("space", "arch", "device", "metric", "value")
_OPTIONAL = ("arch_index",) + tuple(PROVENANCE_FIELDS)
#: Columns holding text (read them as strings, never as numbers).
STRING_COLUMNS = ("space", "arch", "device", "metric") + tuple(
    name for name, typ in PROVENANCE_FIELDS.items() if typ is str
)


def _row_numbers(n: int, rows: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if rows is None:
        return np.arange(1, n + 1)
    rows = np.asarray(rows)
    if len(rows) != n:
        raise ValueError(f"rows has {len(rows)} entries for a frame of {n} rows")  # programming error
    return rows


def _first(mask) -> int:
    """Position of the first True of a boolean array-like."""
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _factorize(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 = missing) and unique values: per-value work then runs once per unique value."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)  # native for Arrow strings
    return codes, np.asarray(uniques, dtype=object)


def _missing_or_blank(col: pd.Series) -> np.ndarray:
    """True where a text cell is missing or only whitespace."""
    codes, uniques = _factorize(col)
    blank = np.array([not str(u).strip() for u in uniques] + [True], dtype=bool)
    return blank[codes]  # code -1 picks the trailing True


def _as_text(col: pd.Series) -> pd.Series:
    """Strings stripped of surrounding whitespace; missing cells become None."""
    codes, uniques = _factorize(col)
    stripped = np.array([str(u).strip() for u in uniques] + [None], dtype=object)
    return pd.Series(stripped[codes], index=col.index, dtype=object)


def canonical_archs(space: str, archs: pd.Series, *, path=None, rows: np.ndarray | None = None) -> np.ndarray:
    """Canonical strings of ``archs`` (all of ``space``); each unique string is parsed once.

    Raises :class:`DataValidationError` naming the first row whose string is malformed.
    """
    from edgeperf import spaces

    rows = _row_numbers(len(archs), rows)
    sp = spaces.get(space)
    codes, uniques = _factorize(archs)
    if (codes < 0).any():
        i = _first(codes < 0)
        raise DataValidationError(
            "expected an architecture string, got an empty cell", path=path, row=int(rows[i]), field="arch"
        )
    canon = np.empty(len(uniques), dtype=object)
    for k, arch in enumerate(uniques):
        if not isinstance(arch, str):
            i = _first(codes == k)
            raise DataValidationError(
                f"expected a {space} architecture string, got {type(arch).__name__} {arch!r}",
                path=path, row=int(rows[i]), field="arch",
            )
        try:
            canon[k] = sp.canonical(arch)
        except ArchitectureError as exc:
            i = _first(codes == k)
            raise DataValidationError(
                f"malformed {space} architecture: {exc}", path=path, row=int(rows[i]), field="arch"
            ) from None
    return canon[codes]


def _check_text_column(frame, name, *, path, rows, what):
    bad = _missing_or_blank(frame[name])
    if bad.any():
        i = _first(bad)
        raise DataValidationError(
            f"expected a non-empty {what}, got {frame[name].iloc[i]!r}", path=path, row=int(rows[i]), field=name
        )


#: dtype kinds that hold real numbers; booleans, dates, durations and complex numbers do not.
_REAL_KINDS = "iuf"
_NOT_REAL = {"b": "booleans", "M": "dates/times", "m": "durations", "c": "complex numbers"}


def _non_real_cell(col: pd.Series) -> int | None:
    """Position of the first cell of an object column holding a bool, date, duration, complex or bytes."""
    import datetime
    import numbers

    def bad(v) -> bool:
        if isinstance(v, (bool, np.bool_, bytes, datetime.date, datetime.time, datetime.timedelta, np.datetime64,
                          np.timedelta64)):
            return True
        return isinstance(v, numbers.Complex) and not isinstance(v, numbers.Real)

    flags = np.fromiter((bad(v) for v in col.to_numpy(dtype=object)), dtype=bool, count=len(col))
    return _first(flags) if flags.any() else None


def _numeric(col: pd.Series, *, path, rows, field) -> np.ndarray:
    """Float array of ``col``; a cell that is present but not a real number is an error.

    Only real numbers pass: a boolean, datetime, timedelta or complex column (Parquet keeps
    these types) is refused rather than turned into 0/1 or nanoseconds."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    kind = getattr(col.dtype, "kind", "O")
    if kind in _NOT_REAL:
        raise DataValidationError(
            f"expected real numbers, got {_NOT_REAL[kind]} (column type {col.dtype})",
            path=path, row=int(rows[0]) if len(rows) else None, field=field,
        )
    if kind in _REAL_KINDS:
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "O":
        i = _non_real_cell(col)
        if i is not None:
            raise DataValidationError(
                f"expected a real number, got {type(col.iloc[i]).__name__} {col.iloc[i]!r}",
                path=path, row=int(rows[i]), field=field,
            )
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna().to_numpy() & ~col.isna().to_numpy()
    # text spelling NaN parses to NaN: that is a NaN, judged by the caller, not "not a number"
    if bad.any():
        text = col.astype(object).where(bad, "").map(lambda v: str(v).strip().lower())
        bad &= ~text.isin(["nan", "-nan", "+nan"]).to_numpy()
    if bad.any():
        i = _first(bad)
        raise DataValidationError(
            f"expected a number, got {col.iloc[i]!r}", path=path, row=int(rows[i]), field=field
        )
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_values(values: np.ndarray, *, path, rows, field="value") -> None:
    """Every value finite and > 0 (tidy policy: no sentinels)."""
    checks = (
        (np.isnan(values), "expected a measured number, got an empty cell or NaN (leave failed measurements out)"),
        (np.isinf(values), "expected a finite number, got {v!r}"),
        (values <= 0, "expected a value > 0, got {v!r} (a tidy file must leave a failed measurement out "
                      "instead of writing a sentinel like -1 or 0)"),
    )
    for mask, message in checks:
        if mask.any():
            i = _first(mask)
            raise DataValidationError(message.format(v=float(values[i])), path=path, row=int(rows[i]), field=field)


def _int_array(vals: np.ndarray, present: np.ndarray):
    """Nullable Int64 array: integers where present, <NA> elsewhere."""
    arr = pd.array(np.where(present, vals, 0).astype("int64"), dtype="Int64")
    arr[~present] = pd.NA
    return arr


def _check_provenance(frame: pd.DataFrame, *, path, rows) -> None:
    """Coerce provenance columns to their types in place; errors name the first bad cell."""
    for name, typ in PROVENANCE_FIELDS.items():
        if name not in frame.columns:
            continue
        col = frame[name]
        if typ is str:
            frame[name] = _as_text(col)
            continue
        vals = _numeric(col, path=path, rows=rows, field=name)
        present = ~np.isnan(vals)
        if typ is int:
            with np.errstate(invalid="ignore"):
                bad = present & ((vals < 1) | (vals != np.round(vals)) | np.isinf(vals))
            if bad.any():
                i = _first(bad)
                raise DataValidationError(
                    f"expected a positive integer, got {col.iloc[i]!r}", path=path, row=int(rows[i]), field=name
                )
            frame[name] = _int_array(vals, present)
        else:
            with np.errstate(invalid="ignore"):
                bad = present & (np.isinf(vals) | (vals < 0))
            if bad.any():
                i = _first(bad)
                raise DataValidationError(
                    f"expected a finite number >= 0, got {col.iloc[i]!r}", path=path, row=int(rows[i]), field=name
                )
            frame[name] = vals


def _check_arch_index(frame: pd.DataFrame, *, path, rows) -> None:
    vals = _numeric(frame["arch_index"], path=path, rows=rows, field="arch_index")
    present = ~np.isnan(vals)
    with np.errstate(invalid="ignore"):
        bad = present & ((vals < 0) | (vals != np.round(vals)) | np.isinf(vals))
    if bad.any():
        i = _first(bad)
        raise DataValidationError(
            f"expected an integer index >= 0, got {frame['arch_index'].iloc[i]!r}",
            path=path, row=int(rows[i]), field="arch_index",
        )
    frame["arch_index"] = _int_array(vals, present) if not present.all() else vals.astype("int64")


def _check_duplicates(frame: pd.DataFrame, *, path, rows) -> None:
    later = frame.duplicated(list(KEY_COLUMNS), keep="first").to_numpy()
    if not later.any():
        return
    j = _first(later)
    key = frame.iloc[j]
    same = np.ones(len(frame), dtype=bool)
    for c in KEY_COLUMNS:
        same &= (frame[c] == key[c]).to_numpy()
    i = _first(same)
    raise DataValidationError(
        f"duplicate measurement: rows {int(rows[i])} and {int(rows[j])} both hold space={key['space']!r}, "
        f"arch={key['arch']!r}, device={key['device']!r}, metric={key['metric']!r}; keep one of them "
        "(average repeated runs before writing)",
        path=path, row=int(rows[j]), field="arch",
    )


def validate_tidy_frame(
    frame: pd.DataFrame, path=None, *, rows=None, assume_canonical: bool = False
) -> pd.DataFrame:
    """A validated, normalised copy of a tidy measurement frame.

    Checks (each error is a :class:`DataValidationError` naming ``path``, the row and
    the field): required columns present, no unknown columns, non-empty space /
    device / metric / arch, known space and metric, architecture strings that parse
    in their space (replaced by their canonical spelling), values finite and > 0,
    ``arch_index`` an integer >= 0, provenance of the right type, and no repeated
    ``(space, arch, device, metric)``.

    ``rows`` gives, per frame row, the row number to report (see the module
    docstring); default: position + 1. ``assume_canonical=True`` skips parsing the
    architecture strings, for readers that have just canonicalised them. Returns a new frame with columns in the
    canonical order, ``value`` as float64, and a fresh RangeIndex.
    """
    from edgeperf import spaces

    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(f"expected a pandas DataFrame, got {type(frame).__name__}", path=path)
    rows = _row_numbers(len(frame), rows)
    columns = [str(c) for c in frame.columns]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise DataValidationError(
            f"missing required column(s) {missing}; a tidy table has columns {list(_REQUIRED)} "
            f"(got {columns})",
            path=path, field=missing[0],
        )
    allowed = set(_REQUIRED) | set(_OPTIONAL)
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise DataValidationError(
            f"unknown column(s) {unknown}; a tidy table may only have {list(_REQUIRED)} plus any of "
            f"{list(_OPTIONAL)} (device static features belong in the <file>.devices.json sidecar)",
            path=path, field=unknown[0],
        )
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DataValidationError(f"column {dup!r} appears more than once", path=path, field=dup)

    out = frame.copy()
    out.columns = columns
    out.index = pd.RangeIndex(len(out))

    _check_text_column(out, "space", path=path, rows=rows, what="search-space name")
    _check_text_column(out, "device", path=path, rows=rows, what="device name")
    _check_text_column(out, "metric", path=path, rows=rows, what="metric name")
    for c in ("space", "device", "metric"):
        out[c] = _as_text(out[c]).astype(str)

    known_spaces = set(spaces.names())
    bad = ~out["space"].isin(known_spaces).to_numpy()
    if bad.any():
        i = _first(bad)
        raise DataValidationError(
            f"unknown search space {out['space'].iloc[i]!r}; expected one of {sorted(known_spaces)}",
            path=path, row=int(rows[i]), field="space",
        )
    bad = ~out["metric"].isin(list(METRICS)).to_numpy()
    if bad.any():
        i = _first(bad)
        raise DataValidationError(
            f"unknown metric {out['metric'].iloc[i]!r}; expected one of {sorted(METRICS)} "
            "(the unit is part of the name)",
            path=path, row=int(rows[i]), field="metric",
        )

    values = _numeric(out["value"], path=path, rows=rows, field="value")
    _check_values(values, path=path, rows=rows)
    out["value"] = values

    if not assume_canonical:
        arch = np.empty(len(out), dtype=object)
        for space in pd.unique(out["space"]):
            mask = (out["space"] == space).to_numpy()
            arch[mask] = canonical_archs(space, out["arch"][mask], path=path, rows=rows[mask])
        out["arch"] = pd.Series(arch, index=out.index).astype(str)

    if "arch_index" in out.columns:
        _check_arch_index(out, path=path, rows=rows)
    _check_provenance(out, path=path, rows=rows)
    _check_duplicates(out, path=path, rows=rows)

    order = list(_REQUIRED) + [c for c in _OPTIONAL if c in out.columns]
    return out[order]
