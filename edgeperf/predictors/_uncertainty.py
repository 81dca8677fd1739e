"""Predictive uncertainty of the joint predictor, calibrated leave-device-out (contract C1).

An adapted device's spread in log space is its strategy's leave-one-out RMS on the
target samples (``AdaptStrategy.log_std``) times one scale factor, calibrated in
``fit`` leave-hardware-family-out: the hardware families of the training devices
are dealt into :data:`N_FOLDS` folds; per fold, a joint model is refitted without
that fold's devices and without :data:`HELD_OUT_ARCH_SHARE` of the architectures,
each held-out device is adapted from HELP's budget (the reference architectures +
:data:`N_RANDOM` others from the fold's training architectures; through ``adapt.fit_robust``,
as ``JointPredictor.adapt`` does) and predicted on up
to :data:`EVAL_ARCHS` of the held-out architectures. The factor makes the 90%
central interval of those standardised log residuals nominal (``|z|`` quantile
0.90 = 1.645 x factor) and the one-sided 0.95 bound nominal (whichever needs the
larger factor). Fold models use at most :data:`FOLD_ROUNDS` boosting rounds
(cheaper, slightly less accurate: the factor errs on the wide side).

A training device's spread is the RMS of its in-sample log residuals (optimistic).

Quantiles (``predict_quantile``) of an adapted device use a robust variant of the same
studentised calibration: the device's own scale is the RMS of its leave-one-out log
residuals without the largest :data:`TRIM_SHARE` of them (:func:`robust_loo_scale`; one
unlucky measurement of 20 no longer widens every bound of the device), and the factor
``robust_scale`` is calibrated on the same leave-family-out residuals standardised by that
scale. On the leave-hardware-type-out splits of ``benchmarks/optimize.py`` this scale
tracks each device's true 95% error quantile more closely than the plain RMS (spread of
log(true quantile / scale) over held-out devices 0.35 vs 0.41); budget picks on held-out
phones lose 1.54 instead of 2.14 accuracy points (98 vs 100 % within budget), on server CPUs
about the same. Model files without ``robust_scale`` keep the RMS rule.

That own scale is still a noisy estimate from 20 residuals, so it is shrunk in log space toward
the calibration devices' typical one (``pooled_scale``, their geometric mean) with the weight
of :data:`SHRINK_WEIGHTS` that gives the tightest calibrated bounds on the calibration devices
(:func:`shrunk_scale`), and ``robust_scale`` is calibrated on residuals standardised by the
shrunk scales. Files without ``shrink_weight`` use the own scale alone.
"""

from __future__ import annotations

import numpy as np

__all__ = ["calibrate_log_std_scale", "trained_log_std", "robust_loo_scale", "shrunk_scale", "quantile_log_std",
           "UNCALIBRATED_SCALE", "N_FOLDS", "SHRINK_WEIGHTS"]

#: Scale used when the training devices cannot be split by hardware family.
UNCALIBRATED_SCALE = 2.0
#: Calibration folds (groups of hardware families), hence refits.
N_FOLDS = 3
#: Share of architectures each fold model does not see (the evaluation pool).
HELD_OUT_ARCH_SHARE = 0.2
#: Boosting rounds of a fold model at most.
FOLD_ROUNDS = 300
#: Held-out architectures scored per held-out device.
EVAL_ARCHS = 200
#: Random (non-reference) architectures measured per held-out device, besides the reference set.
N_RANDOM = 10
#: The standardised-residual quantile matched to its normal value (two-sided 90% interval).
CALIBRATION_QUANTILE = 0.90
#: The one-sided quantile budget picks use (q=0.95 upper bound); the scale covers both.
UPPER_QUANTILE = 0.95
#: Rows per training device used for its in-sample spread.
MAX_ROWS_FOR_STD = 2000
#: Share of an adapted device's leave-one-out residuals (the largest in size) left out of its
#: robust scale: 2 of HELP's 20 measurements.
TRIM_SHARE = 0.1
#: Weights of an adapted device's own robust scale against the pooled one of the calibration
#: devices (log space) that calibration tries; it keeps the one whose calibrated bounds are the
#: tightest on average over its held-out devices (1: the device's own scale alone, the rule
#: before). 20 leave-one-out residuals estimate some devices' spread poorly (NB-201: their
#: ratio to the true 95 % error quantile varies ~1.5-5x between devices and draws), others' well.
SHRINK_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def robust_loo_scale(loo_log_residuals) -> float:
    """RMS of the leave-one-out log residuals without the largest :data:`TRIM_SHARE` of them."""
    r = np.sort(np.abs(np.asarray(loo_log_residuals, dtype=np.float64)))
    keep = max(1, r.size - int(np.ceil(TRIM_SHARE * r.size)))
    return float(max(np.sqrt(np.mean(r[:keep] ** 2)), 1e-6))


