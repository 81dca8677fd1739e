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
:data:`DEFAULT_ADAPT_STRATEGY`, chosen by ``benchmarks/fewshot_unseen.py``) on the
target measurements, given this model's predictions for the training devices
(the strategies' basis) and three analytic pseudo-devices (MACs, params, memory
traffic) for one-hot encodings. Adapting a name that is already known raises
:class:`AdaptationError`, unless it is an adapted (not a training) device and
``overwrite=True``.
"""

from __future__ import annotations

import math

import numpy as np

from edgeperf.errors import AdaptationError, ArchitectureError, DataValidationError, InvalidParameterError, ModelFileError
from edgeperf.predictors import adapt as _adapt
from edgeperf.predictors._base import BasePredictor, _lookup_rows, _space_index, cost_range_of, encode_archs
from edgeperf.predictors._data import as_table, log_matrix
from edgeperf.predictors._fasttrees import FastJoint
from edgeperf.predictors._io import finite_array, finite_list, str_list
from edgeperf.predictors._params import Progress, check_common_params, check_progress
from edgeperf.predictors._report import AdaptReport
from edgeperf.predictors._uncertainty import UNCALIBRATED_SCALE, quantile_log_std
from edgeperf.predictors._reference import DEFAULT_REFERENCE_SET, reference_archs
from edgeperf.predictors._regressors import XGBoostRegressor, make_regressor, regressor_from_state, regressor_state
from edgeperf.spaces import COST_COLUMNS

__all__ = ["JointPredictor", "ADAPT_STRATEGIES", "DEFAULT_ADAPT_STRATEGY", "MIN_ADAPT_MEASUREMENTS"]

#: The built-in adaptation strategies (see :mod:`edgeperf.predictors.adapt`); the checks below ask
#: the registry itself, so a strategy a user registers later is accepted too.
ADAPT_STRATEGIES = _adapt.names()
#: Chosen by measurement (benchmarks/fewshot_help.py).
DEFAULT_ADAPT_STRATEGY = _adapt.DEFAULT
#: Analytic pseudo-devices of the strategies' basis (one-hot encodings only).
COST_BASIS = tuple(f"@{c}" for c in COST_COLUMNS)
#: Fewer target measurements than this cannot fit even an affine map with a check left over.
MIN_ADAPT_MEASUREMENTS = _adapt.MIN_MEASUREMENTS
#: HELP's budget: the 10 reference architectures + 10 others.
RECOMMENDED_ADAPT_MEASUREMENTS = 20
#: Repeats of one architecture may differ by this share of their median before adapt refuses them.
MAX_REPEAT_SPREAD = 0.5
#: Single-string calls of a device before its decision-code evaluator is built (``_fastcodes``:
#: building costs 30-300 ms per basis device, more than the first call after ``adapt`` may take;
#: each later call saves 20-100 us, so it pays back within a few thousand calls).
CODE_EVALUATOR_AFTER = 16
#: An additive device model's per-code table must reproduce its milliseconds to this share of the
#: largest (float sums in another order differ in the last bits; the table is checked on random codes).
ADDITIVE_RTOL = 1e-9
#: DeviceSpec fields used as static device features (numeric, or a tuple reduced by max).
STATIC_FIELDS = ("cpu_cores", "cpu_max_freq_mhz", "memory_mb", "threads", "batch_size")
#: Ridge strength of the per-device linear fits that form the Bayes prior.
_PRIOR_RIDGE = 1.0
#: Added to the prior covariance diagonal so it stays invertible.
_PRIOR_JITTER = 1e-4
#: Trees of the helper model that imputes missing reference measurements.
_IMPUTE_TREES = 200
#: Default joint-model settings. 200 trees rather than 800 (benchmarks/predictors_accuracy.py,
#: joint, 900 archs per device: within +-10% NB-201 79.1% vs 78.9%, FBNet 86.1% vs 86.8%, OFA 76.7%
#: vs 76.8%; the few-shot defaults were chosen on 200-tree models): fits 2-3.5x and batches 2.5-4.5x
#: faster.
_JOINT_DEFAULTS = {"n_estimators": 200, "max_depth": 8, "learning_rate": 0.08, "n_jobs": 2}


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

    def __init__(self, pred: "JointPredictor", *, exclude=(), prior=None):
        self._p = pred
        self._prior = prior  # (mean, cov, noise) instead of the predictor's, when devices are held out
        self.train_devices = tuple(d for d in pred.train_devices_ if d not in set(exclude))
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
        if self._prior is not None:
            return self._prior
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
    ``adapters_`` (per adapted device: its fitted strategy), ``adapt_measurements_`` (per adapted
    device: ``{arch: value}`` it was adapted from, repeats merged; :func:`edgeperf.optimize.search`
    checks those archs as measured), ``model_``, the Bayes prior.
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
    def fit(self, table, devices=None, *, progress=None, client=None):
        """Train on every device of ``table`` (or just ``devices``); returns self. With a
        ``dask.distributed`` ``client``, on its cluster (xgboost.dask; see ``_joint_dask``).

        Also calibrates the predictive uncertainty leave-hardware-family-out (a few
        smaller refits, see :mod:`edgeperf.predictors._uncertainty`). ``progress``: optional
        ``progress(done, total, stage)`` callback (device signatures, each boosting round,
        the Bayes prior, each calibration fold). Learned attributes are assigned only once
        everything has succeeded: a failed fit leaves a previously fitted predictor as it was.
        """
        if client is not None:
            from edgeperf.predictors._joint_dask import fit_dask

            return fit_dask(self, table, devices, client=client)
        from edgeperf.predictors._uncertainty import N_FOLDS, calibrate_log_std_scale

        self._check_params(progress)
        table = as_table(table)
        fitted, steps = self._fit_model(table, devices, progress, extra_steps=N_FOLDS)
        fitted.uncertainty_ = calibrate_log_std_scale(fitted, table, lambda stage: steps.step(stage))
        steps.step("done", steps.total - steps.done)  # fewer calibration folds than planned
        for k, v in vars(fitted).items():
            if k.endswith("_") and not k.startswith("_"):
                setattr(self, k, v)
        self._reset_caches()
        return self

    def _fit_model(self, table, devices, progress, *, extra_steps: int = 0,
                   space_table: bool = True) -> tuple["JointPredictor", Progress]:
        """A new fitted predictor of these settings (without uncertainty calibration) and its progress."""
        from edgeperf import spaces

        space = spaces.get(table.space)
        encoding = self._check_encoding(space)
        archs, devs, L = log_matrix(table, self.metric, devices)
        X = encode_archs(space, encoding, archs)
        refs = reference_archs(space.name, self.reference_set)
        Xref = encode_archs(space, encoding, refs)
        params = dict(_JOINT_DEFAULTS) if self.model == "xgboost" else {}
        params.update(self.model_params or {})
        model = make_regressor(self.model, self.random_state, params)
        if isinstance(model, XGBoostRegressor):
            model._check_params()  # before any work
        rounds = int(model.n_estimators) if isinstance(model, XGBoostRegressor) else 1
        tables = len(devs) if space_table and _space_index(space, encoding) is not None else 0
        steps = Progress(progress, len(devs) + rounds + 1 + tables + extra_steps)
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
            steps.step("device signatures")

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
        if isinstance(model, XGBoostRegressor):
            model.fit(F, np.concatenate(target), progress=lambda i, n, _: steps.step("joint model (boosting rounds)"))
        else:
            model.fit(F, np.concatenate(target))
            steps.step("joint model")
        betas, resid = _device_linear_fits(X, L)
        steps.step("Bayes prior")
        state = {
            "space_": space.name, "encoding_": encoding, "metric_": self.metric, "n_features_": int(X.shape[1]),
            "static_fields_": fields, "static_means_": static_means, "device_params_": device_params,
            "model_": model, "reference_archs_": refs, "train_devices_": list(devs), "adapters_": {},
            "adapt_reports_": {}, "adapt_measurements_": {}, "cost_range_": cost_range_of(space, encoding, X),
            "devices_": list(devs),
            "training_": {
                "source": str(table.source),
                "n_rows": int(sum(len(t) for t in target)),
                "imputed_reference_values": imputed,
            },
        }
        state["prior_mean_"], state["prior_cov_"], state["prior_noise_var_"] = _prior_from(betas, resid)
        fitted = JointPredictor(**self.get_params())
        for k, v in state.items():
            setattr(fitted, k, v)
        fitted._reset_caches()
        from edgeperf.predictors._uncertainty import trained_log_std

        fitted.space_log_table_ = fitted._space_log_table(steps) if space_table else None
        fitted._reset_caches()
        for dev, std in trained_log_std(fitted, X, L, devs).items():  # after the table: lookups, not the model
            device_params[dev]["log_std"] = std
        return fitted, steps

    def _check_params(self, progress) -> None:
        from edgeperf.predictors._reference import REFERENCE_SETS

        check_common_params(self)
        check_progress(progress)
        if not isinstance(self.adapt_strategy, str) or self.adapt_strategy not in _adapt.names():
            raise InvalidParameterError(
                f"unknown adapt_strategy {self.adapt_strategy!r:.60}; expected one of {', '.join(_adapt.names())}"
            )
        if not isinstance(self.reference_set, str) or self.reference_set not in REFERENCE_SETS:
            raise InvalidParameterError(
                f"unknown reference_set {self.reference_set!r:.60}; expected one of {sorted(REFERENCE_SETS)}"
            )

    # ---- prediction --------------------------------------------------------------------------
    def predict(self, archs, *, device: str, input_shape=None, return_std: bool = False):
        # One architecture string on a device with a decision-code evaluator: parse it into its
        # decisions and evaluate (see _fastcodes); anything else, or a string the space refuses
        # (whose error the general path then raises), goes the general way.
        if type(archs) is str and return_std is False and input_shape is None:
            evaluate = self._code_evaluator(device)
            if evaluate is not None:
                try:
                    choices = self._space_obj.to_choices(archs)
                except ArchitectureError:
                    pass
                else:
                    return evaluate(choices)
        return super().predict(archs, device=device, input_shape=input_shape, return_std=return_std)

    predict.__doc__ = BasePredictor.predict.__doc__

    def _code_evaluator(self, device):
        """The device's single-architecture evaluator, built on its :data:`CODE_EVALUATOR_AFTER`-th
        single-string call; None before, and where the model, space or strategy has none."""
        if not hasattr(self, "devices_"):  # unfitted: the general path says so
            return None
        evaluators = self.__dict__.get("_code_evaluators")
        if evaluators is None:
            evaluators = self._code_evaluators = {}
        got = evaluators.get(device)
        if self._fast_joint() is None:  # (benchmarks switch the fast paths off this way)
            return None
        if got is None or type(got) is int:
            if not isinstance(device, str) or device not in self._device_set():
                return None
            calls = (got or 0) + 1
            if calls < CODE_EVALUATOR_AFTER:
                evaluators[device] = calls
                return None
            got = evaluators[device] = self._build_code_evaluator(device) or False
        return got or None

    def _decision_blocks(self):
        """The space's :class:`~edgeperf.predictors._fastcodes.DecisionBlocks` (False when it has
        none, the model is not XGBoost, or a whole-space table answers single calls already)."""
        blocks = self.__dict__.get("_blocks")
        if blocks is None:
            from edgeperf.predictors._fastcodes import DecisionBlocks

            blocks = False
            space = self._space()
            if self._fast_joint() is not None and _space_index(space, self.encoding_) is None:
                try:
                    blocks = DecisionBlocks(space, self.encoding_)
                except (ValueError, NotImplementedError):
                    blocks = False
            self._blocks = blocks
            self._space_obj = space
        return blocks

    def _build_code_evaluator(self, device):
        """``choices -> metric`` for one device, or None (then the general path serves it).

        A training device: its trees' leaf masks. An adapted device whose strategy has an
        :meth:`AdaptStrategy.affine_form` (every built-in one but the signature and synthetic
        strategies): one evaluator over all its basis devices' masks at once, plus per-code tables
        of its encoding term, of the analytic costs where weighted, and of each additive device
        model (``analytic``, ``compact``; equal to theirs within :data:`ADDITIVE_RTOL`).
        """
        import math

        from edgeperf.predictors._fastcodes import CodeEvaluator

        blocks = self._decision_blocks()
        if blocks is False:
            return None
        fast = self._fast_joint()
        M, offsets = blocks.M, blocks.offsets
        strategy = self.adapters_.get(device)
        if strategy is None:
            mean, emb = self._train_embedding(device)
            masks = fast.leaf_masks(emb, blocks)
            if masks is None:
                return None
            tree_sum = CodeEvaluator([masks])
            exp = math.exp
            return lambda choices: exp(mean + tree_sum(np.dot(choices, M) + offsets)[0])
        form = strategy.affine_form()
        if form is None:
            return None
        devices = [d for d in form.basis if d not in COST_BASIS]
        shift, parts = form.const, []
        for d in devices:
            mean, emb = self._train_embedding(d)
            shift += form.basis[d] * mean
            parts.append(fast.leaf_masks(emb, blocks))
        if any(m is None for m in parts):
            return None
        tree_sum = CodeEvaluator(parts) if parts else None
        weights = np.array([form.basis[d] for d in devices])
        linear = None
        if form.encoding is not None:  # X @ v is a sum over blocks of a term of each block's code
            v = np.asarray(form.encoding, dtype=np.float64)
            own = blocks.block_of_col[None, :] == np.repeat(np.arange(len(blocks.blocks)),
                                                            np.diff(np.append(offsets, blocks.n_rows)))[:, None]
            linear = (np.where(own, blocks.values.astype(np.float64), 0.0) @ v)
        costs = [(COST_BASIS.index(d), w) for d, w in form.basis.items() if d in COST_BASIS]
        cost_cols = np.array([c for c, _ in costs], dtype=np.int64)
        cost_weights = np.array([w for _, w in costs])
        additive = self._additive_costs() if costs else None
        if costs and additive is None:
            return None
        route = self._additive_route(device)
        if form.additive and route is False:
            return None
        models = list(zip(form.additive, route[1])) if route else []
        exp, log = math.exp, np.log

        def evaluate(choices):
            rows = np.dot(choices, M) + offsets
            out = shift
            if tree_sum is not None:
                out += float(tree_sum(rows) @ weights)
            if linear is not None:
                out += float(linear.take(rows).sum())
            if costs:
                out += float(log(additive.costs(rows)[cost_cols]) @ cost_weights)
            for term, table in models:
                out += term.weight * math.log(max(term.t0_ms + float(table.costs(rows)[0]), term.floor_ms))
            return exp(out)

        return evaluate

    def _additive_costs(self):
        """The analytic pseudo-devices' costs per block code (``_fastcodes.AdditiveCosts``), or None."""
        costs = self.__dict__.get("_costs_by_code")
        if costs is None:
            from edgeperf.predictors._fastcodes import AdditiveCosts

            try:
                costs = AdditiveCosts(self._decision_blocks(), self._space_obj.cost_matrix)
            except (ValueError, NotImplementedError):
                costs = False
            self._costs_by_code = costs
        return costs or None

    def _additive_route(self, device):
        """``(form, tables)`` for an adapted device whose form holds additive device models
        (:class:`AdditiveMs`), one per-code table each; False where it has none or the space
        has no decision blocks. Built once per adapted device (``adapt`` drops it)."""
        routes = self.__dict__.setdefault("_additive_routes", {})
        route = routes.get(device)
        if route is None:
            route = routes[device] = self._build_additive_route(self.adapters_[device])
        return route

    def _build_additive_route(self, strategy):
        from edgeperf.predictors._fastcodes import AdditiveCosts

        form = strategy.affine_form()
        blocks = self._decision_blocks()
        if form is None or not form.additive or blocks is False:
            return False
        space = self.space_
        try:
            tables = [AdditiveCosts(blocks, lambda X, t=t: t.ms(space, X)[:, None], rtol=ADDITIVE_RTOL)
                      for t in form.additive]
        except (ValueError, NotImplementedError):
            return False
        return form, tables

    def _adapted_log(self, device, X) -> np.ndarray:
        """An adapted device's log predictions. Where its form holds additive device models and the
        rows decode into block codes, their milliseconds come from per-code tables (one gather, not
        every layer's costs decoded); otherwise the strategy's own ``predict_log``."""
        host = _Host(self)
        route = self._additive_route(device) if self._fast_joint() is not None else False
        if route:
            rows = self._decision_blocks().decode(X)
            if rows is not None:
                form, tables = route
                return form.predict_log(host, X, [t.costs_many(rows)[:, 0] for t in tables])
        return self.adapters_[device].predict_log(host, X)

    def _joint_log_embedded(self, X, signature, static) -> np.ndarray:
        """Joint model for a device of this signature and static features (NaN = training mean)."""
        emb = _embedding(np.asarray(signature, np.float64), np.asarray(static, np.float64), self.static_means_)
        emb = emb.astype(np.float32)
        fast = self._fast_joint()
        out = fast.predict(emb, np.asarray(X, dtype=np.float32)) if fast is not None else None
        if out is not None:
            return float(np.mean(signature)) + out
        F = np.empty((X.shape[0], emb.size + X.shape[1]), dtype=np.float32)
        F[:, : emb.size] = emb
        F[:, emb.size :] = X
        return float(np.mean(signature)) + self.model_.predict(F)

    def _basis_log(self, X, names) -> np.ndarray:
        costs = self._log_costs(X) if any(d in COST_BASIS for d in names) else None
        rows = self._table_rows(X)
        walked = self._walk_train_devices(X, names) if rows is None else {}
        columns = []
        for d in names:
            if d in COST_BASIS:
                columns.append(costs[:, COST_BASIS.index(d)])
            elif rows is not None:
                columns.append(self.space_log_table_[rows, self._train_column(d)])
            elif d in walked:
                columns.append(walked[d])
            else:
                columns.append(self._predict_log(X, d))
        return np.column_stack(columns) if columns else np.zeros((X.shape[0], 0))

    def _table_rows(self, X) -> "np.ndarray | slice | None":
        """Rows of ``space_log_table_`` holding the encoded rows ``X``, or None (no table, or not all found)."""
        if getattr(self, "space_log_table_", None) is None:
            return None
        index = _space_index(self._space(), self.encoding_)
        if X is index.X:
            return slice(None)
        if not index.binary or X.ndim != 2 or X.shape[1] != self.n_features_:
            return None
        return _lookup_rows(index, X)

    def _reset_caches(self) -> None:
        super()._reset_caches()
        self._train_columns = None
        self._fast = None
        self._train_embeddings = {}
        self._code_evaluators = {}
        self._additive_routes = {}
        self._blocks = None
        self._costs_by_code = None

    def _fast_joint(self) -> "FastJoint | None":
        """Exact fast evaluation of an XGBoost joint model per device (``_fasttrees``; derived state)."""
        fast = getattr(self, "_fast", None)
        if fast is None and isinstance(self.model_, XGBoostRegressor):
            fast = self._fast = FastJoint(self.model_.booster_)
        return fast

    def _train_column(self, device) -> int:
        cols = getattr(self, "_train_columns", None)
        if cols is None:
            cols = self._train_columns = {d: j for j, d in enumerate(self.train_devices_)}
        return cols[device]

    def _space_log_table(self, steps) -> "np.ndarray | None":
        """Log predictions of every training device on every architecture of a finite space (fit time),
        so that predictions and adaptation never evaluate the joint model for them again."""
        index = _space_index(self._space(), self.encoding_)
        if index is None:
            return None
        out = np.empty((index.X.shape[0], len(self.train_devices_)))
        for j, dev in enumerate(self.train_devices_):
            p = self.device_params_[dev]
            out[:, j] = self._joint_log_embedded(index.X, p["signature"], p["static"])
            steps.step("whole-space prediction table")
        return out

    def _log_costs(self, X) -> np.ndarray:
        return np.log(self._space().cost_matrix(np.asarray(X)))

    def _predict_log(self, X, device) -> np.ndarray:
        if device in self.adapters_:
            return self._adapted_log(device, X)
        rows = self._table_rows(X)
        if rows is not None:
            return self.space_log_table_[rows, self._train_column(device)]
        fast = self._fast_joint()
        if fast is not None:
            mean, emb = self._train_embedding(device)
            out = fast.predict(emb, X)
            if out is not None:
                return mean + out
        p = self.device_params_[device]
        return self._joint_log_embedded(X, p["signature"], p["static"])

    def _walk_train_devices(self, X, names) -> dict:
        """Log predictions of several training devices in one walk of the fast path (few rows), or {}."""
        devices = [d for d in names if d not in COST_BASIS]
        fast = self._fast_joint() if len(devices) > 1 else None
        if fast is None:
            return {}
        pairs = [self._train_embedding(d) for d in devices]
        out = fast.predict_many([emb for _, emb in pairs], np.asarray(X, dtype=np.float32))
        if out is None:
            return {}
        return {d: mean + out[:, j] for j, (d, (mean, _)) in enumerate(zip(devices, pairs))}

    def _train_embedding(self, device) -> tuple[float, np.ndarray]:
        """(signature mean, float32 embedding) of a training device, computed once."""
        cached = self._train_embeddings.get(device)
        if cached is not None:
            return cached
        p = self.device_params_[device]
        sig = np.asarray(p["signature"], np.float64)
        emb = _embedding(sig, np.asarray(p["static"], np.float64), self.static_means_).astype(np.float32)
        self._train_embeddings[device] = float(np.mean(sig)), emb
        return self._train_embeddings[device]

    def _log_std(self, device) -> float:
        self._check_fitted()
        self._check_device(device)
        strategy = self.adapters_.get(device)
        if strategy is None:
            return float(self.device_params_[device]["log_std"])
        return float(strategy.log_std(1)[0] * self.uncertainty_["scale"])

    def predict_quantile(self, archs, *, device: str, q: float = 0.95, input_shape=None):
        """The ``q`` quantile of the metric (ms) of ``archs`` on ``device`` (array, or float for one string).

        Log-normal around the prediction with the calibrated log-space spread (see
        :mod:`edgeperf.predictors._uncertainty`): ``predict * exp(z_q * sigma)``; for an adapted
        device ``sigma`` is its robust leave-one-out scale times the leave-family-out factor. Budget picks
        use ``q=0.95``: an architecture whose 0.95 quantile meets the budget meets it on the
        device with about 95% probability.
        """
        from statistics import NormalDist  # scipy's norm.ppf costs ~150 us a call; this ~1 us

        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
            raise InvalidParameterError(f"q must be a probability strictly between 0 and 1, got {q!r:.60}")
        value = self.predict(archs, device=device, input_shape=input_shape)
        strategy = self.adapters_.get(device)
        sigma = self._log_std(device) if strategy is None else quantile_log_std(strategy, self.uncertainty_)
        return value * float(np.exp(NormalDist().inv_cdf(q) * sigma))

    # ---- few-shot adaptation -----------------------------------------------------------------
    def adapt(self, device, archs, values, *, spec=None, strategy=None, overwrite=False):
        """Register the unseen ``device`` from a few measurements (``values`` in the metric's unit).

        Needs at least :data:`MIN_ADAPT_MEASUREMENTS`; 20 (HELP's 10 reference
        architectures + 10 others) is the intended budget. ``strategy``: a name of
        :func:`edgeperf.predictors.adapt.names` (default ``adapt_strategy``). Returns ``self``.
        """
        self._check_fitted()
        strategy = self.adapt_strategy if strategy is None else strategy
        if not isinstance(strategy, str) or strategy not in _adapt.names():
            raise InvalidParameterError(f"unknown strategy {strategy!r:.60}; expected one of {', '.join(_adapt.names())}")
        if not isinstance(overwrite, bool):
            raise InvalidParameterError(f"overwrite must be True or False, got {overwrite!r:.60}")
        if not isinstance(device, str) or not device.strip():
            raise InvalidParameterError(f"expected a non-empty device name, got {device!r:.60}")
        if device in self._device_set():
            if device not in self.adapters_:
                raise AdaptationError(
                    f"device {device!r} is a training device of this model; adapt under another name"
                )
            if not overwrite:
                raise AdaptationError(
                    f"device {device!r} is already adapted; pass overwrite=True to replace it"
                )
        canon, y, n_values = self._adapt_inputs(device, archs, values)
        host = _Host(self)
        X = self._encode_strings(canon).astype(np.float32)
        static = np.asarray(_static_vector(spec, self.static_fields_), dtype=np.float64)
        static = np.where(np.isfinite(static), static, np.asarray(self.static_means_, dtype=np.float64))
        data = _adapt.AdaptData(
            archs=tuple(canon), X=X, logy=np.log(y), basis_log=host.basis_log(X, host.basis_names), static=static
        )
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # small matrices: BLAS threads only contend
            fitted, excluded = _adapt.fit_robust(_adapt.get(strategy), host, data)
        report = self._adapt_report(fitted, data, n_values, excluded)
        self.adapters_[device] = fitted
        self.adapt_reports_[device] = report
        self.adapt_measurements_[device] = dict(zip(canon, map(float, y)))
        if device not in self._device_set():
            self.devices_.append(device)
        self._cache.pop(device, None)
        self.__dict__.get("_code_evaluators", {}).pop(device, None)
        self.__dict__.get("_additive_routes", {}).pop(device, None)
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
        return list(groups), np.asarray(merged), int(y.size)

    def _adapt_report(self, fitted, data, n_values: int, excluded=()) -> AdaptReport:
        from edgeperf import metrics

        n_distinct = len(data.archs)
        refs = set(self.reference_archs_)
        n_ref = len(refs & set(data.archs))
        warnings = []
        if n_ref < len(refs):
            warnings.append(
                f"{n_ref} of the {len(refs)} reference architectures of {self.space_} were measured (the device "
                "signature predicts the others, less accurately); measure all of them (predictor.reference_archs_, "
                "or `edgeperf profile --reference`) for a reliable adaptation"
            )
        if n_values > n_distinct:
            warnings.append(f"{n_values - n_distinct} repeated measurements were merged (median per architecture)")
        if n_distinct < RECOMMENDED_ADAPT_MEASUREMENTS:
            warnings.append(
                f"only {n_distinct} distinct architectures; {RECOMMENDED_ADAPT_MEASUREMENTS} (the reference set + 10 "
                "others) is the intended budget and the leave-one-out error is rough below it"
            )
        if excluded:
            out = list(excluded)
            ratios = np.exp(data.logy[out] - fitted.predict_log(_Host(self), data.X[out]))
            warnings.append(
                f"{len(out)} measurement(s) left out of the fit as unlike every other architecture of this device "
                "(measured / predicted from the others: "
                + ", ".join(f"{data.archs[i]} x{r:.3g}" for i, r in zip(out, ratios))
                + "); edgeperf.optimize still uses them as measured; re-measure them if that is unexpected"
            )
            data = data.subset(np.setdiff1d(np.arange(n_distinct), out))  # the leave-one-out error is the fit's
        y = np.exp(data.logy)
        loo = np.exp(data.logy - fitted.loo_log_residuals_)
        warnings += list(fitted.notes())
        with np.errstate(all="ignore"):
            rho = metrics.spearman(y, loo) if np.ptp(y) > 0 else float("nan")
        return AdaptReport(
            strategy=fitted.name, n_measurements=n_values, n_distinct_archs=n_distinct,
            loo_mape_pct=float(np.mean(np.abs(loo - y) / y) * 100.0), loo_spearman=float(rho), warnings=tuple(warnings),
        )

    # ---- model files -------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict, dict]:
        meta, arrays = super()._get_state()
        entry, model_arrays = regressor_state(self.model_)
        arrays.update({f"model/{k}": v for k, v in model_arrays.items()})
        adapted = {}
        for i, (dev, strategy) in enumerate(self.adapters_.items()):
            s_meta, s_arrays = strategy.get_state()
            measured = self.adapt_measurements_.get(dev, {})
            adapted[dev] = {"key": f"adapted/{i}", "state": s_meta, "arrays": sorted(s_arrays),
                            "report": self.adapt_reports_[dev].to_json(),
                            "measurements": {"archs": list(measured), "values": list(measured.values())}}
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
            uncertainty=self.uncertainty_,
        )
        arrays["prior_mean"] = self.prior_mean_
        arrays["prior_cov"] = self.prior_cov_
        if self.space_log_table_ is not None:
            arrays["space_log_table"] = self.space_log_table_
        return meta, arrays

    def _set_state(self, meta: dict, arrays: dict) -> "JointPredictor":
        super()._set_state(meta, arrays)
        refs = str_list(meta, "reference_archs")
        train = str_list(meta, "train_devices")
        fields = str_list(meta, "static_fields")
        if not refs or not train or self.devices_[: len(train)] != train:
            raise ModelFileError("reference architectures or training devices missing or out of order; the file is corrupted")
        if set(fields) - set(STATIC_FIELDS):
            raise ModelFileError(f"unknown static device fields {sorted(set(fields) - set(STATIC_FIELDS))}")
        device_params = meta["device_params"]
        if not isinstance(device_params, dict) or sorted(device_params) != sorted(train):
            raise ModelFileError("training devices and device parameters disagree; the file is corrupted")
        checked = {}
        for dev, p in device_params.items():
            n_train = p["n_train"]
            if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
                raise ModelFileError(f"device {dev!r}: n_train must be a positive integer, got {n_train!r}")
            std = p.get("log_std", UNCALIBRATED_SCALE * 0.1)  # format 1 had none
            if isinstance(std, bool) or not isinstance(std, (int, float)) or not (np.isfinite(std) and std > 0):
                raise ModelFileError(f"device {dev!r}: log_std must be a finite number > 0, got {std!r}")
            checked[dev] = {"signature": finite_list(p, "signature", len(refs)),
                            "static": finite_list(p, "static", len(fields)), "n_train": n_train, "log_std": float(std)}
        noise = meta["prior_noise_var"]
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (np.isfinite(noise) and noise > 0):
            raise ModelFileError(f"prior_noise_var must be a finite number > 0, got {noise!r}")
        d = self.n_features_ + 1
        model = regressor_from_state(meta["model"], arrays, "model")
        if model.n_features_in_ != len(refs) + len(fields) + self.n_features_:
            raise ModelFileError(
                f"the joint model takes {model.n_features_in_} inputs, expected {len(refs) + len(fields) + self.n_features_} "
                "(signature + static features + encoding); the file is corrupted"
            )
        self.reference_set = meta.get("reference_set", self.reference_set)
        self.reference_archs_, self.train_devices_, self.static_fields_ = refs, train, fields
        self.static_means_ = finite_list(meta, "static_means", len(fields))
        self.device_params_ = checked
        self.prior_noise_var_ = float(noise)
        self.prior_mean_ = finite_array(arrays, "prior_mean", (d,))
        self.prior_cov_ = finite_array(arrays, "prior_cov", (d, d))
        self.model_ = model
        self.uncertainty_ = _check_uncertainty(meta.get("uncertainty"))
        self.space_log_table_ = None
        if "space_log_table" in arrays:
            index = _space_index(self._space(), self.encoding_)
            if index is None:
                raise ModelFileError(f"a whole-space prediction table for the unbounded space {self.space_!r}")
            self.space_log_table_ = finite_array(arrays, "space_log_table", (index.X.shape[0], len(train)))
        self.adapters_, self.adapt_reports_, self.adapt_measurements_ = self._load_adapters(meta.get("adapted", {}), arrays)
        if list(self.devices_) != self.train_devices_ + list(self.adapters_):
            raise ModelFileError("the device list disagrees with the training and adapted devices; the file is corrupted")
        return self

    def _load_adapters(self, adapted, arrays) -> dict:
        if not isinstance(adapted, dict):
            raise ModelFileError(f"adapted devices: expected a JSON object, got {type(adapted).__name__}")
        host = _Host(self)
        out, reports, measurements = {}, {}, {}
        for dev, entry in adapted.items():
            s_meta = entry["state"]
            name = s_meta.get("strategy") if isinstance(s_meta, dict) else None
            if name not in _adapt.names():
                raise ModelFileError(
                    f"adapted device {dev!r} uses strategy {name!r}, unknown to this edgeperf "
                    f"(known: {', '.join(_adapt.names())}); upgrade edgeperf or re-adapt the device"
                )
            key = entry["key"]
            s_arrays = {k: arrays[f"{key}/{k}"] for k in str_list(entry, "arrays")}
            strategy = _adapt.get(name)().set_state(s_meta, s_arrays)
            strategy.check_host(host)
            out[dev] = strategy
            reports[dev] = AdaptReport.from_json(entry["report"])
            measurements[dev] = _measurements(dev, entry.get("measurements"))
        return out, reports, measurements


