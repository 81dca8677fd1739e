"""One regressor per device, trained on the log of the metric."""

from __future__ import annotations

import numpy as np

from edgeperf.errors import DataValidationError, ModelFileError
from edgeperf.predictors._base import BasePredictor, encode_archs
from edgeperf.predictors._data import as_table, log_matrix
from edgeperf.predictors._regressors import make_regressor, regressor_from_state, regressor_state

__all__ = ["PerDevicePredictor"]

#: A device needs at least this many measured architectures to get its own model.
MIN_ARCHS_PER_DEVICE = 5


class PerDevicePredictor(BasePredictor):
    """An independent model per device: ``log(metric) = f_device(encoding(arch))``.

    Parameters
    ----------
    model : "xgboost" (default), "mlp", "ridge" or a scikit-learn regressor instance.
    encoding : the space's encoding (default: the space's first, ``onehot``).
    metric : ``latency_ms`` or ``energy_mj`` (any metric of the table).
    model_params : keyword arguments of the regressor (e.g. ``{"n_estimators": 200}``).
    random_state : seed of every per-device model.

    Training on the log makes errors relative, which is what +-10% accuracy and
    MAPE measure, and keeps predictions positive.
    """

    def __init__(self, *, model="xgboost", encoding=None, metric="latency_ms", model_params=None, random_state=0):
        self.model = model
        self.encoding = encoding
        self.metric = metric
        self.model_params = model_params
        self.random_state = random_state

    def fit(self, table, devices=None):
        """Train one model per device of ``table`` (or of ``devices``); returns self."""
        from edgeperf import spaces

        table = as_table(table)
        space = spaces.get(table.space)
        encoding = self.encoding or space.encodings[0]
        archs, devs, L = log_matrix(table, self.metric, devices)
        X = encode_archs(space, encoding, archs)
        models, counts = {}, {}
        for j, dev in enumerate(devs):
            ok = np.isfinite(L[:, j])
            if ok.sum() < MIN_ARCHS_PER_DEVICE:
                raise DataValidationError(
                    f"device {dev!r} has {int(ok.sum())} {self.metric} measurements; expected at least "
                    f"{MIN_ARCHS_PER_DEVICE} to train a per-device model (drop it with devices=...)",
                    path=table.source,
                )
            models[dev] = make_regressor(self.model, self.random_state, self.model_params).fit(X[ok], L[ok, j])
            counts[dev] = int(ok.sum())
        self.space_, self.encoding_, self.metric_ = space.name, encoding, self.metric
        self.n_features_ = int(X.shape[1])
        self.models_ = models
        self.devices_ = list(devs)
        self.training_ = {"source": str(table.source), "n_archs": counts}
        self._reset_caches()
        return self

    def _predict_log(self, X, device):
        return self.models_[device].predict(X)

    # ---- model files -------------------------------------------------------------------------
    def _get_state(self):
        meta, arrays = super()._get_state()
        meta["models"] = {}
        for i, (dev, model) in enumerate(self.models_.items()):
            entry, model_arrays = regressor_state(model)
            meta["models"][dev] = {**entry, "key": f"models/{i}"}
            arrays.update({f"models/{i}/{k}": v for k, v in model_arrays.items()})
        return meta, arrays

    def _set_state(self, meta, arrays):
        super()._set_state(meta, arrays)
        models = meta["models"]
        if sorted(models) != sorted(self.devices_):
            raise ModelFileError("the device list disagrees with the per-device models; the file is corrupted")
        self.models_ = {d: regressor_from_state(models[d], arrays, models[d]["key"]) for d in self.devices_}
        return self
