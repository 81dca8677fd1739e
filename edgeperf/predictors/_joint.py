"""One model across devices, and few-shot adaptation to unseen devices.

Device embedding ("hardware signature", after HELP): the device's log-metric
on the reference architectures of ``reference_set`` (10 per space in
``help-v1``), plus numeric static features from :class:`DeviceSpec` where any
training device has them (missing values imputed by the training mean).

The joint model learns ``log y(d, a) - m_d = f(s_d - m_d, static_d, x_a)``
with ``m_d`` the mean of the signature ``s_d``: predicting relative to the
device's own scale lets it reach devices faster or slower than any seen.

Missing reference measurements: a training device that lacks some reference
architectures gets them predicted by a small XGBoost model fitted on its own
measurements.

Unseen devices: ``adapt(device, archs=, values=, strategy=)`` fits one of the
strategies of :mod:`edgeperf.predictors.adapt` (default
:data:`DEFAULT_ADAPT_STRATEGY`, chosen by ``benchmarks/fewshot_help.py``) on the
target measurements, given this model's predictions for the training devices
(the strategies' basis) and three analytic pseudo-devices (MACs, params, memory
traffic) for one-hot encodings. Adapting a name that is already known raises
:class:`AdaptationError`, unless it is an adapted (not a training) device and
``overwrite=True``.
"""

from __future__ import annotations

import math

import numpy as np

from edgeperf.errors import AdaptationError, ArchitectureError, DataValidationError, ModelFileError
from edgeperf.predictors import adapt as _adapt
from edgeperf.predictors._base import BasePredictor, _space_index, encode_archs
from edgeperf.predictors._data import as_table, log_matrix
from edgeperf.predictors._reference import DEFAULT_REFERENCE_SET, reference_archs
from edgeperf.predictors._regressors import XGBoostRegressor, make_regressor, regressor_from_state, regressor_state
from edgeperf.spaces._costs import COST_COLUMNS

__all__ = ["JointPredictor", "ADAPT_STRATEGIES", "DEFAULT_ADAPT_STRATEGY", "MIN_ADAPT_MEASUREMENTS"]

#: Registered adaptation strategies (see :mod:`edgeperf.predictors.adapt`).
ADAPT_STRATEGIES = _adapt.names()
#: Chosen by measurement (benchmarks/fewshot_help.py).
DEFAULT_ADAPT_STRATEGY = _adapt.DEFAULT
#: Analytic pseudo-devices of the strategies' basis (one-hot encodings only).
COST_BASIS = tuple(f"@{c}" for c in COST_COLUMNS)
#: Fewer target measurements than this cannot fit even an affine map with a check left over.
MIN_ADAPT_MEASUREMENTS = _adapt.MIN_MEASUREMENTS
#: Repeats of one architecture may differ by this share of their median before adapt refuses them.
MAX_REPEAT_SPREAD = 0.5
#: DeviceSpec fields used as static device features (numeric, or a tuple reduced by max).
STATIC_FIELDS = ("cpu_cores", "cpu_max_freq_mhz", "memory_mb", "threads", "batch_size")
#: Ridge strength of the per-device linear fits that form the Bayes prior.
_PRIOR_RIDGE = 1.0
#: Added to the prior covariance diagonal so it stays invertible.
_PRIOR_JITTER = 1e-4
#: Trees of the helper model that imputes missing reference measurements.
_IMPUTE_TREES = 200
#: Default joint-model settings (measured on help-nb201 / help-fbnet in the benchmarks).
_JOINT_DEFAULTS = {"n_estimators": 800, "max_depth": 8, "learning_rate": 0.08, "n_jobs": 2}


def _static_vector(spec, fields) -> list[float]:
    out = []
    for f in fields:
        v = getattr(spec, f, None) if spec is not None else None
        if isinstance(v, (tuple, list)):
            v = max(v) if v else None
        out.append(math.nan if v is None else float(v))
    return out