def _shrink(own, pooled, weight):
    """``pooled ** (1 - weight) * own ** weight`` (own: one scale or an array of them)."""
    return np.exp((1.0 - weight) * np.log(pooled) + weight * np.log(own))


def shrunk_scale(own_scale: float, uncertainty: dict) -> float:
    """An adapted device's robust scale pulled toward the calibration devices' typical one:
    :func:`_shrink` with ``shrink_weight`` and ``pooled_scale`` (files without them: ``own``)."""
    w = float(uncertainty.get("shrink_weight", 1.0))
    return float(_shrink(own_scale, float(uncertainty.get("pooled_scale", own_scale)), w))


def quantile_log_std(strategy, uncertainty: dict) -> float:
    """The log-space spread behind an adapted device's quantiles: its robust leave-one-out
    scale, shrunk toward the pooled one (:func:`shrunk_scale`), times the calibrated
    ``robust_scale``, or (older files) the RMS rule."""
    if "robust_scale" in uncertainty:
        own = robust_loo_scale(strategy.loo_log_residuals_)
        return shrunk_scale(own, uncertainty) * float(uncertainty["robust_scale"])
    return float(strategy.log_std(1)[0] * uncertainty["scale"])


def _shrinkage(residuals: list, own_scales: list) -> dict:
    """The pooled scale (geometric mean of the calibration devices' own robust scales), the
    weight of :data:`SHRINK_WEIGHTS` whose calibrated bounds are the tightest on average over
    the devices, and that weight's factor (residuals standardised by the shrunk scales nominal)."""
    own = np.asarray(own_scales, dtype=np.float64)
    pooled = float(np.exp(np.mean(np.log(own))))
    best = None
    for w in SHRINK_WEIGHTS:
        scales = _shrink(own, pooled, w)
        factor = _gaussian_factor(np.concatenate([r / s for r, s in zip(residuals, scales)]))
        mean_log_bound = float(np.mean(np.log(factor * scales)))
        if best is None or mean_log_bound < best[0]:
            best = (mean_log_bound, float(w), factor)
    return {"robust_scale": best[2], "shrink_weight": best[1], "pooled_scale": pooled}


def _gaussian_factor(z: np.ndarray) -> float:
    """The factor that makes standardised residuals ``z`` nominal: the 90% central interval
    and the one-sided 0.95 bound, whichever needs the larger factor."""
    from scipy.stats import norm

    two_sided = np.quantile(np.abs(z), CALIBRATION_QUANTILE) / norm.ppf(0.5 + CALIBRATION_QUANTILE / 2)
    upper = np.quantile(z, UPPER_QUANTILE) / norm.ppf(UPPER_QUANTILE)  # what budget picks rely on
    return float(max(two_sided, upper, 1e-3))


def trained_log_std(pred, X: np.ndarray, L: np.ndarray, devs) -> dict[str, float]:
    """RMS of each training device's in-sample log residuals (at most MAX_ROWS_FOR_STD rows)."""
    out = {}
    for j, dev in enumerate(devs):
        rows = np.flatnonzero(np.isfinite(L[:, j]))[:MAX_ROWS_FOR_STD]
        r = L[rows, j] - pred._predict_log(X[rows].astype(np.float32), dev)
        out[dev] = float(max(np.sqrt(np.mean(r**2)), 1e-6))
    return out