def _measurements(device: str, entry) -> dict[str, float]:
    """An adapted device's measurements ``{arch: value}`` as saved (files before them: none)."""
    if entry is None:
        return {}
    try:
        archs = str_list(entry, "archs")
        values = finite_list(entry, "values", len(archs))
    except (ModelFileError, KeyError, TypeError) as exc:
        raise ModelFileError(f"adapted device {device!r}: its measurements are corrupted ({exc}); "
                             "re-adapt the device") from None
    if any(v <= 0 for v in values) or len(set(archs)) != len(archs):
        raise ModelFileError(f"adapted device {device!r}: expected its measurements as distinct archs with values > 0, "
                             f"got {entry!r:.80}; re-adapt the device")
    return dict(zip(archs, values))


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


def _check_uncertainty(info) -> dict:
    """The persisted calibration (format 1 had none: the uncalibrated scale, marked so)."""
    if info is None:
        return {"method": "uncalibrated (model format 1)", "scale": UNCALIBRATED_SCALE}
    if not isinstance(info, dict):
        raise ModelFileError(f"uncertainty: expected a calibration mapping, got {info!r:.80}")
    # robust_scale, pooled_scale and shrink_weight are missing from files written before them
    # (those keep the previous rule); scale is always there
    expected = {"scale": "> 0", "robust_scale": "> 0", "pooled_scale": "> 0", "shrink_weight": "in [0, 1]"}
    for key, wanted in expected.items():
        if key not in info and key != "scale":
            continue
        value = info.get(key)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and bool(np.isfinite(value))
        if not ok or not (0 <= value <= 1 if key == "shrink_weight" else value > 0):
            raise ModelFileError(f"uncertainty: expected a finite {key} {wanted}, got {value!r:.40}; the file is corrupted")
    return dict(info)


def _device_linear_fits(X, L) -> tuple[np.ndarray, np.ndarray]:
    """Per-device ridge fits ``log y ~ [1, x]``: (coefficients (n_devices, d + 1), residual mean squares)."""
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
    return np.array(betas), np.array(resid)


def _prior_from(betas: np.ndarray, resid: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, covariance, noise variance) of the Bayes prior from per-device linear fits."""
    cov = np.cov(betas, rowvar=False) if len(betas) > 1 else np.zeros((betas.shape[1], betas.shape[1]))
    return betas.mean(axis=0), cov + _PRIOR_JITTER * np.eye(betas.shape[1]), float(np.mean(resid))
