"""Low-level regressors ``X -> y`` that follow the scikit-learn estimator contract exactly.

They know nothing about devices or architectures: the high-level predictors
encode architectures, take logs and pick a regressor per device (or one for all
devices). Each can export its learned state as JSON-ready metadata plus numpy
arrays (``_export_state`` / ``_import_state``) so model files need no pickle.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from edgeperf.errors import ModelFileError, NotFittedError

__all__ = ["XGBoostRegressor", "SklearnRegressor", "TorchMLPRegressor", "make_regressor", "REGRESSOR_NAMES",
           "regressor_state", "regressor_from_state"]

#: Largest seed xgboost and torch accept from a numpy RandomState draw.
_MAX_SEED = 2**31 - 1


def _check_fitted(est, attr: str) -> None:
    if not hasattr(est, attr):
        raise NotFittedError(
            f"this {type(est).__name__} is not fitted yet; call fit(X, y) before predict"
        )


def _seed(random_state) -> int:
    return int(check_random_state(random_state).randint(_MAX_SEED))


class XGBoostRegressor(RegressorMixin, BaseEstimator):
    """Gradient-boosted trees (XGBoost ``hist``); the default per-device model.

    Parameters mirror XGBoost's. ``n_jobs=1`` by default because edgeperf
    trains many small models and the machines it targets are small.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 500,
        max_depth: int = 6,
        learning_rate: float = 0.08,
        subsample: float = 0.9,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        n_jobs: int = 1,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self) -> dict:
        return {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "nthread": self.n_jobs,
            "seed": _seed(self.random_state),
            "verbosity": 0,
        }

    def fit(self, X, y):
        import xgboost

        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float32)
        dtrain = xgboost.DMatrix(X, label=y.astype(np.float32), nthread=self.n_jobs)
        self.booster_ = xgboost.train(self._params(), dtrain, num_boost_round=int(self.n_estimators))
        return self

    def predict(self, X):
        _check_fitted(self, "booster_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return np.asarray(self.booster_.inplace_predict(X), dtype=np.float64)

    # ---- model files ------------------------------------------------------------------------
    def _export_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        raw = bytes(self.booster_.save_raw("json"))
        return {"n_features_in": int(self.n_features_in_)}, {"booster_json": np.frombuffer(raw, dtype=np.uint8)}

    def _import_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> "XGBoostRegressor":
        import xgboost

        try:
            booster = xgboost.Booster()
            booster.load_model(bytearray(arrays["booster_json"].tobytes()))
        except (KeyError, xgboost.core.XGBoostError) as exc:
            raise ModelFileError(f"expected an XGBoost model saved as JSON, could not read it: {exc}") from None
        booster.set_param({"nthread": self.n_jobs})
        self.booster_ = booster
        self.n_features_in_ = int(meta["n_features_in"])
        return self


class SklearnRegressor(RegressorMixin, BaseEstimator):
    """Wrap any scikit-learn regressor (``Ridge()`` when ``estimator`` is None).

    The wrapped estimator is cloned at ``fit``. Saving to a model file works for
    linear models only (their coefficients are arrays); any other estimator
    cannot be stored without pickle, and :meth:`save` says so.
    """

    def __init__(self, *, estimator=None, random_state=None):
        self.estimator = estimator
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.linear_model import Ridge

        X, y = validate_data(self, X, y, y_numeric=True)
        est = clone(self.estimator) if self.estimator is not None else Ridge()
        if "random_state" in est.get_params() and self.random_state is not None:
            est.set_params(random_state=self.random_state)
        self.estimator_ = est.fit(X, y)
        return self

    def predict(self, X):
        _check_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False)
        return np.asarray(self.estimator_.predict(X), dtype=np.float64)

    def _export_state(self):
        est = self.estimator_
        if not (hasattr(est, "coef_") and hasattr(est, "intercept_") and np.ndim(est.coef_) == 1):
            raise ModelFileError(
                f"cannot save a wrapped {type(est).__name__} without pickle; only linear models "
                "(coef_ and intercept_) can be stored: use model='xgboost' or model='mlp' to save"
            )
        return (
            {"n_features_in": int(self.n_features_in_)},
            # keep the dtypes: a float32 fit predicts in float32, and so must the loaded copy
            {"coef": np.asarray(est.coef_), "intercept": np.atleast_1d(np.asarray(est.intercept_))},
        )

    def _import_state(self, meta, arrays):
        from sklearn.linear_model import LinearRegression

        lin = LinearRegression()
        lin.coef_ = arrays["coef"]
        lin.intercept_ = arrays["intercept"][0]
        lin.n_features_in_ = int(meta["n_features_in"])
        self.estimator_ = lin
        self.n_features_in_ = int(meta["n_features_in"])
        return self