def calibrate_log_std_scale(pred, table, step=lambda stage: None) -> dict:
    """The scale factor and how it was obtained (persisted in the model file)."""
    from edgeperf import datasets
    from edgeperf.predictors import adapt
    from edgeperf.predictors._data import log_matrix
    from edgeperf.predictors._joint import _Host

    info = {"strategy": pred.adapt_strategy, "quantile": CALIBRATION_QUANTILE, "folds": 0}
    devs = list(pred.train_devices_)
    family = {d: datasets.hardware_family(d) for d in devs}
    families = sorted(set(family.values()))
    seed = pred.random_state if isinstance(pred.random_state, (int, np.integer)) else 0
    rng = np.random.default_rng(seed)
    rng.shuffle(families)
    folds = [families[k::N_FOLDS] for k in range(min(N_FOLDS, len(families)))]
    archs, _, L = log_matrix(table.select(devices=devs), pred.metric_, devs)
    refs = set(pred.reference_archs_)
    others = np.array([i for i, a in enumerate(archs) if a not in refs])
    held_archs = set(rng.choice(others, int(HELD_OUT_ARCH_SHARE * others.size), replace=False).tolist()) \
        if others.size else set()
    train_rows = [i for i in range(len(archs)) if i not in held_archs]
    z, residuals, own_scales, n_devices = [], [], [], 0
    params = dict(pred.model_params or {})
    if pred.model == "xgboost":
        params["n_estimators"] = min(int(pred.model_.n_estimators), FOLD_ROUNDS)
    for fold in folds if len(folds) > 1 else []:
        held = [d for d in devs if family[d] in fold]
        keep = [d for d in devs if family[d] not in fold]
        sub = table.select(devices=keep, archs={archs[i] for i in train_rows})
        fold_pred, _ = type(pred)(**{**pred.get_params(), "model_params": params})._fit_model(sub, None, None, space_table=False)
        host = _Host(fold_pred)
        for dev in held:
            j = devs.index(dev)
            ref_rows = [i for i, a in enumerate(archs) if a in refs and np.isfinite(L[i, j])]
            pool = np.array([i for i in train_rows if archs[i] not in refs and np.isfinite(L[i, j])])
            ev_pool = np.array([i for i in held_archs if np.isfinite(L[i, j])])
            if pool.size < N_RANDOM or ev_pool.size < 5:
                continue
            ad = np.concatenate([ref_rows, rng.choice(pool, N_RANDOM, replace=False)]).astype(int)
            ev = rng.choice(ev_pool, min(EVAL_ARCHS, ev_pool.size), replace=False)
            Xa = host.encode([archs[i] for i in ad])
            data = adapt.AdaptData(archs=tuple(archs[i] for i in ad), X=Xa, logy=L[ad, j],
                                   basis_log=host.basis_log(Xa, host.basis_names),
                                   static=np.asarray(fold_pred.static_means_, dtype=np.float64))
            fitted, _ = adapt.fit_robust(adapt.get(pred.adapt_strategy), host, data)
            r = L[ev, j] - fitted.predict_log(host, host.encode([archs[i] for i in ev]))
            z.append(r / fitted.log_std(len(ev)))
            residuals.append(r)
            own_scales.append(robust_loo_scale(fitted.loo_log_residuals_))
            n_devices += 1
        step("uncertainty calibration")
    if not z:
        return {**info, "method": "uncalibrated (fewer than two hardware families or too few measurements)",
                "scale": UNCALIBRATED_SCALE, "n_devices": 0, "n_residuals": 0}
    z = np.concatenate(z)
    return {**info, "method": "leave-family-out", "folds": len(folds), "scale": _gaussian_factor(z),
            **_shrinkage(residuals, own_scales), "n_devices": n_devices,
            "n_residuals": int(z.size)}
