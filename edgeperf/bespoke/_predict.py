"""Predicted block latency: a graph-feature regressor fitted on the blocks measured on a target.

Profiling every alternative on every target is the largest per-target cost. With
``House.profile(..., measure_fraction=f)`` only the teacher's segments and blocks and a fraction
``f`` of the alternatives are measured; the rest are predicted from their ONNX graph features
(:func:`edgeperf.features.torch_features`: per-op MACs, parameters, activation memory) by a ridge
regression of log latency on log features, fitted on this target's measurements. Features and
predictions are kept within the range of the measured modules: a feature far outside it (a kind
of layer few measured modules have) once extrapolated a TVM prediction 10^16 x off.
"""

from __future__ import annotations

import warnings

import numpy as np

from edgeperf.errors import InvalidParameterError

__all__ = ["module_features", "BlockLatencyRegressor"]

#: Ridge penalty (features are standardised log1p values).
RIDGE_ALPHA = 1.0
#: Folds of the cross-validated error reported with the fit.
CV_FOLDS = 5
#: Fewest measured modules a fit accepts.
MIN_TRAIN = 8


def module_features(module, input_shape) -> np.ndarray:
    """Graph features of ``module`` on a batch-1 input of ``input_shape`` (C, H, W)."""
    from edgeperf.features import torch_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch_features(module, (1, *input_shape)).astype(np.float64)


class BlockLatencyRegressor:
    """log(ms) ~ ridge(standardised log1p(features)); ``fit`` stores ``cv_mape_`` (K-fold)."""

    def __init__(self, *, alpha: float = RIDGE_ALPHA):
        self.alpha = alpha

    def _design(self, X):
        return np.log1p(np.maximum(np.asarray(X, dtype=np.float64), 0.0))

    def fit(self, X, ms) -> "BlockLatencyRegressor":
        from sklearn.model_selection import KFold

        X, y = self._design(X), np.log(np.asarray(ms, dtype=np.float64))
        if len(y) < MIN_TRAIN:
            raise InvalidParameterError(f"expected at least {MIN_TRAIN} measured modules to fit block latency, got {len(y)}")
        errors = []
        for tr, te in KFold(min(CV_FOLDS, len(y)), shuffle=True, random_state=0).split(X):
            pred = BlockLatencyRegressor(alpha=self.alpha)._fit_design(X[tr], y[tr])._predict_design(X[te])
            errors.extend(np.abs(pred - np.exp(y[te])) / np.exp(y[te]))
        self._fit_design(X, y)
        self.cv_mape_ = float(np.mean(errors))
        return self

    def _fit_design(self, X, log_ms) -> "BlockLatencyRegressor":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(X, log_ms)
        self.x_range_ = (X.min(axis=0), X.max(axis=0))
        self.log_ms_range_ = (float(log_ms.min()), float(log_ms.max()))
        return self

    def _predict_design(self, rows) -> np.ndarray:
        """ms of design rows, features and log latency bounded to the ranges seen in ``fit``."""
        return np.exp(np.clip(self.model_.predict(np.clip(rows, *self.x_range_)), *self.log_ms_range_))

    def predict(self, X) -> np.ndarray:
        return self._predict_design(self._design(X))
