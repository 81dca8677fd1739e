"""What every high-level predictor shares: input handling, device checks, the
finite-space prediction cache and model files.

Inputs accepted by ``predict(archs, device=...)``:

- one architecture string -> ``float`` (ms, or the predictor's metric unit);
- a sequence of strings -> ``np.ndarray`` of shape ``(n,)``;
- a pre-encoded float array of shape ``(n, d)`` (the fast path, no parsing);
- for ``encoding="graph"`` predictors: an ONNX file path or a torch module.

Fast path for finite spaces (NAS-Bench-201: 15,625 cells): the first
prediction for a device evaluates the model once on every architecture of the
space and keeps the results; later calls look strings up in a dict and one-hot
rows up by their bit pattern. The cached values are exactly what the model
returns for those architectures.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from edgeperf.errors import (
    ArchitectureError,
    DataValidationError,
    ExtrapolationWarning,
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
    UnknownDeviceError,
)

__all__ = ["BasePredictor", "GRAPH_ENCODING"]

#: Encoding name of generic ONNX graph features (``edgeperf.features.onnx_features``).
GRAPH_ENCODING = "graph"
#: MACs or parameters this many times beyond the training range trigger an ExtrapolationWarning.
EXTRAPOLATION_FACTOR = 2.0
#: Spaces at most this large get a full per-device prediction cache.
MAX_CACHED_SPACE_SIZE = 100_000
#: float32 holds integers exactly up to 2**24: one-hot bits are summed in chunks of this many.
_BITS_PER_CHUNK = 24
#: An int64 key holds at most this many one-hot bits.
_MAX_KEY_BITS = 62

# Enumeration of finite spaces, shared by every predictor (a memo, not configuration).
_SPACE_INDEX: dict[tuple[str, str], "_SpaceIndex"] = {}


class _SpaceIndex:
    """Every architecture of a finite space, its encodings and lookup keys."""

    def __init__(self, space, encoding: str):
        self.archs = list(space.enumerate())
        self.position = {a: i for i, a in enumerate(self.archs)}
        self.X = space.encode(self.archs, encoding)
        self.binary = bool(((self.X == 0) | (self.X == 1)).all()) and self.X.shape[1] <= _MAX_KEY_BITS
        if self.binary:
            keys = _onehot_keys(self.X)
            self.order = np.argsort(keys, kind="stable")
            self.sorted_keys = keys[self.order]
            if np.unique(self.sorted_keys).size != self.sorted_keys.size:
                self.binary = False  # two archs share an encoding: cannot map rows back


def _onehot_keys(X: np.ndarray) -> np.ndarray:
    """Integer key of each binary row (its bits), computed with exact float32 chunk sums."""
    key = np.zeros(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[1], _BITS_PER_CHUNK):
        chunk = X[:, start : start + _BITS_PER_CHUNK]
        weights = (2.0 ** np.arange(chunk.shape[1])).astype(np.float32)
        key |= (chunk @ weights).astype(np.int64) << start
    return key


def _space_index(space, encoding: str) -> "_SpaceIndex | None":
    if space.size is None or space.size > MAX_CACHED_SPACE_SIZE or encoding == GRAPH_ENCODING:
        return None
    k = (space.name, encoding)
    if k not in _SPACE_INDEX:
        try:
            _SPACE_INDEX[k] = _SpaceIndex(space, encoding)
        except NotImplementedError:
            return None
    return _SPACE_INDEX[k]


class BasePredictor(BaseEstimator):
    """Base of :class:`PerDevicePredictor` and :class:`JointPredictor`.

    Subclasses implement ``_predict_log(X, device)`` (natural log of the
    metric for encoded rows) and set ``space_``, ``encoding_``, ``metric_``,
    ``devices_`` in ``fit``.
    """

    # ---- state helpers -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "devices_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(table) or edgeperf.load(path) first"
            )

    def _check_device(self, device: str) -> None:
        if not isinstance(device, str) or device not in self._device_set():
            raise UnknownDeviceError(
                device,
                self.devices_,
                hint="Fit on a table that has it, or register it with adapt(device, archs=, values=)"
                if hasattr(self, "adapt")
                else "Fit on a table that has it.",
            )

    def _device_set(self) -> set:
        s = getattr(self, "_devices_set", None)
        if s is None or len(s) != len(self.devices_):
            s = self._devices_set = set(self.devices_)
        return s

    def _check_encoding(self, space) -> str:
        """The encoding to fit with: ``encoding`` or the space's default; InvalidParameterError if unknown."""
        encoding = self.encoding or space.encodings[0]
        if encoding != GRAPH_ENCODING and encoding not in space.encodings:
            raise InvalidParameterError(
                f"unknown encoding {encoding!r} for space {space.name!r}; expected one of "
                f"{[*space.encodings, GRAPH_ENCODING]}"
            )
        return encoding

    def _space(self):
        from edgeperf import spaces

        return spaces.get(self.space_)

    def _reset_caches(self) -> None:
        self._cache = {}
        self._devices_set = None

    # ---- inputs ------------------------------------------------------------------------------
    def _encode_strings(self, archs: Sequence[str]) -> np.ndarray:
        return encode_archs(self._space(), self.encoding_, archs)

    def _encode_input(self, archs, input_shape=None) -> tuple[np.ndarray, bool]:
        """(X, single) for any accepted input."""
        if isinstance(archs, np.ndarray) and archs.dtype.kind in "fiub":
            X = archs
            if X.ndim == 1:
                X = X[None, :]
            if X.ndim != 2 or X.shape[1] != self.n_features_:
                raise ArchitectureError(
                    f"expected a pre-encoded array of shape (n, {self.n_features_}) in encoding "
                    f"{self.encoding_!r} of space {self.space_!r}, got shape {archs.shape}"
                )
            return X, archs.ndim == 1
        if self.encoding_ == GRAPH_ENCODING and _is_graph_input(archs):
            # A torch module has no input size of its own: guessing the space's (32x32 for
            # NAS-Bench-201) would silently predict another network. An ONNX file carries its own.
            if input_shape is None and not isinstance(archs, (str, os.PathLike)):
                from edgeperf.errors import InvalidParameterError

                raise InvalidParameterError(
                    "a torch module needs input_shape=(N, C, H, W) to be exported, e.g. (1, 3, 224, 224)"
                )
            return _graph_features(archs, input_shape)[None, :], True
        if isinstance(archs, str):
            return self._encode_strings([archs]), True
        if isinstance(archs, (list, tuple)) or hasattr(archs, "__iter__"):
            items = list(archs)
            bad = [a for a in items if not isinstance(a, str)]
            if bad:
                raise ArchitectureError(
                    f"expected architecture strings, got a {type(bad[0]).__name__} ({bad[0]!r:.80}); "
                    "pass strings, a list of strings or a pre-encoded (n, d) array"
                )
            return self._encode_strings(items), False
        raise ArchitectureError(
            f"expected an architecture string, a list of them or an (n, d) array, got {type(archs).__name__}"
        )

    # ---- prediction --------------------------------------------------------------------------
    def predict(self, archs, *, device: str, input_shape: tuple[int, ...] | None = None, return_std: bool = False):
        """Predicted metric (ms for latency) of ``archs`` on ``device``.

        One string -> float; a list of strings or an ``(n, d)`` array -> ``np.ndarray``.
        Predictors trained with ``encoding="graph"`` also take an ONNX file path or a torch
        module (-> float); ``input_shape`` is the module's input for export, required for a
        module (an ONNX file carries its own). ``return_std=True`` (predictors with
        uncertainty) returns ``(value, std)``: the prediction is the median of a log-normal
        whose log-space spread is ``sigma``; ``std = value * sigma`` (first order).
        """
        if return_std is not False:
            if return_std is not True:
                raise InvalidParameterError(f"return_std must be True or False, got {return_std!r:.60}")
            value = self.predict(archs, device=device, input_shape=input_shape)
            sigma = self._log_std(device)
            return value, value * sigma
        self._check_fitted()
        self._check_device(device)
        table = self._device_cache(device)
        if table is not None:
            index = _space_index(self._space(), self.encoding_)
            if isinstance(archs, str):
                pos = index.position.get(archs)
                if pos is None:
                    pos = index.position[self._space().canonical(archs)]
                return float(table[pos])
            if isinstance(archs, (list, tuple)) and all(isinstance(a, str) for a in archs):
                return table[self._positions(index, archs)]
            if isinstance(archs, np.ndarray) and archs.ndim == 2 and index.binary and archs.shape[1] == self.n_features_:
                pos = _lookup_rows(index, archs)
                if pos is not None:
                    return table[pos]
        X, single = self._encode_input(archs, input_shape)
        if not isinstance(archs, np.ndarray):  # graph inputs: an arbitrary model may be far from the training ones
            self._warn_if_extrapolating(X)
        out = np.exp(self._predict_log(np.asarray(X, dtype=np.float32), device))
        return float(out[0]) if single else out

    def score(self, archs, y, *, device: str | None = None) -> float:
        """R^2 of ``log(y)`` predicted from ``archs`` on ``device`` (scikit-learn's ``score`` convention).

        In log space because the model is (errors are relative, like MAPE); ``device`` may be
        omitted for a predictor of one device.
        """
        from sklearn.metrics import r2_score

        self._check_fitted()
        if device is None:
            if len(self.devices_) != 1:
                raise InvalidParameterError(f"score() needs device= for a predictor of {len(self.devices_)} devices")
            device = self.devices_[0]
        y = np.asarray(y, dtype=np.float64).ravel()
        pred = np.atleast_1d(np.asarray(self.predict(archs, device=device), dtype=np.float64))
        if pred.shape != y.shape or not (np.isfinite(y).all() and (y > 0).all()):
            raise DataValidationError(f"expected {pred.size} finite values > 0 in y, got {y.size}")
        return float(r2_score(np.log(y), np.log(pred)))

    def _warn_if_extrapolating(self, X: np.ndarray) -> None:
        """ExtrapolationWarning when MACs or parameters lie far outside the training range."""
        ranges = getattr(self, "cost_range_", None)
        if not ranges:
            return
        values = _costs_of(self._space(), self.encoding_, X)
        if values is None:
            return
        found = []
        for name, (lo, hi) in ranges.items():
            v = values[name]
            far = (v > hi * EXTRAPOLATION_FACTOR) | (v < lo / EXTRAPOLATION_FACTOR)
            if far.any():
                i = int(np.flatnonzero(far)[0])
                found.append(f"{int(far.sum())} of {v.size} have {name} far outside the training data "
                             f"(e.g. #{i}: {v[i]:.4g}; training range {lo:.4g} to {hi:.4g})")
        if found:
            warnings.warn(f"architectures: {'; '.join(found)}; their predictions are extrapolations",
                          ExtrapolationWarning, stacklevel=3)

    def _positions(self, index: _SpaceIndex, archs: Sequence[str]) -> np.ndarray:
        get = index.position.get
        pos = [get(a) for a in archs]
        if None in pos:
            space = self._space()
            canon = space.validate([a for a, p in zip(archs, pos) if p is None])
            it = iter(canon)
            pos = [p if p is not None else index.position[next(it)] for p in pos]
        return np.fromiter(pos, dtype=np.int64, count=len(pos))

    def _device_cache(self, device: str) -> "np.ndarray | None":
        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = self._cache = {}
        if device in cache:
            return cache[device]
        index = _space_index(self._space(), self.encoding_)
        if index is None:
            return None
        cache[device] = np.exp(self._predict_log(index.X, device))
        return cache[device]

    def _predict_log(self, X: np.ndarray, device: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _log_std(self, device: str) -> float:
        """Predictive spread in log space on ``device``; predictors without uncertainty refuse."""
        raise InvalidParameterError(
            f"{type(self).__name__} has no calibrated uncertainty; use a JointPredictor for return_std / quantiles"
        )

    # ---- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted predictor to one file (zip of JSON metadata + .npy arrays); returns the path."""
        from edgeperf.predictors._io import write_model_file

        self._check_fitted()
        meta, arrays = self._get_state()
        return write_model_file(path, type(self).__name__, _jsonable_params(self.get_params()), meta, arrays)

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-ready metadata, arrays) of the learned state; subclasses extend it."""
        return {
            "space": self.space_,
            "encoding": self.encoding_,
            "metric": self.metric_,
            "devices": list(self.devices_),
            "n_features": self.n_features_,
            "training": self.training_,
            "cost_range": {k: list(v) for k, v in getattr(self, "cost_range_", {}).items()},
        }, {}

    def _set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> "BasePredictor":
        """Restore :meth:`_get_state`'s output, checked (ModelFileError, or KeyError/TypeError/ValueError
        that ``load`` turns into one)."""
        from edgeperf import spaces
        from edgeperf.errors import ModelFileError
        from edgeperf.predictors._io import str_list

        space = spaces.get(str(meta["space"]))  # UnknownNameError for a space this edgeperf lacks
        encoding = meta["encoding"]
        if encoding != GRAPH_ENCODING and encoding not in space.encodings:
            raise ModelFileError(
                f"unknown encoding {encoding!r} of space {space.name!r}; expected one of {list(space.encodings)}"
            )
        n_features = meta["n_features"]
        want = _graph_dim() if encoding == GRAPH_ENCODING else space.encoding_dim(encoding)
        if isinstance(n_features, bool) or n_features != want:
            raise ModelFileError(f"n_features {n_features!r} disagrees with encoding {encoding!r} ({want} features)")
        devices = str_list(meta, "devices")
        if len(set(devices)) != len(devices):
            raise ModelFileError("the device list repeats a device; the file is corrupted")
        if not isinstance(meta["metric"], str) or not isinstance(meta["training"], dict):
            raise ModelFileError("metric must be a string and training a JSON object; the file is corrupted")
        self.space_, self.encoding_, self.metric_ = space.name, encoding, meta["metric"]
        self.devices_ = devices
        self.n_features_ = int(n_features)
        self.training_ = meta["training"]
        ranges = meta.get("cost_range", {})
        if not isinstance(ranges, dict) or not all(
            k in ("macs", "params") and isinstance(v, list) and len(v) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)
            for k, v in ranges.items()
        ):
            raise ModelFileError(f"cost_range: expected {{'macs'|'params': [low, high]}} of positive numbers, got {ranges!r:.80}")
        self.cost_range_ = {k: (float(v[0]), float(v[1])) for k, v in ranges.items()}
        self._reset_caches()
        return self


def _graph_dim() -> int:
    from edgeperf import features

    return len(features.FEATURE_NAMES)


def _jsonable_params(params: dict) -> dict:
    """Constructor parameters as JSON values (tuples become lists); ModelFileError for objects."""
    import json

    from edgeperf.errors import ModelFileError

    out = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except TypeError:
            raise ModelFileError(
                f"cannot save parameter {k}={v!r} without pickle; use a model name such as 'xgboost' or 'mlp'"
            ) from None
        out[k] = v
    return out


def _costs_of(space, encoding: str, X: np.ndarray) -> "dict[str, np.ndarray] | None":
    """MACs and parameters of graph-feature rows, or None for a search-space encoding (whose
    architectures lie in the space's range by construction; checking them would cost a
    cost-matrix evaluation per call)."""
    if encoding != GRAPH_ENCODING:
        return None
    from edgeperf import features

    names = list(features.FEATURE_NAMES)
    return {"macs": X[:, names.index("total:mmacs")] * 1e6, "params": X[:, names.index("total:mparams")] * 1e6}


def cost_range_of(space, encoding: str, X: np.ndarray) -> dict[str, tuple[float, float]]:
    """Training range (min, max) of MACs and parameters (positive values only), for extrapolation warnings."""
    values = _costs_of(space, encoding, X)
    out = {}
    for name, v in (values or {}).items():
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            out[name] = (float(v.min()), float(v.max()))
    return out


def encode_archs(space, encoding: str, archs: Sequence[str]) -> np.ndarray:
    """Encoded rows of architecture strings (graph features for ``encoding="graph"``)."""
    if encoding == GRAPH_ENCODING:
        return _graph_features_of_archs(space, archs)
    return space.encode(list(archs), encoding)


def _lookup_rows(index: _SpaceIndex, X: np.ndarray) -> "np.ndarray | None":
    """Positions of one-hot rows in the space enumeration, or None if any row is not one of them."""
    if not ((X == 0) | (X == 1)).all():
        return None
    keys = _onehot_keys(np.asarray(X, dtype=np.float32))
    where = np.searchsorted(index.sorted_keys, keys)
    where[where >= index.sorted_keys.size] = 0
    if not (index.sorted_keys[where] == keys).all():
        return None
    return index.order[where]


# ---- graph features ----------------------------------------------------------------------------
def _is_graph_input(obj: Any) -> bool:
    if isinstance(obj, (str, os.PathLike)) and str(obj).endswith(".onnx"):
        return True
    return hasattr(obj, "forward") and hasattr(obj, "parameters")  # a torch module


def _graph_features(obj, input_shape) -> np.ndarray:
    """Graph features of an ONNX file or a torch module (exported with ``input_shape``)."""
    from edgeperf import features

    if isinstance(obj, (str, os.PathLike)):
        return np.asarray(features.onnx_features(obj), dtype=np.float32)
    return np.asarray(features.torch_features(obj, input_shape), dtype=np.float32)


def _graph_features_of_archs(space, archs: Sequence[str]) -> np.ndarray:
    from edgeperf import features

    if not len(archs):
        raise DataValidationError("expected at least one architecture, got none")
    return np.asarray(features.arch_features(space, list(archs)), dtype=np.float32)