class TorchMLPRegressor(RegressorMixin, BaseEstimator):
    """A multilayer perceptron trained with torch (Adam, MSE on standardised X and y).

    Inference runs in numpy on the stored weights, so prediction needs no torch
    and the weights save as plain ``.npy`` arrays.
    """

    def __init__(
        self,
        *,
        hidden_layer_sizes: tuple[int, ...] = (128, 128),
        epochs: int = 200,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-5,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state

    def fit(self, X, y):
        import torch

        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        self.x_mean_ = X.mean(axis=0)
        self.x_scale_ = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) if y.std() > 0 else 1.0
        Xs = torch.as_tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float32)
        ys = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)

        seed = _seed(self.random_state)
        gen = torch.Generator().manual_seed(seed)
        sizes = [X.shape[1], *[int(h) for h in self.hidden_layer_sizes], 1]
        layers = []
        for i in range(len(sizes) - 1):
            lin = torch.nn.Linear(sizes[i], sizes[i + 1])
            with torch.no_grad():  # seeded init, independent of torch's global RNG
                bound = 1.0 / np.sqrt(sizes[i])
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.uniform_(-bound, bound, generator=gen)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        n = Xs.shape[0]
        bs = max(1, min(int(self.batch_size), n))
        for _ in range(int(self.epochs)):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                opt.zero_grad()
                loss = torch.mean((net(Xs[idx]).squeeze(-1) - ys[idx]) ** 2)
                loss.backward()
                opt.step()
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self.coefs_ = [m.weight.detach().numpy().T.astype(np.float64).copy() for m in linears]
        self.intercepts_ = [m.bias.detach().numpy().astype(np.float64).copy() for m in linears]
        return self

    def predict(self, X):
        _check_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        h = (X - self.x_mean_) / self.x_scale_
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            h = h @ w + b
            if i < len(self.coefs_) - 1:
                np.maximum(h, 0.0, out=h)
        return h[:, 0] * self.y_scale_ + self.y_mean_

    def _export_state(self):
        arrays = {"x_mean": self.x_mean_, "x_scale": self.x_scale_}
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        meta = {
            "n_features_in": int(self.n_features_in_),
            "n_layers": len(self.coefs_),
            "y_mean": self.y_mean_,
            "y_scale": self.y_scale_,
        }
        return meta, arrays

    def _import_state(self, meta, arrays):
        try:
            n = int(meta["n_layers"])
            self.coefs_ = [np.asarray(arrays[f"w{i}"], np.float64) for i in range(n)]
            self.intercepts_ = [np.asarray(arrays[f"b{i}"], np.float64) for i in range(n)]
            self.x_mean_, self.x_scale_ = arrays["x_mean"], arrays["x_scale"]
            self.y_mean_, self.y_scale_ = float(meta["y_mean"]), float(meta["y_scale"])
            self.n_features_in_ = int(meta["n_features_in"])
        except KeyError as exc:
            raise ModelFileError(f"MLP weights incomplete: missing {exc}") from None
        return self


#: Names accepted by ``model=`` of the high-level predictors.
REGRESSOR_NAMES = {"xgboost": XGBoostRegressor, "mlp": TorchMLPRegressor, "ridge": SklearnRegressor}


def make_regressor(model, random_state=None, params: dict | None = None):
    """A fresh regressor from a name in :data:`REGRESSOR_NAMES` or a scikit-learn regressor instance."""
    from edgeperf.errors import UnknownNameError

    if isinstance(model, str):
        if model not in REGRESSOR_NAMES:
            raise UnknownNameError("regressor", model, REGRESSOR_NAMES)
        return REGRESSOR_NAMES[model](random_state=random_state, **(params or {}))
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise UnknownNameError("regressor", repr(model), REGRESSOR_NAMES)
    est = clone(model)
    if isinstance(est, (XGBoostRegressor, SklearnRegressor, TorchMLPRegressor)):
        if params:
            est.set_params(**params)
        return est
    return SklearnRegressor(estimator=est, random_state=random_state)


def regressor_state(est) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON entry, arrays) of a fitted regressor for a model file."""
    from edgeperf.predictors._base import _jsonable_params

    names = [name for name, cls in REGRESSOR_NAMES.items() if type(est) is cls]
    if not names:
        raise ModelFileError(f"cannot save a regressor of type {type(est).__name__}")
    meta, arrays = est._export_state()
    entry = {"type": names[0], "params": _jsonable_params(est.get_params()), "meta": meta, "arrays": sorted(arrays)}
    return entry, {k: np.asarray(v) for k, v in arrays.items()}


def regressor_from_state(entry: dict, arrays: dict[str, np.ndarray], key: str):
    """The regressor of a model-file ``entry`` whose arrays are ``arrays[f"{key}/{name}"]``."""
    cls = REGRESSOR_NAMES.get(entry.get("type"))
    if cls is None:
        raise ModelFileError(f"unknown regressor type {entry.get('type')!r}; expected one of {sorted(REGRESSOR_NAMES)}")
    params = dict(entry.get("params", {}))
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        reg = cls(**params)
        mine = {k: arrays[f"{key}/{k}"] for k in entry["arrays"]}
    except (TypeError, KeyError) as exc:
        raise ModelFileError(f"model entry {key!r} is incomplete or has unexpected fields: {exc}") from None
    return reg._import_state(entry["meta"], mine)
