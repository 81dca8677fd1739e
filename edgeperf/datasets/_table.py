"""The in-memory measurement table: tidy rows plus what is known about each device."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from edgeperf.datasets._records import METRICS, PROVENANCE_FIELDS, DeviceSpec, Measurement
from edgeperf.errors import DataValidationError, UnknownDeviceError

__all__ = ["MeasurementTable", "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS"]

#: Columns every tidy table has, in this order.
REQUIRED_COLUMNS = ("space", "arch", "device", "metric", "value")
#: Columns a tidy table may have: the architecture's index in its source, then provenance.
OPTIONAL_COLUMNS = ("arch_index",) + tuple(PROVENANCE_FIELDS)


def _unique_set(column: pd.Series) -> set:
    """Distinct values of a column (``set(column)`` iterates Arrow strings one by one: slow)."""
    return set(pd.unique(column).tolist())


class MeasurementTable:
    """Validated tidy measurements: one row per (space, arch, device, metric).

    ``frame`` is a pandas DataFrame with :data:`REQUIRED_COLUMNS` and any of
    :data:`OPTIONAL_COLUMNS`; architecture strings are canonical. ``devices_info``
    maps device name -> :class:`DeviceSpec` for devices whose static features are
    known (a device from a public table may have none). Build one with
    :func:`edgeperf.datasets.read`, :func:`edgeperf.datasets.load`,
    :meth:`from_records` or from a frame (validated here).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        devices_info: Mapping[str, DeviceSpec] | None = None,
        source: str | None = None,
        validate: bool = True,
    ):
        from edgeperf.datasets._validate import validate_tidy_frame

        self.source = source
        self.frame = validate_tidy_frame(frame, path=source) if validate else frame
        self.devices_info: dict[str, DeviceSpec] = dict(devices_info or {})

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[Measurement], *, devices_info=None) -> "MeasurementTable":
        rows = [r.to_dict() for r in records]
        frame = pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS) + list(PROVENANCE_FIELDS))
        frame = frame.dropna(axis=1, how="all")
        return cls(frame, devices_info=devices_info)

    @classmethod
    def concat(cls, tables: Sequence["MeasurementTable"]) -> "MeasurementTable":
        """One table of all rows; a repeated (space, arch, device, metric) is an error."""
        info: dict[str, DeviceSpec] = {}
        for t in tables:
            info.update(t.devices_info)
        frame = pd.concat([t.frame for t in tables], ignore_index=True)
        return cls(frame, devices_info=info, source=" + ".join(str(t.source) for t in tables))

    # ---- views --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"<MeasurementTable {len(self)} rows, spaces={self.spaces}, "
            f"{len(self.devices)} devices, metrics={self.metrics}>"
        )

    @property
    def spaces(self) -> list[str]:
        return sorted(_unique_set(self.frame["space"]))

    @property
    def space(self) -> str:
        """The table's search space; an error if it mixes several."""
        spaces = self.spaces
        if len(spaces) != 1:
            raise DataValidationError(
                f"expected measurements of one search space, got {spaces}; select one with table.select(space=...)",
                path=self.source,
            )
        return spaces[0]

    @property
    def devices(self) -> list[str]:
        return sorted(_unique_set(self.frame["device"]))

    @property
    def metrics(self) -> list[str]:
        return sorted(_unique_set(self.frame["metric"]))

    @property
    def archs(self) -> list[str]:
        return pd.unique(self.frame["arch"]).tolist()

    def select(
        self,
        *,
        space: str | None = None,
        devices: Iterable[str] | None = None,
        metric: str | None = None,
        archs: Iterable[str] | None = None,
    ) -> "MeasurementTable":
        """Rows matching every given filter (unknown devices raise)."""
        mask = np.ones(len(self.frame), dtype=bool)
        if space is not None:
            mask &= (self.frame["space"] == space).to_numpy()
        if devices is not None:
            devices = list(devices)
            missing = set(devices) - set(self.devices)
            if missing:
                raise UnknownDeviceError(sorted(missing)[0], self.devices)
            mask &= self.frame["device"].isin(devices).to_numpy()
        if metric is not None:
            if metric not in METRICS:
                raise DataValidationError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
            mask &= (self.frame["metric"] == metric).to_numpy()
        if archs is not None:
            mask &= self.frame["arch"].isin(list(archs)).to_numpy()
        frame = self.frame.loc[mask].reset_index(drop=True)
        present = _unique_set(frame["device"])
        info = {d: s for d, s in self.devices_info.items() if d in present}
        return MeasurementTable(frame, devices_info=info, source=self.source, validate=False)

    def wide(self, metric: str = "latency_ms") -> pd.DataFrame:
        """Architectures x devices matrix of ``metric`` (NaN where not measured).

        The index is the canonical architecture string; an ``arch_index`` column
        comes first when the table has one.
        """
        sub = self.frame[self.frame["metric"] == metric]
        if sub.empty:
            raise DataValidationError(f"no {metric!r} rows; the table has metrics {self.metrics}", path=self.source)
        if len(sub["space"].unique()) > 1:
            raise DataValidationError("a wide table holds one search space; select(space=...) first", path=self.source)
        wide = sub.pivot(index="arch", columns="device", values="value")
        order = pd.unique(sub["arch"])
        wide = wide.loc[order]
        wide.columns.name = None
        if "arch_index" in sub.columns and sub["arch_index"].notna().all():
            idx = sub.drop_duplicates("arch").set_index("arch")["arch_index"].astype("int64")
            wide.insert(0, "arch_index", idx.loc[wide.index])
        return wide

    def values(self, device: str, metric: str = "latency_ms") -> pd.Series:
        """Measured ``metric`` of ``device``, indexed by architecture string."""
        if device not in _unique_set(self.frame["device"]):
            raise UnknownDeviceError(device, self.devices)
        sub = self.frame[(self.frame["device"] == device) & (self.frame["metric"] == metric)]
        return pd.Series(sub["value"].to_numpy(), index=sub["arch"].to_numpy(), name=device)

    def to_records(self) -> list[Measurement]:
        """One :class:`Measurement` per row (provenance included where present)."""
        fields = [c for c in self.frame.columns if c != "arch_index"]
        out = []
        for row in self.frame[fields].itertuples(index=False, name=None):
            kwargs = {k: (None if pd.isna(v) else v) for k, v in zip(fields, row)}
            for k, typ in PROVENANCE_FIELDS.items():
                if kwargs.get(k) is not None:
                    kwargs[k] = typ(kwargs[k])
            out.append(Measurement(**kwargs))
        return out

    def copy(self) -> "MeasurementTable":
        """An independent table: a copy of the frame and of ``devices_info``."""
        return MeasurementTable(
            self.frame.copy(), devices_info=dict(self.devices_info), source=self.source, validate=False
        )

    def device_spec(self, device: str) -> DeviceSpec:
        """The device's :class:`DeviceSpec` (name only when no static features are known)."""
        if device not in self.devices_info and device not in _unique_set(self.frame["device"]):
            raise UnknownDeviceError(device, self.devices)
        return self.devices_info.get(device, DeviceSpec(name=device))
