"""Where proxy latencies come from: a fitted predictor, a saved model, or a measurement table."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgeperf.errors import AdaptationError, ArchitectureError, UnknownDeviceError

__all__ = ["ProxySource", "as_source", "load_any"]

#: File endings read as measurement tables; anything else is a saved model.
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".tsv")


def _is_table(obj) -> bool:
    from edgeperf.datasets import MeasurementTable

    return isinstance(obj, MeasurementTable)


def load_any(source):
    """A table or a predictor from a built-in dataset name, a data file or a saved model file.

    Objects that are already a table or a predictor pass through.
    """
    if not isinstance(source, (str, Path)):
        return source
    from edgeperf import datasets

    text = str(source)
    if not Path(text).exists() or text.lower().endswith(DATA_SUFFIXES):
        return datasets.open_table(text)  # "no such file" for a path, the built-ins for a name
    import edgeperf

    return edgeperf.load(text)


class ProxySource:
    """Latency of any architecture on each proxy device, in ms.

    ``kind`` is ``"predictor"`` (a fitted model), ``"measured"`` (table values used
    as they are) or ``"fitted"`` (per-device predictors fitted on the table here).
    """

    @classmethod
    def from_wide(cls, wide, space) -> "ProxySource":
        """Measured latencies of an (archs x devices) frame; every needed cell must be filled."""
        from edgeperf import spaces

        wide = wide.drop(columns=["arch_index"], errors="ignore")
        return cls(devices=[str(c) for c in wide.columns], space=spaces.get(space), kind="measured", wide=wide)

    def __init__(self, *, devices, space, kind, predictor=None, wide=None, table=None):
        self.devices = list(devices)
        self.space = space
        self.kind = kind
        self.predictor = predictor
        self._wide = wide
        self.table = table

    def predict(self, archs: Sequence[str], device: str) -> np.ndarray:
        if device not in self.devices:
            raise UnknownDeviceError(device, self.devices)
        if self._wide is not None:
            return self._wide.loc[list(archs), device].to_numpy(dtype=float)
        return np.asarray(self.predictor.predict(list(archs), device=device), dtype=float).ravel()

    def matrix(self, archs: Sequence[str]) -> np.ndarray:
        """``(n_archs, n_devices)`` latencies in the order of :attr:`devices`."""
        if self._wide is not None:
            return self._wide.loc[list(archs), self.devices].to_numpy(dtype=float)
        return np.column_stack([self.predict(archs, d) for d in self.devices]) if self.devices else np.empty((len(archs), 0))


def as_source(proxies, *, archs_needed: Sequence[str] = (), metric: str = "latency_ms", exclude=()) -> ProxySource:
    """Wrap ``proxies`` as a :class:`ProxySource`.

    A table whose every needed architecture is measured on a device uses those
    measurements directly for that device (devices missing any are dropped);
    when no device covers them all, per-device predictors
    (:class:`edgeperf.predictors.PerDevicePredictor`) are fitted on the table.
    """
    from edgeperf import spaces

    proxies = load_any(proxies)
    exclude = set(exclude)
    if isinstance(proxies, ProxySource):  # prepared once by a caller ranking many times (benchmarks)
        kept = [d for d in proxies.devices if d not in exclude]
        needed = list(dict.fromkeys(archs_needed))
        if proxies._wide is not None and needed:
            missing = proxies._wide.index.intersection(needed)
            if len(missing) < len(needed):
                raise AdaptationError(f"{len(needed) - len(missing)} needed architecture(s) are not in the measured proxies")
            kept = [d for d in kept if proxies._wide.loc[needed, d].notna().all()]
        return ProxySource(devices=kept, space=proxies.space, kind=proxies.kind, predictor=proxies.predictor,
                           wide=proxies._wide, table=proxies.table)
    if _is_table(proxies):
        table = proxies
        space = spaces.get(table.space)
        wide = table.wide(metric).drop(columns=["arch_index"], errors="ignore")
        wide = wide[[d for d in wide.columns if d not in exclude]]
        needed = list(dict.fromkeys(archs_needed))
        present = wide.index.intersection(needed)
        if len(present) == len(needed) and needed:
            full = [d for d in wide.columns if wide.loc[needed, d].notna().all()]
            if full:
                return ProxySource(devices=full, space=space, kind="measured", wide=wide, table=table)
        keep = [d for d in table.devices if d not in exclude]
        if not keep:
            raise AdaptationError(
                f"no proxy device left after excluding {sorted(exclude)}; expected at least one other device"
            )
        from edgeperf.predictors import PerDevicePredictor

        predictor = PerDevicePredictor().fit(table.select(devices=keep, metric=metric))
        return ProxySource(devices=list(predictor.devices_), space=space, kind="fitted", predictor=predictor, table=table)
    for attr in ("devices_", "space_", "predict"):
        if not hasattr(proxies, attr):
            raise AdaptationError(
                f"proxies must be a fitted predictor (with devices_, space_, predict), a saved model path, "
                f"a data file, a built-in dataset name or a MeasurementTable; got {type(proxies).__name__} "
                f"without {attr!r} (is it fitted?)"
            )
    # Devices a predictor learned from a few samples (adapted ones) are not proxies: their
    # agreement with those same samples would be in-sample, and one may be the target itself.
    own_data = getattr(proxies, "train_devices_", proxies.devices_)
    devices = [d for d in own_data if d not in exclude]
    return ProxySource(devices=devices, space=spaces.get(proxies.space_), kind="predictor", predictor=proxies)


def canonical_archs(space, archs, what: str) -> list[str]:
    """Canonical strings of ``archs`` in ``space``; the error says which list and position."""
    if isinstance(archs, str):
        archs = [archs]
    try:
        return space.validate(list(archs))
    except ArchitectureError as exc:
        raise ArchitectureError(
            f"{what}: {exc}; expected architectures of space {space.name!r} (the proxies' space)"
        ) from None
