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
measurements; an adapted device gets them from the adapted combination model.

Adaptation strategies (``adapt(..., strategy=)``; the default was chosen by
``benchmarks/fewshot_help.py``, see :data:`DEFAULT_ADAPT_STRATEGY`):

- ``signature``: the joint model fed the new device's signature;
- ``signature+calibration``: the same, then an affine map in log space fitted
  on the target samples;
- ``combination``: ``log y = b + sum_k w_k log yhat_k`` over the training
  devices' predictions, ridge-shrunk towards equal weights (the average
  device), the shrinkage chosen by leave-one-out on the target samples;
- ``ridge``: the same, shrunk towards zero weights;
- ``nnls``: non-negative least-squares weights; besides the training devices, its
  basis holds three analytic pseudo-devices, the architecture's MACs, parameters
  and memory traffic (``@macs``, ``@params``, ``@mem_bytes``), so a device unlike
  every training device (an accelerator, a large batch, another runtime) can
  still be fitted as a power law of its compute. Measured on the HELP protocol:
  +0.002 mean Spearman on NAS-Bench-201, +0.005 on FBNet, and 0.16 -> 0.80 on
  OFA-MobileNetV3 when batch-1 GPUs must predict batch-32/64 ones;
- ``bayes``: a hierarchical-Bayes linear model on the architecture encoding
  whose Gaussian prior (mean, covariance) comes from per-device linear fits of
  the training devices;
- ``nnls+bayes``: the mean (in log space) of ``nnls`` and ``bayes``, unless the
  target samples conflict with the Bayes prior: when their prior-predictive
  Mahalanobis distance exceeds the chi-square quantile :data:`PRIOR_CONFLICT_LEVEL`
  (a device unlike the training devices, where the prior pulls towards the
  wrong behaviour), ``nnls`` alone. Seen here: 0.1-0.4 per sample for public
  devices like the training ones; 2.9 for ONNX Runtime on a 2-core VM and 3-14
  for batch-32/64 GPUs against batch-1 training GPUs.

Adapting a name that is already known raises :class:`AdaptationError`, unless
it is an adapted (not a training) device and ``overwrite=True``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2

from edgeperf.errors import AdaptationError, ArchitectureError, DataValidationError
from edgeperf.predictors._base import BasePredictor
from edgeperf.predictors._data import as_table, log_matrix
from edgeperf.predictors._reference import DEFAULT_REFERENCE_SET, reference_archs
from edgeperf.predictors._regressors import XGBoostRegressor, make_regressor
from edgeperf.spaces._costs import COST_COLUMNS

__all__ = ["JointPredictor", "ADAPT_STRATEGIES", "DEFAULT_ADAPT_STRATEGY", "MIN_ADAPT_MEASUREMENTS"]