class _Host:
    """The :class:`edgeperf.predictors.adapt.AdaptHost` view of a fitted joint predictor."""

    def __init__(self, pred: "JointPredictor"):
        self._p = pred
        self.train_devices = tuple(pred.train_devices_)
        self.basis_names = self.train_devices + (COST_BASIS if pred.encoding_ == "onehot" else ())
        self.reference_archs = tuple(pred.reference_archs_)
        self.n_features = pred.n_features_
        self.n_static = len(pred.static_fields_)
        self.space = pred.space_

    def basis_log(self, X, names):
        return self._p._basis_log(X, names)

    def joint_log(self, X, signature, static):
        return self._p._joint_log_embedded(X, signature, static)

    def encode(self, archs):
        return self._p._encode_strings(list(archs)).astype(np.float32)

    def bayes_prior(self):
        return self._p.prior_mean_, self._p.prior_cov_, self._p.prior_noise_var_


class JointPredictor(BasePredictor):
    """One model over (device embedding, architecture encoding), trained across devices.

    >>> p = JointPredictor().fit(table)                         # doctest: +SKIP
    >>> p.adapt("my-phone", archs=archs, values=latency_ms)     # doctest: +SKIP
    >>> p.predict(archs, device="my-phone")                     # doctest: +SKIP

    Parameters
    ----------
    model : "xgboost" (default), "mlp", "ridge" or a scikit-learn regressor.
    encoding : architecture encoding (default: the space's first).
    metric : the table metric to learn (``latency_ms``, ``energy_mj``...).
    reference_set : versioned set of signature architectures (``help-v1``).
    adapt_strategy : default strategy of :meth:`adapt` (one of :data:`ADAPT_STRATEGIES`).
    model_params : regressor keyword arguments (XGBoost defaults tuned for these tables).
    random_state : seed.

    Learned state: ``devices_`` (training then adapted devices), ``train_devices_``,
    ``device_params_`` (per training device: signature, static features, rows),
    ``adapters_`` (per adapted device: its fitted strategy), ``model_``, the Bayes prior.
    """

    def __init__(
        self,
        *,
        model="xgboost",
        encoding=None,
        metric="latency_ms",
        reference_set=DEFAULT_REFERENCE_SET,
        adapt_strategy=DEFAULT_ADAPT_STRATEGY,
        model_params=None,
        random_state=0,
    ):
        self.model = model
        self.encoding = encoding
        self.metric = metric
        self.reference_set = reference_set
        self.adapt_strategy = adapt_strategy
        self.model_params = model_params
        self.random_state = random_state

    # ---- fit ---------------------------------------------------------------------------------
    def fit(self, table, devices=None):
        """Train on every device of ``table`` (or just ``devices``); returns self.

        Learned attributes are assigned only once everything has succeeded: a failed
        fit leaves a previously fitted predictor as it was.
        """
        from edgeperf import spaces

        if self.adapt_strategy not in ADAPT_STRATEGIES:
            raise AdaptationError(f"unknown adapt_strategy {self.adapt_strategy!r}; expected one of {ADAPT_STRATEGIES}")
        table = as_table(table)
        space = spaces.get(table.space)
        encoding = self.encoding or space.encodings[0]
        archs, devs, L = log_matrix(table, self.metric, devices)
        X = encode_archs(space, encoding, archs)
        refs = reference_archs(space.name, self.reference_set)
        Xref = encode_archs(space, encoding, refs)
        row_of = {a: i for i, a in enumerate(archs)}

        signatures, imputed = [], {}
        for j, dev in enumerate(devs):
            ok = np.isfinite(L[:, j])
            if ok.sum() < MIN_ADAPT_MEASUREMENTS:
                raise DataValidationError(
                    f"device {dev!r} has {int(ok.sum())} measurements; expected at least {MIN_ADAPT_MEASUREMENTS}",
                    path=table.source,
                )
            sig = np.array([L[row_of[r], j] if r in row_of else np.nan for r in refs])
            missing = ~np.isfinite(sig)
            if missing.any():  # impute from a model of this device alone
                helper = XGBoostRegressor(n_estimators=_IMPUTE_TREES, random_state=self.random_state)
                sig[missing] = helper.fit(X[ok], L[ok, j]).predict(Xref[missing])
                imputed[dev] = int(missing.sum())
            signatures.append(sig)

        specs = [table.device_spec(d) for d in devs]
        fields = [f for f in STATIC_FIELDS if any(_static_vector(s, [f])[0] == _static_vector(s, [f])[0] for s in specs)]
        static = np.array([_static_vector(s, fields) for s in specs], dtype=np.float64).reshape(len(devs), len(fields))
        static_means = [float(np.nanmean(static[:, k])) for k in range(len(fields))]
        static = np.where(np.isfinite(static), static, np.asarray(static_means))  # what the embedding uses

        device_params = {}
        target = []
        n_rows = int(np.isfinite(L).sum())
        F, row = None, 0  # one float32 training matrix, filled in place (no float64 copies)
        for j, dev in enumerate(devs):
            ok = np.isfinite(L[:, j])
            k = int(ok.sum())
            sig = signatures[j]
            device_params[dev] = {"signature": sig.tolist(), "static": static[j].tolist(), "n_train": k}
            emb = _embedding(sig, static[j], static_means)
            if F is None:
                F = np.empty((n_rows, emb.size + X.shape[1]), dtype=np.float32)
            F[row : row + k, : emb.size] = emb
            F[row : row + k, emb.size :] = X[ok]
            row += k
            target.append(L[ok, j] - sig.mean())
        params = dict(_JOINT_DEFAULTS) if self.model == "xgboost" else {}
        params.update(self.model_params or {})
        model = make_regressor(self.model, self.random_state, params).fit(F, np.concatenate(target))
        prior = _bayes_prior(X, L)

        self.space_, self.encoding_, self.metric_ = space.name, encoding, self.metric
        self.n_features_ = int(X.shape[1])
        self.static_fields_, self.static_means_ = fields, static_means
        self.device_params_ = device_params
        self.model_ = model
        self.prior_mean_, self.prior_cov_, self.prior_noise_var_ = prior
        self.reference_archs_ = refs
        self.train_devices_ = list(devs)
        self.adapters_ = {}
        self.training_ = {
            "source": str(table.source),
            "n_rows": int(sum(len(t) for t in target)),
            "imputed_reference_values": imputed,
        }
        self.devices_ = list(devs)
        self._reset_caches()
        return self

    # ---- prediction --------------------------------------------------------------------------
    def _joint_log_embedded(self, X, signature, static) -> np.ndarray:
        """Joint model for a device of this signature and static features (NaN = training mean)."""
        emb = _embedding(np.asarray(signature, np.float64), np.asarray(static, np.float64), self.static_means_)
        emb = emb.astype(np.float32)
        F = np.empty((X.shape[0], emb.size + X.shape[1]), dtype=np.float32)
        F[:, : emb.size] = emb
        F[:, emb.size :] = X
        return float(np.mean(signature)) + self.model_.predict(F)

    def _basis_log(self, X, names) -> np.ndarray:
        index = _space_index(self._space(), self.encoding_)
        full_space = index is not None and X is index.X  # building a full cache: reuse the basis devices' caches
        costs = self._log_costs(X) if any(d in COST_BASIS for d in names) else None
        columns = []
        for d in names:
            if d in COST_BASIS:
                columns.append(costs[:, COST_BASIS.index(d)])
            elif full_space:
                columns.append(np.log(self._device_cache(d)))
            else:
                columns.append(self._predict_log(X, d))
        return np.column_stack(columns) if columns else np.zeros((X.shape[0], 0))

    def _log_costs(self, X) -> np.ndarray:
        return np.log(self._space().cost_matrix(np.asarray(X)))

    def _predict_log(self, X, device) -> np.ndarray:
        strategy = self.adapters_.get(device)
        if strategy is not None:
            return strategy.predict_log(_Host(self), X)
        p = self.device_params_[device]
        return self._joint_log_embedded(X, p["signature"], p["static"])

    # ---- few-shot adaptation -----------------------------------------------------------------
    def adapt(self, device, archs, values, *, spec=None, strategy=None, overwrite=False):
        """Register the unseen ``device`` from a few measurements (``values`` in the metric's unit).

        Needs at least :data:`MIN_ADAPT_MEASUREMENTS`; 20 (HELP's 10 reference
        architectures + 10 others) is the intended budget. ``strategy``: a name of
        :func:`edgeperf.predictors.adapt.names` (default ``adapt_strategy``). Returns ``self``.
        """
        self._check_fitted()
        strategy = strategy or self.adapt_strategy
        if strategy not in ADAPT_STRATEGIES:
            raise AdaptationError(f"unknown strategy {strategy!r}; expected one of {ADAPT_STRATEGIES}")
        if not isinstance(device, str) or not device.strip():
            raise AdaptationError(f"expected a non-empty device name, got {device!r}")
        if device in self._device_set():
            if device not in self.adapters_:
                raise AdaptationError(
                    f"device {device!r} is a training device of this model; adapt under another name"
                )
            if not overwrite:
                raise AdaptationError(
                    f"device {device!r} is already adapted; pass overwrite=True to replace it"
                )
        canon, y = self._adapt_inputs(device, archs, values)
        host = _Host(self)
        X = self._encode_strings(canon).astype(np.float32)
        static = np.asarray(_static_vector(spec, self.static_fields_), dtype=np.float64)
        static = np.where(np.isfinite(static), static, np.asarray(self.static_means_, dtype=np.float64))
        data = _adapt.AdaptData(
            archs=tuple(canon), X=X, logy=np.log(y), basis_log=host.basis_log(X, host.basis_names), static=static
        )
        fitted = _adapt.get(strategy)().fit(host, data)
        self.adapters_[device] = fitted
        if device not in self._device_set():
            self.devices_.append(device)
        self._cache.pop(device, None)
        return self

    def _adapt_inputs(self, device, archs, values) -> tuple[list[str], np.ndarray]:
        """(distinct canonical archs, one value each) of an adapt call, validated.

        Repeated architectures (after canonicalisation) are merged into the median of their
        values; repeats that disagree by more than :data:`MAX_REPEAT_SPREAD` of that median
        are an error naming the architecture (two different devices or a unit mix-up).
        """
        if isinstance(archs, str):
            archs = [archs]
        archs = list(archs)
        y = _numeric_vector(values, f"adapt {device!r}: values in {self.metric_}")
        if len(archs) != y.size:
            raise AdaptationError(
                f"expected one value per architecture, got {len(archs)} architectures and {y.size} values"
            )
        if not np.isfinite(y).all() or (y <= 0).any():
            bad = int(np.flatnonzero(~np.isfinite(y) | (y <= 0))[0])
            raise AdaptationError(f"expected finite values > 0 in {self.metric_}, got {y[bad]!r} at position {bad}")
        space = self._space()
        try:
            canon = space.validate(archs)
        except ArchitectureError as exc:
            raise ArchitectureError(f"adapt {device!r}: expected {space.name} architectures: {exc}") from None
        groups: dict[str, list[float]] = {}
        for a, v in zip(canon, y):
            groups.setdefault(a, []).append(float(v))
        merged = []
        for a, vs in groups.items():
            med = float(np.median(vs))
            if (max(vs) - min(vs)) > MAX_REPEAT_SPREAD * med:
                raise AdaptationError(
                    f"adapt {device!r}: architecture {a!r} was given {len(vs)} conflicting values {vs} "
                    f"(spread over {MAX_REPEAT_SPREAD:.0%} of their median); check the measurements"
                )
            merged.append(med)
        if len(groups) < MIN_ADAPT_MEASUREMENTS:
            raise AdaptationError(
                f"expected at least {MIN_ADAPT_MEASUREMENTS} distinct architectures to adapt, got {len(groups)} "
                f"({y.size} values); measure the reference architectures (predictor.reference_archs_) "
                "plus about 10 others"
            )
        return list(groups), np.asarray(merged)

    # ---- model files -------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict, dict]:
        meta, arrays = super()._get_state()
        entry, model_arrays = regressor_state(self.model_)
        arrays.update({f"model/{k}": v for k, v in model_arrays.items()})
        adapted = {}
        for i, (dev, strategy) in enumerate(self.adapters_.items()):
            s_meta, s_arrays = strategy.get_state()
            adapted[dev] = {"key": f"adapted/{i}", "state": s_meta, "arrays": sorted(s_arrays)}
            arrays.update({f"adapted/{i}/{k}": v for k, v in s_arrays.items()})
        meta.update(
            reference_set=self.reference_set,
            reference_archs=list(self.reference_archs_),
            train_devices=list(self.train_devices_),
            device_params=self.device_params_,
            static_fields=list(self.static_fields_),
            static_means=list(self.static_means_),
            prior_noise_var=self.prior_noise_var_,
            model=entry,
            adapted=adapted,
        )
        arrays["prior_mean"] = self.prior_mean_
        arrays["prior_cov"] = self.prior_cov_
        return meta, arrays

    def _set_state(self, meta: dict, arrays: dict) -> "JointPredictor":
        super()._set_state(meta, arrays)
        self.reference_archs_ = list(meta["reference_archs"])
        self.train_devices_ = list(meta["train_devices"])
        self.device_params_ = dict(meta["device_params"])
        self.static_fields_ = list(meta["static_fields"])
        self.static_means_ = [float(v) for v in meta["static_means"]]
        self.prior_noise_var_ = float(meta["prior_noise_var"])
        self.prior_mean_, self.prior_cov_ = arrays["prior_mean"], arrays["prior_cov"]
        self.model_ = regressor_from_state(meta["model"], arrays, "model")
        if set(self.device_params_) != set(self.train_devices_):
            raise ModelFileError("training devices and device parameters disagree; the file is corrupted")
        self.adapters_ = {}
        host = _Host(self)
        for dev, entry in dict(meta.get("adapted", {})).items():
            s_meta = entry["state"]
            cls = _adapt.get(s_meta.get("strategy")) if s_meta.get("strategy") in ADAPT_STRATEGIES else None
            if cls is None:
                raise ModelFileError(
                    f"adapted device {dev!r} uses strategy {s_meta.get('strategy')!r}, unknown to this edgeperf "
                    f"(known: {', '.join(ADAPT_STRATEGIES)}); upgrade edgeperf or re-adapt the device"
                )
            s_arrays = {k: arrays[f"{entry['key']}/{k}"] for k in entry["arrays"]}
            strategy = cls().set_state(s_meta, s_arrays)
            strategy.check_host(host)
            self.adapters_[dev] = strategy
        if list(self.devices_) != self.train_devices_ + list(self.adapters_):
            raise ModelFileError("the device list disagrees with the training and adapted devices; the file is corrupted")
        return self


