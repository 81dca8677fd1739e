"""``JointPredictor.fit(table, client=client)``: the same joint model, trained on a Dask cluster.

The table may be larger than the client's memory: a dask DataFrame of tidy rows (``space, arch,
device, metric, value``), a glob or list of CSV/Parquet files (e.g. a farm's ``farm/*.csv``, whose
``.devices.json`` sidecars give the static features), or a :class:`MeasurementTable`. Only small
per-device aggregates come back to the client: row counts, the reference-architecture values (the
signatures) and, for the Bayes prior, each device's Gram matrix of the architecture encoding. The
training matrix is built partition by partition on the workers and fed to ``xgboost.dask``; the
booster lands in the same :class:`XGBoostRegressor` state as a single-process fit, so the model
file has the same layout and loads without Dask.

The learned state is the one of ``JointPredictor._fit_model`` + ``fit`` (same attributes, same
meaning), built with ``_joint``'s own helpers: signatures (missing reference values imputed from a
model of that device alone), static features imputed by the training means, ``_embedding``, the
Bayes prior of ``_prior_from`` (from the per-device ridge fits, solved here from sufficient
statistics instead of ``_device_linear_fits``), ``space_log_table_`` for a finite space (the joint
model on every architecture of the space, on the client: it is small), each training device's
``log_std`` by ``trained_log_std`` on its first :data:`MAX_ROWS_FOR_STD` rows in table order (the
rows a single-process fit would use when the devices list architectures in the same order), and
empty ``adapters_`` / ``adapt_reports_`` / ``adapt_measurements_``. ``training_`` adds
``"trainer": "xgboost.dask"``.

Uncertainty: the leave-hardware-family-out calibration (``calibrate_log_std_scale``) refits fold
models on an in-memory :class:`MeasurementTable` and cannot run on a dask frame, so it is not run
here: ``uncertainty_`` is its documented not-calibrated fallback (scale
:data:`~edgeperf.predictors._uncertainty.UNCALIBRATED_SCALE`, ``folds`` / ``n_devices`` /
``n_residuals`` 0, ``method`` saying why), the same keys ``calibrate_log_std_scale`` returns and
what ``_check_uncertainty`` accepts on load. Adapted devices' quantiles are then wider than a
calibrated model's; fit without ``client`` for a calibrated scale.

Arch strings must be canonical (as edgeperf writes them), and a (device, arch) pair should appear
once: the distributed path does not deduplicate (that would need a shuffle of the whole table).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from edgeperf.errors import DataValidationError, InvalidParameterError

__all__ = ["fit_dask"]

_TIDY = ["space", "arch", "device", "metric", "value"]
#: Partitions per worker when a table in memory is handed to the cluster.
_PARTITIONS_PER_WORKER = 4


def _as_dask(table, client):
    """``(dask DataFrame of tidy rows, {device: DeviceSpec}, source)``."""
    import dask.dataframe as dd

    from edgeperf.datasets import MeasurementTable, read_devices_json, sidecar_path

    if isinstance(table, dd.DataFrame):
        return table, {}, "dask DataFrame"
    if isinstance(table, MeasurementTable):
        n = max(1, len(client.scheduler_info(n_workers=-1)["workers"]) * _PARTITIONS_PER_WORKER)
        return dd.from_pandas(table.frame[_TIDY], npartitions=n), dict(table.devices_info), str(table.source)
    paths = [table] if isinstance(table, (str, os.PathLike)) else list(table)
    files = sorted(f for p in paths for f in (glob.glob(str(p)) or [str(p)]))
    if not files or not all(os.path.isfile(f) for f in files):
        from edgeperf.predictors._data import as_table

        return _as_dask(as_table(table if isinstance(table, (str, os.PathLike)) else files[0]), client)
    specs = {}
    for f in files:
        if sidecar_path(f).exists():
            specs.update(read_devices_json(sidecar_path(f)))
    if all(f.endswith(".parquet") for f in files):
        frame = dd.read_parquet(files, columns=_TIDY)
    else:
        frame = dd.read_csv(files, usecols=_TIDY, dtype={"space": str, "arch": str, "device": str, "metric": str,
                                                         "value": "float64"}, blocksize="64MB")
    return frame, specs, ",".join(files) if len(files) <= 3 else f"{files[0]} and {len(files) - 1} more"


def _features(part, *, space, encoding, devices, emb, offsets, n_cols):
    """One partition's rows as the joint model's float32 training matrix (+ label column)."""
    import pandas as pd

    from edgeperf import spaces
    from edgeperf.predictors._base import encode_archs

    idx = pd.Categorical(part["device"], categories=devices).codes
    out = np.empty((len(part), n_cols + 1), dtype=np.float32)
    if len(part):
        X = encode_archs(spaces.get(space), encoding, part["arch"].tolist())
        out[:, : emb.shape[1]] = emb[idx]
        out[:, emb.shape[1] : n_cols] = X
        out[:, n_cols] = np.log(part["value"].to_numpy(dtype=np.float64)) - offsets[idx]
    return pd.DataFrame(out, columns=[f"f{i}" for i in range(n_cols)] + ["label"], index=part.index)


def _gram(part, *, space, encoding, devices):
    """Per device: (Phi'Phi, Phi'y, y'y, n) with Phi = [1, encoding], y = log value."""
    from edgeperf import spaces
    from edgeperf.predictors._base import encode_archs

    out = {}
    if not len(part):
        return out
    X = encode_archs(spaces.get(space), encoding, part["arch"].tolist()).astype(np.float64)
    Phi = np.hstack([np.ones((len(part), 1)), X])
    y = np.log(part["value"].to_numpy(dtype=np.float64))
    dev = part["device"].to_numpy()
    for d in np.unique(dev):
        if d not in devices:
            continue
        m = dev == d
        A, t = Phi[m], y[m]
        out[d] = (A.T @ A, A.T @ t, float(t @ t), int(m.sum()))
    return out


def _merge(a, b):
    out = dict(a)
    for d, (g, h, s, n) in b.items():
        if d in out:
            g0, h0, s0, n0 = out[d]
            out[d] = (g0 + g, h0 + h, s0 + s, n0 + n)
        else:
            out[d] = (g, h, s, n)
    return out


def _heads(part, n):
    """The first ``n`` rows of each device (table order)."""
    return part[["device", "arch", "value"]].groupby("device", sort=False).head(n)


def _merge_heads(a, b, n):
    import pandas as pd

    return _heads(pd.concat([a, b]), n)  # a comes before b in the table


def _tree_sum(items, combine=_merge):
    import dask

    while len(items) > 1:
        items = [dask.delayed(combine)(*items[i : i + 2]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _linear_fits(grams, devs, n_features):
    """``_device_linear_fits`` from each device's sufficient statistics: (coefficients, residual mean squares)."""
    from edgeperf.predictors._joint import _PRIOR_RIDGE

    penalty = _PRIOR_RIDGE * np.eye(n_features + 1)
    penalty[0, 0] = 0.0  # intercept unpenalised
    betas, resid = [], []
    for d in devs:
        G, h, s, n = grams[d]
        beta = np.linalg.solve(G + penalty, h)
        betas.append(beta)
        resid.append((s - 2 * beta @ h + beta @ G @ beta) / n)  # mean squared residual, expanded
    return np.array(betas), np.array(resid)


def _uncalibrated(est) -> dict:
    """``calibrate_log_std_scale``'s not-calibrated result (see the module docstring)."""
    from edgeperf.predictors._uncertainty import CALIBRATION_QUANTILE, UNCALIBRATED_SCALE

    return {"strategy": est.adapt_strategy, "quantile": CALIBRATION_QUANTILE, "folds": 0,
            "method": "uncalibrated (trained with xgboost.dask: no leave-family-out refits; fit without client "
                      "to calibrate)",
            "scale": UNCALIBRATED_SCALE, "n_devices": 0, "n_residuals": 0}


def fit_dask(est, table, devices=None, *, client):
    """Fit ``est`` (a JointPredictor) on the cluster of ``client``; returns ``est``.

    The learned state is that of a single-process ``fit`` (see the module docstring), except
    ``uncertainty_``: not calibrated (``calibrate_log_std_scale`` needs an in-memory table), the
    documented fallback scale ``UNCALIBRATED_SCALE``. Learned attributes are assigned only once
    everything has succeeded, as in ``fit``.
    """
    import dask
    import xgboost.dask as dxgb

    from edgeperf import spaces
    from edgeperf.predictors._base import GRAPH_ENCODING, cost_range_of, encode_archs
    from edgeperf.predictors._joint import (
        MIN_ADAPT_MEASUREMENTS,
        STATIC_FIELDS,
        _IMPUTE_TREES,
        _JOINT_DEFAULTS,
        _embedding,
        _prior_from,
        _static_vector,
    )
    from edgeperf.predictors._params import Progress
    from edgeperf.predictors._reference import reference_archs
    from edgeperf.predictors._regressors import XGBoostRegressor, make_regressor
    from edgeperf.predictors._uncertainty import MAX_ROWS_FOR_STD, trained_log_std

    if est.model != "xgboost":
        raise InvalidParameterError(f"fit(..., client=) trains with xgboost.dask: expected model='xgboost', got {est.model!r}")
    est._check_params(None)
    params = dict(_JOINT_DEFAULTS)
    params.update(est.model_params or {})
    reg = make_regressor("xgboost", est.random_state, params)
    reg._check_params()  # before any work
    frame, specs_info, source = _as_dask(table, client)
    missing_cols = [c for c in _TIDY if c not in frame.columns]
    if missing_cols:
        raise DataValidationError(f"expected tidy columns {_TIDY}, missing {missing_cols}", path=source)
    frame = frame[frame["metric"] == est.metric][_TIDY]
    if devices is not None:
        frame = frame[frame["device"].isin(list(devices))]
    space_names, counts, bad = dask.compute(frame["space"].unique(), frame.groupby("device").size(), (frame["value"] <= 0).sum())
    space_names = sorted(space_names)
    if len(counts) == 0:
        raise DataValidationError(f"expected {est.metric!r} measurements, got none", path=source)
    if len(space_names) != 1:
        raise DataValidationError(f"expected one search space, got {space_names}", path=source)
    if int(bad):
        raise DataValidationError(f"expected {est.metric} > 0 everywhere, found {int(bad)} values <= 0", path=source)
    space = spaces.get(space_names[0])
    encoding = est._check_encoding(space)
    if encoding == GRAPH_ENCODING:
        raise InvalidParameterError("fit(..., client=) needs an analytic encoding (onehot, structural), not 'graph'")
    devs = list(devices) if devices is not None else sorted(counts.index)
    absent = [d for d in devs if d not in counts.index or counts[d] < MIN_ADAPT_MEASUREMENTS]
    if absent:
        d = absent[0]
        n = int(counts[d]) if d in counts.index else 0
        raise DataValidationError(f"device {d!r} has {n} measurements; expected at least {MIN_ADAPT_MEASUREMENTS}", path=source)

    def encode(archs):
        return encode_archs(space, encoding, archs)

    refs = reference_archs(space.name, est.reference_set)
    Xref = encode(refs)
    ref_rows = frame[frame["arch"].isin(refs)].compute()
    ref_log = ref_rows.assign(value=np.log(ref_rows["value"])).groupby(["device", "arch"])["value"].mean()
    signatures, imputed = {}, {}
    for dev in devs:
        sig = np.array([ref_log.get((dev, r), np.nan) for r in refs])
        missing = ~np.isfinite(sig)
        if missing.any():  # impute from a model of this device alone (one device's rows fit in memory)
            own = frame[frame["device"] == dev].compute()
            helper = XGBoostRegressor(n_estimators=_IMPUTE_TREES, random_state=est.random_state)
            sig[missing] = helper.fit(encode(own["arch"].tolist()), np.log(own["value"].to_numpy())).predict(Xref[missing])
            imputed[dev] = int(missing.sum())
        signatures[dev] = sig

    specs = [specs_info.get(d) for d in devs]
    fields = [f for f in STATIC_FIELDS if any(_static_vector(s, [f])[0] == _static_vector(s, [f])[0] for s in specs)]
    static = np.array([_static_vector(s, fields) for s in specs], dtype=np.float64).reshape(len(devs), len(fields))
    static_means = [float(np.nanmean(static[:, k])) for k in range(len(fields))]
    static = np.where(np.isfinite(static), static, np.asarray(static_means))  # what the embedding uses
    device_params = {
        dev: {"signature": signatures[dev].tolist(), "static": static[j].tolist(), "n_train": int(counts[dev])}
        for j, dev in enumerate(devs)
    }
    emb = np.array([_embedding(signatures[d], static[j], static_means) for j, d in enumerate(devs)], dtype=np.float32)
    offsets = np.array([signatures[d].mean() for d in devs])
    n_features = int(Xref.shape[1])
    n_cols = emb.shape[1] + n_features

    parts = frame.to_delayed()
    grams = _tree_sum([dask.delayed(_gram)(p, space=space.name, encoding=encoding, devices=set(devs)) for p in parts])
    heads = _tree_sum([dask.delayed(_heads)(p, MAX_ROWS_FOR_STD) for p in parts],
                      lambda a, b: _merge_heads(a, b, MAX_ROWS_FOR_STD))
    feats = frame.map_partitions(
        _features, space=space.name, encoding=encoding, devices=devs, emb=emb, offsets=offsets, n_cols=n_cols,
        meta={**{f"f{i}": np.float32 for i in range(n_cols)}, "label": np.float32},
    )
    dtrain = dxgb.DaskDMatrix(client, feats[[f"f{i}" for i in range(n_cols)]], feats["label"])
    booster = dxgb.train(client, reg._params(), dtrain, num_boost_round=int(reg.n_estimators))["booster"]
    raw = np.frombuffer(bytes(booster.save_raw("json")), dtype=np.uint8)
    model = reg._import_state({"n_features_in": n_cols}, {"booster_json": raw})
    grams, heads = dask.compute(grams, heads)
    X_std = encode(heads["arch"].tolist())  # in-memory sample of the training rows (<= MAX_ROWS_FOR_STD a device)

    state = {
        "space_": space.name, "encoding_": encoding, "metric_": est.metric, "n_features_": n_features,
        "static_fields_": fields, "static_means_": static_means, "device_params_": device_params,
        "model_": model, "reference_archs_": refs, "train_devices_": list(devs), "adapters_": {},
        "adapt_reports_": {}, "adapt_measurements_": {}, "cost_range_": cost_range_of(space, encoding, X_std), "devices_": list(devs),
        "training_": {
            "source": source,
            "n_rows": int(sum(int(counts[d]) for d in devs)),
            "imputed_reference_values": imputed,
            "trainer": "xgboost.dask",
        },
    }
    state["prior_mean_"], state["prior_cov_"], state["prior_noise_var_"] = _prior_from(
        *_linear_fits(grams, devs, n_features))
    fitted = type(est)(**est.get_params())
    for k, v in state.items():
        setattr(fitted, k, v)
    fitted._reset_caches()
    fitted.space_log_table_ = fitted._space_log_table(Progress(None, len(devs)))
    fitted._reset_caches()
    dev_col = heads["device"].to_numpy()
    log_value = np.log(heads["value"].to_numpy(dtype=np.float64))
    for dev in devs:  # after the table: lookups, not the model
        m = dev_col == dev
        device_params[dev]["log_std"] = trained_log_std(fitted, X_std[m], log_value[m][:, None], [dev])[dev]
    fitted.uncertainty_ = _uncalibrated(est)
    for k, v in vars(fitted).items():
        if k.endswith("_") and not k.startswith("_"):
            setattr(est, k, v)
    est._reset_caches()
    return est
