"""Turning a measurement table into the matrices the predictors train on."""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from edgeperf.errors import DataValidationError

__all__ = ["as_table", "log_matrix"]


def as_table(data):
    """A :class:`MeasurementTable` from a table, a file path or a built-in dataset name."""
    from edgeperf.datasets import MeasurementTable

    if isinstance(data, MeasurementTable):
        return data
    if isinstance(data, (str, os.PathLike)):
        from edgeperf import datasets

        name = str(data)
        if not os.path.exists(name) and name in datasets.builtin_names():
            return datasets.load(name)
        return datasets.read(name)
    raise DataValidationError(
        f"expected a MeasurementTable, a measurement file path or a built-in dataset name, got {type(data).__name__}"
    )


def log_matrix(table, metric: str, devices: Iterable[str] | None) -> tuple[list[str], list[str], np.ndarray]:
    """(archs, devices, L): natural log of ``metric``, shape (n_archs, n_devices), NaN where unmeasured."""
    sub = table.select(metric=metric, devices=list(devices) if devices is not None else None)
    if len(sub) == 0:
        raise DataValidationError(
            f"expected {metric!r} measurements, got none; the table has metrics {table.metrics}",
            path=table.source,
        )
    wide = sub.wide(metric)
    if "arch_index" in wide.columns:
        wide = wide.drop(columns="arch_index")
    devs = list(devices) if devices is not None else sorted(wide.columns)
    values = wide[devs].to_numpy(dtype=np.float64)
    if (values[np.isfinite(values)] <= 0).any():
        raise DataValidationError(f"expected {metric} > 0 everywhere, found values <= 0", path=table.source)
    return list(wide.index), devs, np.log(values)