def _numeric_vector(values, what: str) -> np.ndarray:
    """A 1-D float vector of real numbers (no booleans, strings, dates or 2-D arrays)."""
    if isinstance(values, (str, bytes)):
        raise AdaptationError(f"{what}: expected a sequence of numbers, got a string")
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise AdaptationError(f"{what}: expected a sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise AdaptationError(f"{what}: expected a 1-D sequence of numbers, got an array of shape {arr.shape}")
    if arr.dtype.kind == "O":
        bad = [v for v in arr if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))]
        if bad:
            raise AdaptationError(f"{what}: expected numbers, got {type(bad[0]).__name__} {bad[0]!r:.60}")
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "iuf":
        raise AdaptationError(f"{what}: expected numbers, got values of dtype {arr.dtype} (booleans, text or dates)")
    return arr.astype(np.float64)


def _embedding(signature: np.ndarray, static: np.ndarray, static_means) -> np.ndarray:
    static = np.where(np.isfinite(static), static, np.asarray(static_means, dtype=np.float64))
    return np.concatenate([signature - signature.mean(), static])


def _bayes_prior(X, L) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, covariance, noise variance) of per-device ridge fits ``log y ~ [1, x]``."""
    Phi = np.hstack([np.ones((X.shape[0], 1)), X.astype(np.float64)])
    betas, resid = [], []
    penalty = _PRIOR_RIDGE * np.eye(Phi.shape[1])
    penalty[0, 0] = 0.0  # intercept unpenalised
    for j in range(L.shape[1]):
        ok = np.isfinite(L[:, j])
        A = Phi[ok]
        beta = np.linalg.solve(A.T @ A + penalty, A.T @ L[ok, j])
        betas.append(beta)
        resid.append(np.mean((L[ok, j] - A @ beta) ** 2))
    B = np.array(betas)
    cov = np.cov(B, rowvar=False) if len(betas) > 1 else np.zeros((B.shape[1], B.shape[1]))
    return B.mean(axis=0), cov + _PRIOR_JITTER * np.eye(B.shape[1]), float(np.mean(resid))