ADAPT_STRATEGIES = ("signature", "signature+calibration", "combination", "ridge", "nnls", "bayes", "nnls+bayes")
#: Chosen by measurement (benchmarks/fewshot_help.py); see the module docstring.
DEFAULT_ADAPT_STRATEGY = "nnls+bayes"
#: Chi-square level of the prior-data conflict check of ``nnls+bayes``.
PRIOR_CONFLICT_LEVEL = 0.999
#: Analytic pseudo-devices of the ``nnls`` basis (see the module docstring), with one-hot encodings.
COST_BASIS = tuple(f"@{c}" for c in COST_COLUMNS)
#: Fewer target measurements than this cannot fit even an affine map with a check left over.
MIN_ADAPT_MEASUREMENTS = 3
#: Ridge strengths tried by leave-one-out in the combination strategies.
_ALPHAS = np.logspace(-3, 3, 13)
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
    def fit(self, table, devices=None, *, client=None):
        """Train on every device of ``table`` (or just ``devices``); returns self. With a
        ``dask.distributed`` ``client``, on its cluster (xgboost.dask; see ``_joint_dask``)."""
        if client is not None:
            from edgeperf.predictors._joint_dask import fit_dask

            return fit_dask(self, table, devices, client=client)
        from edgeperf import spaces

        if self.adapt_strategy not in ADAPT_STRATEGIES:
            raise AdaptationError(f"unknown adapt_strategy {self.adapt_strategy!r}; expected one of {ADAPT_STRATEGIES}")
        table = as_table(table)
        space = spaces.get(table.space)
        self.space_ = space.name
        self.encoding_ = self.encoding or space.encodings[0]
        self.metric_ = self.metric
        archs, devs, L = log_matrix(table, self.metric, devices)
        X = self._encode_strings(archs)
        self.n_features_ = int(X.shape[1])
        refs = reference_archs(space.name, self.reference_set)
        Xref = self._encode_strings(refs)
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
        self.static_fields_ = fields
        self.static_means_ = [float(np.nanmean(static[:, k])) for k in range(len(fields))]

        self.device_params_ = {}
        target = []
        n_rows = int(np.isfinite(L).sum())
        F, row = None, 0  # one float32 training matrix, filled in place (no float64 copies)
        for j, dev in enumerate(devs):
            ok = np.isfinite(L[:, j])
            k = int(ok.sum())
            sig = signatures[j]
            self.device_params_[dev] = {
                "kind": "trained",
                "signature": sig.tolist(),
                "static": static[j].tolist(),
                "n_train": k,
            }
            emb = self._embedding(dev)
            if F is None:
                F = np.empty((n_rows, emb.size + X.shape[1]), dtype=np.float32)
            F[row : row + k, : emb.size] = emb
            F[row : row + k, emb.size :] = X[ok]
            row += k
            target.append(L[ok, j] - sig.mean())
        params = dict(_JOINT_DEFAULTS) if self.model == "xgboost" else {}
        params.update(self.model_params or {})
        self.model_ = make_regressor(self.model, self.random_state, params).fit(F, np.concatenate(target))
        self.reference_archs_ = refs
        self.train_devices_ = list(devs)
        self.devices_ = list(devs)
        self.training_ = {
            "source": str(table.source),
            "n_rows": int(sum(len(t) for t in target)),
            "imputed_reference_values": imputed,
        }
        self._fit_bayes_prior(X, L)
        self._reset_caches()
        return self

    def _embedding(self, device) -> np.ndarray:
        p = self.device_params_[device]
        sig = np.asarray(p["signature"], dtype=np.float64)
        static = np.asarray(p["static"], dtype=np.float64)
        static = np.where(np.isfinite(static), static, np.asarray(self.static_means_, dtype=np.float64))
        return np.concatenate([sig - sig.mean(), static])

    def _fit_bayes_prior(self, X, L) -> None:
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
        self.prior_mean_ = B.mean(axis=0)
        cov = np.cov(B, rowvar=False) if len(betas) > 1 else np.zeros((B.shape[1], B.shape[1]))
        self.prior_cov_ = cov + _PRIOR_JITTER * np.eye(B.shape[1])
        self.prior_noise_var_ = float(np.mean(resid))

    # ---- prediction --------------------------------------------------------------------------
    def _joint_log(self, X, device) -> np.ndarray:
        p = self.device_params_[device]
        emb = self._embedding(device).astype(np.float32)
        F = np.empty((X.shape[0], emb.size + X.shape[1]), dtype=np.float32)
        F[:, : emb.size] = emb
        F[:, emb.size :] = X
        return float(np.mean(p["signature"])) + self.model_.predict(F)

    def _basis_log(self, X, basis) -> np.ndarray:
        from edgeperf.predictors._base import _space_index

        index = _space_index(self._space(), self.encoding_)
        full_space = index is not None and X is index.X  # building a full cache: reuse the basis devices' caches
        costs = self._log_costs(X) if any(d in COST_BASIS for d in basis) else None
        columns = []
        for d in basis:
            if d in COST_BASIS:
                columns.append(costs[:, COST_BASIS.index(d)])
            elif full_space:
                columns.append(np.log(self._device_cache(d)))
            else:
                columns.append(self._predict_log(X, d))
        return np.column_stack(columns)

    def _log_costs(self, X) -> np.ndarray:
        return np.log(self._space().cost_matrix(np.asarray(X)))

    def _predict_log(self, X, device) -> np.ndarray:
        p = self.device_params_[device]
        method = p.get("strategy", "signature") if p["kind"] == "adapted" else "trained"
        if method in ("trained", "signature", "signature+calibration"):
            out = self._joint_log(X, device)
        elif method in ("combination", "ridge", "nnls"):
            Z = self._basis_log(X, p["basis"])
            out = p["intercept"] + Z @ np.asarray(p["weights"])
        elif method == "bayes":
            out = p["bayes_intercept"] + X.astype(np.float64) @ np.asarray(p["bayes_weights"])
        elif method == "nnls+bayes":
            blend = p.get("nnls_share", 0.5)
            Z = self._basis_log(X, p["basis"])
            out = blend * (p["intercept"] + Z @ np.asarray(p["weights"]))
            out += (1.0 - blend) * (p["bayes_intercept"] + X.astype(np.float64) @ np.asarray(p["bayes_weights"]))
        else:  # pragma: no cover - guarded by adapt
            raise AdaptationError(f"device {device!r} has an unknown strategy {method!r}")
        if "calibration" in p:
            a, b = p["calibration"]
            out = a + b * out
        return out

    # ---- few-shot adaptation -----------------------------------------------------------------
    def adapt(self, device, archs, values, *, spec=None, strategy=None, overwrite=False):
        """Register the unseen ``device`` from a few measurements (``values`` in the metric's unit).

        Needs at least :data:`MIN_ADAPT_MEASUREMENTS`; 20 (HELP's 10 reference
        architectures + 10 others) is the intended budget. Returns ``self``.
        """
        self._check_fitted()
        strategy = strategy or self.adapt_strategy
        if strategy not in ADAPT_STRATEGIES:
            raise AdaptationError(f"unknown strategy {strategy!r}; expected one of {ADAPT_STRATEGIES}")
        if not isinstance(device, str) or not device.strip():
            raise AdaptationError(f"expected a non-empty device name, got {device!r}")
        if device in self._device_set():
            if self.device_params_[device]["kind"] == "trained":
                raise AdaptationError(
                    f"device {device!r} is a training device of this model; adapt under another name"
                )
            if not overwrite:
                raise AdaptationError(
                    f"device {device!r} is already adapted; pass overwrite=True to replace it"
                )
        if isinstance(archs, str):
            archs = [archs]
        archs = list(archs)
        try:
            y = np.asarray(values, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise AdaptationError(f"expected numeric values in {self.metric_}, got {values!r:.100}") from None
        if len(archs) != y.size:
            raise AdaptationError(
                f"expected one value per architecture, got {len(archs)} architectures and {y.size} values"
            )
        if y.size < MIN_ADAPT_MEASUREMENTS:
            raise AdaptationError(
                f"expected at least {MIN_ADAPT_MEASUREMENTS} measurements to adapt, got {y.size}; "
                "measure the reference architectures (predictor.reference_archs_) plus about 10 others"
            )
        if not np.isfinite(y).all() or (y <= 0).any():
            bad = int(np.flatnonzero(~np.isfinite(y) | (y <= 0))[0])
            raise AdaptationError(f"expected finite values > 0 in {self.metric_}, got {y[bad]!r} at position {bad}")
        space = self._space()
        try:
            canon = space.validate(archs)
        except ArchitectureError as exc:
            raise ArchitectureError(f"adapt {device!r}: expected {space.name} architectures: {exc}") from None
        X = self._encode_strings(canon).astype(np.float32)
        logy = np.log(y)
        basis = list(self.train_devices_)
        Z = np.column_stack([self._predict_log(X, d) for d in basis])

        params = {"kind": "adapted", "strategy": strategy, "n_adapt": int(y.size)}
        params["static"] = _static_vector(spec, self.static_fields_)
        if strategy in ("combination", "ridge", "nnls", "nnls+bayes") or strategy.startswith("signature"):
            kind = {"signature": "combination", "signature+calibration": "combination", "nnls+bayes": "nnls"}.get(
                strategy, strategy
            )
            if kind == "nnls" and self.encoding_ == "onehot":
                basis = basis + list(COST_BASIS)
                Z = np.hstack([Z, self._log_costs(X)])
            b, w = _fit_combination(Z, logy, kind)
            params.update(basis=basis, intercept=b, weights=w.tolist())
        if strategy.startswith("signature"):
            refs = self.reference_archs_
            measured = {a: v for a, v in zip(canon, logy)}
            Xref = self._encode_strings(refs).astype(np.float32)
            ref_pred = b + np.column_stack([self._predict_log(Xref, d) for d in basis]) @ w
            sig = [measured.get(r, ref_pred[i]) for i, r in enumerate(refs)]
            params = {k: v for k, v in params.items() if k not in ("basis", "intercept", "weights")}
            params["signature"] = [float(s) for s in sig]
            params["n_reference_measured"] = int(sum(r in measured for r in refs))
        if strategy in ("bayes", "nnls+bayes"):
            b, w = self._fit_bayes(X, logy)
            params.update(bayes_intercept=b, bayes_weights=w.tolist())
        if strategy == "nnls+bayes":
            conflict = self._prior_conflict(X, logy)
            params.update(prior_conflict_per_sample=conflict / y.size, nnls_share=0.5)
            if conflict > chi2.ppf(PRIOR_CONFLICT_LEVEL, y.size):
                params["nnls_share"] = 1.0

        self.device_params_[device] = params
        if device not in self._device_set():
            self.devices_.append(device)
        self._cache.pop(device, None)
        if strategy == "signature+calibration":
            pred = self._predict_log(X, device)
            params["calibration"] = list(_fit_affine(pred, logy))
            self._cache.pop(device, None)
        return self

    def _prior_conflict(self, X, logy) -> float:
        """Mahalanobis distance of the targets from the Bayes prior's predictive distribution
        (chi-square with ``len(logy)`` degrees of freedom when the device fits the prior)."""
        Phi = np.hstack([np.ones((X.shape[0], 1)), X.astype(np.float64)])
        resid = logy - Phi @ self.prior_mean_
        cov = Phi @ self.prior_cov_ @ Phi.T + self.prior_noise_var_ * np.eye(len(logy))
        return float(resid @ np.linalg.solve(cov, resid))

    def _fit_bayes(self, X, logy):
        Phi = np.hstack([np.ones((X.shape[0], 1)), X.astype(np.float64)])
        prec = np.linalg.inv(self.prior_cov_)
        A = prec + Phi.T @ Phi / self.prior_noise_var_
        beta = np.linalg.solve(A, prec @ self.prior_mean_ + Phi.T @ logy / self.prior_noise_var_)
        return float(beta[0]), beta[1:]


def _fit_affine(pred, target) -> tuple[float, float]:
    """Least-squares ``target = a + b * pred`` with b > 0 (else a pure shift)."""
    pc = pred - pred.mean()
    denom = float(pc @ pc)
    b = float(pc @ (target - target.mean()) / denom) if denom > 0 else 1.0
    if not b > 0:
        b = 1.0
    a = float(target.mean() - b * pred.mean())
    return a, b


def _fit_combination(Z, y, kind: str) -> tuple[float, np.ndarray]:
    """Intercept and weights of ``y ~ b + Z w`` in log space (see the module docstring)."""
    n, k = Z.shape
    zm, ym = Z.mean(axis=0), y.mean()
    Zc = Z - zm
    if kind == "nnls":
        from scipy.optimize import nnls

        w, _ = nnls(Zc, y - ym)
        if not w.any():  # no positive direction fits: fall back to the average device
            w = np.full(k, 1.0 / k)
        return float(ym - zm @ w), w
    w0 = np.full(k, 1.0 / k) if kind == "combination" else np.zeros(k)
    r = y - Z @ w0
    rc = r - r.mean()
    best, best_v = math.inf, np.zeros(k)
    G = Zc.T @ Zc
    for alpha in _ALPHAS:
        M = np.linalg.inv(G + alpha * np.eye(k))
        v = M @ Zc.T @ rc
        H = Zc @ M @ Zc.T + 1.0 / n  # hat matrix incl. the intercept
        loo = (rc - Zc @ v) / np.clip(1.0 - np.diag(H), 1e-6, None)
        err = float(np.mean(loo**2))
        if err < best:
            best, best_v = err, v
    w = w0 + best_v
    return float(ym - zm @ w), w
