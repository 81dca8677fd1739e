"""Append-only, crash-safe CSV writer used while profiling.

Profiling hundreds of architectures takes hours and may die (Ctrl-C, SIGKILL, a
phone unplugged). Every row is written, flushed and fsync'ed at once, so a kill
loses at most the row being written, and :meth:`RowWriter.existing_keys` tells a
resumed run what is already there.

Row integrity is checked, not guessed: the last field of every row, ``row_check``, is
the CRC-32 (8 hex digits) of the row's bytes before it. A last row whose check does not
match is torn (a crash mid-write) and is cut off when the file is opened again (and left
out, with a warning, by ``datasets.read``); a complete last row that only lacks its newline
matches and is kept. A bad check on any earlier row means the file was edited or damaged:
an error naming the row.

One writer per file: the writer holds ``<file>.lock`` (see ``_lock.py``) for its lifetime,
so a second ``edgeperf profile`` on the same ``--out`` (or its sidecar) gets a clear error
instead of doubling every row.
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from pathlib import Path
from typing import Iterable, Mapping

from edgeperf.datasets._records import PROVENANCE_FIELDS, DeviceSpec, Measurement
from edgeperf.errors import DataValidationError, FileAccessError

__all__ = ["RowWriter", "COLUMNS", "ROW_CHECK_COLUMN", "verify_rows"]

#: Last column of a RowWriter file: CRC-32 (8 hex digits) of the row's bytes before this field.
ROW_CHECK_COLUMN = "row_check"
#: Measurement columns of files written by :class:`RowWriter`, in order (then ``row_check``).
COLUMNS: tuple[str, ...] = ("space", "arch", "device", "metric", "value") + tuple(PROVENANCE_FIELDS)
_HEADER = COLUMNS + (ROW_CHECK_COLUMN,)
_KEY = ("space", "arch", "device", "metric")
_NEWLINE = b"\n"


def _checked_line(fields) -> str:
    """The CSV line of ``fields`` followed by its ``row_check`` field and a newline."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(list(fields))
    body = buf.getvalue() + ","
    return f"{body}{zlib.crc32(body.encode('utf-8')):08x}\n"


def _line_ok(line: bytes) -> bool:
    cut = line.rfind(b",") + 1
    return cut > 0 and line[cut:] == b"%08x" % zlib.crc32(line[:cut])


def _text(line: bytes, path, row: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"expected UTF-8 text, got bytes that are not ({exc.reason} at byte {exc.start})",
                                  path=path, row=row) from None


def verify_rows(data: bytes, *, path=None) -> tuple[list[list[str]], int]:
    """``(data rows, torn bytes)`` of a RowWriter file's bytes, every row's check verified.

    The last line may lack its newline: kept when its check matches (a complete row), else
    counted as torn (its bytes are the second element). Raises :class:`DataValidationError`
    for a bad header, a bad check on an earlier row, or a row with the wrong number of fields.
    """
    lines = data.split(_NEWLINE)
    tail = lines.pop()  # b"" when the file ends with a newline
    torn = 0
    if tail and not _line_ok(tail):
        torn = len(tail)
    elif tail:
        lines.append(tail)
    if not lines:
        return [], torn
    header = next(csv.reader([_text(lines[0], path, 0)]))
    if tuple(header) != _HEADER:
        raise DataValidationError(
            f"expected the header {','.join(_HEADER)!r} of an edgeperf profiling file, got {','.join(header)!r}; "
            "write to a new file (a file of an older edgeperf, without row checks, can be converted with "
            "edgeperf.datasets.write)",
            path=path, row=0,
        )
    rows = []
    for number, line in enumerate(lines[1:], start=1):
        if not _line_ok(line):
            raise DataValidationError(
                f"the row's {ROW_CHECK_COLUMN} does not match its content: the file was edited or damaged "
                "(only the last row of a file can be torn by a crash)",
                path=path, row=number, field=ROW_CHECK_COLUMN,
            )
        row = next(csv.reader([_text(line, path, number)]))
        if len(row) != len(_HEADER):
            raise DataValidationError(
                f"expected {len(_HEADER)} fields, got {len(row)}", path=path, row=number
            )
        rows.append(row)
    return rows, torn


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
        from edgeperf.datasets._io import check_writable  # same package
        from edgeperf.datasets._lock import FileLock

        check_writable(self.path)
        self.repaired_bytes = 0  # bytes of a torn last line cut off on open
        self._keys: set[tuple[str, str, str, str]] = set()
        self._lock = FileLock(self.path).acquire()
        try:
            self._open()
            if devices_info:
                self.update_devices(devices_info)
        except BaseException:
            self.close()
            raise

    # ---- opening and repair ---------------------------------------------------------------
    def _open(self) -> None:
        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise FileAccessError(self.path, "read", exc) from None
        header_line = (",".join(_HEADER) + "\n").encode()
        if data and _NEWLINE not in data and header_line.startswith(data):
            data = b""  # killed while writing the header: nothing was measured yet
        rows, torn = verify_rows(data, path=self.path)
        keep = len(data) - torn
        try:
            if torn or (data and not data.endswith(_NEWLINE)):
                with open(self.path, "r+b") as fh:
                    fh.truncate(keep)
                    if keep and not data[:keep].endswith(_NEWLINE):
                        fh.seek(keep)
                        fh.write(_NEWLINE)  # a complete last row that only lacked its newline
                    fh.flush()
                    os.fsync(fh.fileno())
            self.repaired_bytes = torn
            self._fh = open(self.path, "w" if not data else "a", encoding="utf-8", newline="")
        except OSError as exc:
            raise FileAccessError(self.path, "write to", exc) from None
        if not data:
            self._write_raw(header_line.decode())
            return
        for row in rows:
            self._keys.add(tuple(row[:4]))

    # ---- writing ---------------------------------------------------------------------------
    def _write_line(self, fields) -> None:
        self._write_raw(_checked_line(fields))

    def _write_raw(self, line: str) -> None:
        # One write of the whole line, then flush + fsync: a kill leaves at most this line torn.
        try:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise FileAccessError(self.path, "write to", exc) from None

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
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            fh.close()
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._keys)
