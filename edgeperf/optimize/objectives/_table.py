"""Accuracy from a user's table: a mapping or pandas Series arch -> accuracy, or a measurement
file (tidy rows with metric ``accuracy_top1``; a wide file with one accuracy column also reads)."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import numpy as np

from edgeperf.errors import ArchitectureError, DataValidationError, ObjectiveError
from edgeperf.optimize.objectives import register
from edgeperf.optimize.objectives._base import Objective

ACCURACY_METRIC = "accuracy_top1"


@register("accuracy")
class AccuracyTable(Objective):
    """Top-1 accuracy looked up in a table; architectures missing from it have no score.

    Parameters
    ----------
    table : a path (``.csv``, ``.csv.gz``, ``.parquet``), a ``MeasurementTable``, a dict or a
        pandas Series mapping architecture strings to accuracy (percent).
    space : the search space (default: detected from the strings, or the table's own).
    dataset : for files holding several datasets (the ``device`` column of a tidy file,
        e.g. ``cifar10`` and ``cifar100``), which one to use.
    """

    kind = "accuracy"
    unit = "% top-1"

    def __init__(self, *, table, space=None, dataset=None):
        from edgeperf import spaces

        self.source = str(table) if isinstance(table, (str, os.PathLike)) else type(table).__name__
        if isinstance(table, (str, os.PathLike)):
            from edgeperf import datasets

            table = datasets.read(Path(table), space=space, metric=ACCURACY_METRIC)
        if hasattr(table, "frame") and hasattr(table, "devices"):  # a MeasurementTable
            mapping, space = self._from_table(table, dataset), table.space
        elif hasattr(table, "items"):
            mapping = dict(table.items())
        else:
            raise ObjectiveError(
                f"expected an accuracy table (path, MeasurementTable, dict or Series), got {type(table).__name__}"
            )
        if not mapping:
            raise ObjectiveError(f"accuracy table {self.source} is empty")
        space = spaces.get(space) if space is not None else spaces.get(spaces.detect(list(mapping)))
        self.space_name = space.name
        self.accuracy = self._canonical(space, mapping)

    def _from_table(self, table, dataset) -> dict:
        if ACCURACY_METRIC not in table.metrics:
            raise DataValidationError(
                f"expected rows with metric {ACCURACY_METRIC!r}, got metrics {table.metrics}", path=table.source
            )
        names = table.devices if dataset is None else [dataset]
        if len(names) != 1:
            raise DataValidationError(
                f"the accuracy file holds several datasets {names}; pass dataset=... to choose one",
                path=table.source,
            )
        return table.values(names[0], ACCURACY_METRIC).to_dict()

    def _canonical(self, space, mapping: dict) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, (arch, value) in enumerate(mapping.items()):
            try:
                key = space.canonical(arch)
            except ArchitectureError as exc:
                raise ObjectiveError(f"accuracy table {self.source}, entry #{i}: {exc}") from None
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ObjectiveError(
                    f"accuracy table {self.source}, entry #{i} ({arch!r:.60}): expected a finite accuracy "
                    f"in percent, got {value!r}"
                )
            if key in out and out[key] != float(value):
                raise ObjectiveError(
                    f"accuracy table {self.source}: {key!r:.60} appears twice with different accuracies "
                    f"({out[key]} and {value}); keep one"
                )
            out[key] = float(value)
        return out

    def spaces(self) -> tuple[str, ...]:
        return (self.space_name,)

    def _score(self, space, archs: list[str]) -> np.ndarray:
        get = self.accuracy.get
        return np.array([get(a, math.nan) for a in archs], dtype=np.float64)

    def describe(self) -> str:
        return f"'accuracy' from {self.source} ({len(self.accuracy)} {self.space_name} archs, {self.unit})"
