"""Append-only, crash-safe CSV writer used while profiling.

Profiling hundreds of architectures takes hours and may die (Ctrl-C, SIGKILL, a
phone unplugged). Every row is written, flushed and fsync'ed at once, so a kill
loses at most the row being written; that torn last line is cut off when the
file is opened again, and :meth:`RowWriter.existing_keys` tells a resumed run
what is already there.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable, Mapping

from edgeperf.datasets._records import PROVENANCE_FIELDS, DeviceSpec, Measurement
from edgeperf.errors import DataValidationError

__all__ = ["RowWriter", "COLUMNS"]

#: Column order of files written by :class:`RowWriter`.
COLUMNS: tuple[str, ...] = ("space", "arch", "device", "metric", "value") + tuple(PROVENANCE_FIELDS)
_KEY = ("space", "arch", "device", "metric")
_NEWLINE = b"\n"


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


class RowWriter:
    """Append :class:`Measurement` rows to a tidy CSV file, durably.

    Parameters
    ----------
    path:
        The ``.csv`` file; created with a header if absent, else checked and appended to.
    devices_info:
        ``{name: DeviceSpec}`` (or an iterable of specs) merged into the ``<path>.devices.json``
        sidecar, which is replaced atomically (temp file + rename).

    Raises
    ------
    DataValidationError
        The existing file has another header, or a complete row with the wrong number of fields.
    """

    def __init__(self, path: str | Path, *, devices_info: Mapping[str, DeviceSpec] | Iterable[DeviceSpec] | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() != ".csv":
            raise DataValidationError(
                f"expected a .csv file to append measurements to, got {self.path.name!r}", path=self.path
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = 0  # bytes of a torn last line cut off on open
        self._keys: set[tuple[str, str, str, str]] = set()
        self._open()
        if devices_info:
            self.update_devices(devices_info)

    # ---- opening and repair ---------------------------------------------------------------
    def _open(self) -> None:
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(_NEWLINE):
            # Killed mid-row: the bytes after the last newline are an incomplete row.
            keep = data.rfind(_NEWLINE) + 1
            self.repaired_bytes = len(data) - keep
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:keep]
        self._fh = open(self.path, "a", encoding="utf-8", newline="")
        if not data:
            self._write_line(COLUMNS)
            return
        reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
        header = next(reader)
        if tuple(header) != COLUMNS:
            self._fh.close()
            raise DataValidationError(
                f"expected the header {','.join(COLUMNS)!r} of an edgeperf profiling file, got "
                f"{','.join(header)!r}; write to a new file or convert this one with edgeperf.datasets.write",
                path=self.path,
                row=0,  # rows count data rows, as everywhere in edgeperf.datasets: the header is row 0
            )
        for data_row, row in enumerate(reader, start=1):
            if len(row) != len(COLUMNS):
                self._fh.close()
                raise DataValidationError(
                    f"expected {len(COLUMNS)} fields, got {len(row)}; the file was edited or is not an "
                    "edgeperf profiling file",
                    path=self.path,
                    row=data_row,
                )
            self._keys.add(tuple(row[:4]))

    # ---- writing ---------------------------------------------------------------------------
    def _write_line(self, fields) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(fields)
        # One write of the whole line, then flush + fsync: a kill leaves at most this line torn.
        self._fh.write(buf.getvalue())
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, measurements: Measurement | Iterable[Measurement]) -> int:
        """Write each measurement as one row, durably; returns the number of rows written."""
        if isinstance(measurements, Measurement):
            measurements = [measurements]
        n = 0
        for m in measurements:
            if not isinstance(m, Measurement):
                raise DataValidationError(f"expected Measurement objects, got {type(m).__name__}", path=self.path)
            d = m.to_dict()
            self._write_line([_format(d[c]) for c in COLUMNS])
            self._keys.add(tuple(d[k] for k in _KEY))
            n += 1
        return n

    def existing_keys(self) -> set[tuple[str, str, str, str]]:
        """``(space, arch, device, metric)`` of every row in the file (for resuming)."""
        return set(self._keys)

    # ---- device sidecar ----------------------------------------------------------------
    @property
    def devices_path(self) -> Path:
        from edgeperf.datasets._io import sidecar_path

        return sidecar_path(self.path)

    def read_devices(self) -> dict[str, DeviceSpec]:
        """The sidecar's descriptors (empty when there is no sidecar)."""
        from edgeperf.datasets._io import read_devices_json

        return read_devices_json(self.devices_path) if self.devices_path.exists() else {}

    def update_devices(self, devices_info: Mapping[str, DeviceSpec] | Iterable[DeviceSpec]) -> None:
        """Merge descriptors into the sidecar (a device's new descriptor replaces its old one);
        the sidecar is replaced atomically (temp file + rename)."""
        from edgeperf.datasets._io import write_devices_json

        specs = list(devices_info.values()) if isinstance(devices_info, Mapping) else list(devices_info)
        merged = self.read_devices()
        for spec in specs:
            merged[spec.name] = spec
        write_devices_json(merged, self.devices_path)

    # ---- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._keys)
