"""Fitting a strategy without the measurements that no smooth device model can explain.

Some measurements are right and still unlike every other architecture of the device: on the
Pixel 3 of HELP's NAS-Bench-201 table, 217 of the 341 cells whose output does not depend on
their input (no path of non-``none`` edges) take 0.003-0.3 ms instead of ~10 ms: that phone's
runtime folds such a network into a constant. In one draw of the phones split of
``benchmarks/optimize.py`` (training on 900 architectures), one such cell among the 20
adaptation measurements put the best cells' predictions ~3x too low and widened the device's
95 % quantile 16-fold. :func:`fit_robust` leaves such a measurement out of the fit: the one
with the largest leave-one-out log residual, when that residual is further from the others'
median than :data:`OUTLIER_Z` robust standard deviations (1.4826 x MAD) and than a factor
:data:`MIN_OUTLIER_RATIO`; at most :data:`MAX_OUTLIER_SHARE` of the measurements, one at a time.
The caller keeps the excluded measurements as measured (they are exact for their own
architecture, just not evidence about the others).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from edgeperf.predictors.adapt._base import MIN_MEASUREMENTS, AdaptData, AdaptHost, AdaptStrategy

__all__ = ["fit_robust", "OUTLIER_Z", "MIN_OUTLIER_RATIO", "MAX_OUTLIER_SHARE"]

#: Robust standard deviations (1.4826 x MAD of the leave-one-out log residuals) beyond which the
#: worst measurement is an outlier; a Gaussian residual passes this one time in ~1.7 million.
OUTLIER_Z = 5.0
#: ... and beyond this factor from what the other measurements imply: noise of a few percent is
#: never an outlier, however small the MAD of a device that fits very well.
MIN_OUTLIER_RATIO = 3.0
#: At most this share of the measurements is left out (2 of HELP's 20).
MAX_OUTLIER_SHARE = 0.1
#: The MAD of a standard normal variable.
_MAD_TO_STD = 1.4826


def _worst_outlier(loo_log_residuals: np.ndarray) -> "int | None":
    """Position of the measurement to leave out, or None."""
    r = np.asarray(loo_log_residuals, dtype=np.float64)
    dev = np.abs(r - np.median(r))
    worst = int(dev.argmax())
    spread = _MAD_TO_STD * float(np.median(np.delete(dev, worst)))
    if dev[worst] > max(OUTLIER_Z * spread, math.log(MIN_OUTLIER_RATIO)):
        return worst
    return None


def fit_robust(strategy: Callable[[], AdaptStrategy], host: AdaptHost, data: AdaptData) -> tuple[AdaptStrategy, tuple[int, ...]]:
    """A new ``strategy()`` (a strategy class, or any factory of unfitted strategies) fitted on
    ``data`` without its outlying measurements (module docstring): the fitted strategy and the
    positions in ``data`` of the measurements left out, in increasing order."""
    n = len(data.archs)
    fitted = strategy().fit(host, data)
    kept = np.arange(n)
    for _ in range(min(int(MAX_OUTLIER_SHARE * n), n - MIN_MEASUREMENTS - 1)):  # leave at least one check
        worst = _worst_outlier(fitted.loo_log_residuals_)
        if worst is None:
            break
        kept = np.delete(kept, worst)
        fitted = strategy().fit(host, data.subset(kept))
    return fitted, tuple(int(i) for i in np.setdiff1d(np.arange(n), kept))
