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
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from edgeperf.errors import ArchitectureError, DataValidationError, NotFittedError, UnknownDeviceError

__all__ = ["BasePredictor", "GRAPH_ENCODING"]

#: Encoding name of generic ONNX graph features (``edgeperf.features.onnx_features``).
GRAPH_ENCODING = "graph"
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
        if device not in self._device_set():
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
            # A torch module is exported with the training space's input shape (batch 1):
            # the features were learned on models of that input size.
            space = self._space()
            shape = input_shape or space.input_shape(next(iter(space.sample(1, seed=0))))
            return _graph_features(archs, shape)[None, :], True
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
    def predict(self, archs, *, device: str, input_shape: tuple[int, ...] | None = None):
        """Predicted metric (ms for latency) of ``archs`` on ``device``.

        One string -> float; a list of strings or an ``(n, d)`` array -> ``np.ndarray``.
        Predictors trained with ``encoding="graph"`` also take an ONNX file path or a torch
        module (-> float); ``input_shape`` is the module's input for export (default: the
        training space's input shape at batch 1).
        """
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
        out = np.exp(self._predict_log(np.asarray(X, dtype=np.float32), device))
        return float(out[0]) if single else out

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
        }, {}

    def _set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> "BasePredictor":
        """Restore :meth:`_get_state`'s output (KeyError/TypeError/ValueError on a malformed one)."""
        self.space_, self.encoding_, self.metric_ = str(meta["space"]), str(meta["encoding"]), str(meta["metric"])
        self.devices_ = [str(d) for d in meta["devices"]]
        self.n_features_ = int(meta["n_features"])
        self.training_ = meta["training"]
        self._reset_caches()
        return self


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
