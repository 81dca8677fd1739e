"""Predicted block latency: a graph-feature regressor fitted on the blocks measured on a target.

Profiling every alternative on every target is the largest per-target cost. With
``House.profile(..., measure_fraction=f)`` only the teacher's segments and blocks and a fraction
``f`` of the alternatives are measured; the rest are predicted from their ONNX graph features
(:func:`edgeperf.features.torch_features`: per-op MACs, parameters, activation memory) by a ridge
regression of log latency on log features, fitted on this target's measurements.
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
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import KFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = self._design(X), np.log(np.asarray(ms, dtype=np.float64))
        if len(y) < MIN_TRAIN:
            raise InvalidParameterError(f"expected at least {MIN_TRAIN} measured modules to fit block latency, got {len(y)}")
        make = lambda: make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))  # noqa: E731
        errors = []
        for tr, te in KFold(min(CV_FOLDS, len(y)), shuffle=True, random_state=0).split(X):
            pred = np.exp(make().fit(X[tr], y[tr]).predict(X[te]))
            errors.extend(np.abs(pred - np.exp(y[te])) / np.exp(y[te]))
        self.model_ = make().fit(X, y)
        self.cv_mape_ = float(np.mean(errors))
        return self

    def predict(self, X) -> np.ndarray:
        return np.exp(self.model_.predict(self._design(X)))
