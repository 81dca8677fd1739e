"""Few-shot fits for devices unlike the training devices: the nearest-devices ensemble.

Candidates are "devices whose latency we can compute for any architecture": the training
devices (through the joint model), the analytic pseudo-devices (MACs, params, memory traffic)
and a bank of synthetic devices (:mod:`edgeperf.datasets.synthetic`, exact). Each candidate is
fitted to the target's few measurements by an affine map in log space; the ``k`` candidates
with the smallest leave-one-out error are averaged (NASFLAT's "initialise from the device
that agrees best with the target samples", made robust by averaging several, with synthetic
hardware widening what "nearest" can find).
"""

from __future__ import annotations

import numpy as np

__all__ = ["affine_loo_errors", "fit_nearest", "predict_nearest"]


def affine_loo_errors(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out mean squared error of ``y ~ a + b z`` for every column ``z`` of ``Z``."""
    n = y.size
    Zc = Z - Z.mean(axis=0)
    yc = y - y.mean()
    sxx = (Zc**2).sum(axis=0)
    b = np.where(sxx > 0, (Zc * yc[:, None]).sum(axis=0) / np.where(sxx > 0, sxx, 1.0), 0.0)
    resid = yc[:, None] - Zc * b
    lev = 1.0 / n + np.where(sxx > 0, Zc**2 / np.where(sxx > 0, sxx, 1.0), 0.0)
    loo = resid / np.clip(1.0 - lev, 1e-6, None)
    err = (loo**2).mean(axis=0)
    return np.where(b > 0, err, np.inf)  # a device that runs the target's order backwards is no model


def fit_nearest(Z: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns, intercepts and slopes of the ``k`` candidates that fit ``y`` best (log space)."""
    err = affine_loo_errors(Z, y)
    order = np.argsort(err, kind="stable")[: max(1, min(k, int(np.isfinite(err).sum()) or 1))]
    zs = Z[:, order]
    zm = zs.mean(axis=0)
    zc = zs - zm
    sxx = (zc**2).sum(axis=0)
    b = np.where(sxx > 0, (zc * (y - y.mean())[:, None]).sum(axis=0) / np.where(sxx > 0, sxx, 1.0), 0.0)
    b = np.where(b > 0, b, 0.0)
    a = y.mean() - b * zm
    return order, a, b


def predict_nearest(Z: np.ndarray, columns, intercepts, slopes) -> np.ndarray:
    """Mean of the chosen candidates' affine predictions (log space)."""
    return (intercepts + Z[:, columns] * slopes).mean(axis=1)
