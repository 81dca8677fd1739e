"""Accuracy and ranking metrics of predicted against measured values.

Every function takes ``y_true`` (measured) and ``y_pred`` (predicted) as 1-D
array-likes of the same length, in the same unit (e.g. milliseconds).

- error metrics: :func:`mape` (percent), :func:`rmse` (unit of the data),
  :func:`accuracy_within` (fraction of predictions within +-``tolerance``
  relative error; :func:`acc_5` and :func:`acc_10` are the usual +-5% / +-10%);
- rank metrics: :func:`spearman` and :func:`kendall` handle ties (phones
  report whole milliseconds, so many values tie): Spearman's rho is Pearson's r
  of average ranks, Kendall's tau is the tau-b variant that corrects for ties
  in both series; :func:`top_k_overlap` is the share of the true best ``k``
  found in the predicted best ``k``;
- :func:`summary` computes all of them at once (a plain dict, JSON-ready).

Rank metrics of a constant series are undefined and return ``nan`` (not an
error: a device may time every architecture at the same whole millisecond).
"""

from __future__ import annotations

import math

import numpy as np

from edgeperf.errors import DataValidationError

__all__ = [
    "mape",
    "rmse",
    "accuracy_within",
    "acc_5",
    "acc_10",
    "spearman",
    "kendall",
    "top_k_overlap",
    "summary",
    "METRIC_NAMES",
]

#: Keys of :func:`summary`, in display order.
METRIC_NAMES = ("mape", "rmse", "acc_5", "acc_10", "spearman", "kendall")

TOLERANCE_5 = 0.05
TOLERANCE_10 = 0.10
PERCENT = 100.0


def _pair(y_true, y_pred, *, positive_true: bool = False) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise DataValidationError(
            f"expected y_true and y_pred of the same length, got {t.size} and {p.size}; "
            "pass one prediction per measured value"
        )
    if t.size == 0:
        raise DataValidationError("expected at least one value, got empty arrays")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise DataValidationError("expected finite values, got NaN or inf; drop unmeasured entries first")
    if positive_true and (t <= 0).any():
        raise DataValidationError(
            f"expected measured values > 0 for a relative error, got minimum {t.min()!r}"
        )
    return t, p


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent (``3.0`` means 3%)."""
    t, p = _pair(y_true, y_pred, positive_true=True)
    return float(np.mean(np.abs(p - t) / t) * PERCENT)


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, in the unit of the data."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def accuracy_within(y_true, y_pred, tolerance: float = TOLERANCE_10) -> float:
    """Fraction (0..1) of predictions whose relative error is at most ``tolerance`` (0.1 = +-10%)."""
    if not tolerance > 0:
        raise DataValidationError(f"expected a tolerance > 0 (0.1 means +-10%), got {tolerance!r}")
    t, p = _pair(y_true, y_pred, positive_true=True)
    return float(np.mean(np.abs(p - t) <= tolerance * t))


def acc_5(y_true, y_pred) -> float:
    """Fraction of predictions within +-5% of the measured value."""
    return accuracy_within(y_true, y_pred, TOLERANCE_5)


def acc_10(y_true, y_pred) -> float:
    """Fraction of predictions within +-10% of the measured value (nn-Meter's headline metric)."""
    return accuracy_within(y_true, y_pred, TOLERANCE_10)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation with average ranks for ties; ``nan`` if either series is constant."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return math.nan
    rt, rp = _average_ranks(t), _average_ranks(p)
    return float(np.corrcoef(rt, rp)[0, 1])


def kendall(y_true, y_pred) -> float:
    """Kendall's tau-b (tie-corrected); ``nan`` if either series is constant."""
    from scipy.stats import kendalltau

    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return math.nan
    return float(kendalltau(t, p, variant="b").statistic)


def top_k_overlap(y_true, y_pred, k: int, *, largest: bool = False) -> float:
    """Share (0..1) of the true best ``k`` items that are also among the predicted best ``k``.

    "Best" means smallest (fastest, cheapest) unless ``largest=True``. Ties at
    the k-th place are broken by position (stable sort), the same way in both series.
    """
    t, p = _pair(y_true, y_pred)
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= t.size:
        raise DataValidationError(f"expected an integer k in [1, {t.size}], got {k!r}")
    k = int(k)
    sign = -1.0 if largest else 1.0
    true_top = set(np.argsort(sign * t, kind="stable")[:k].tolist())
    pred_top = set(np.argsort(sign * p, kind="stable")[:k].tolist())
    return len(true_top & pred_top) / k


def summary(y_true, y_pred) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` plus ``n`` as a JSON-ready dict (MAPE in percent, acc as fractions)."""
    t, p = _pair(y_true, y_pred, positive_true=True)
    return {
        "n": int(t.size),
        "mape": mape(t, p),
        "rmse": rmse(t, p),
        "acc_5": acc_5(t, p),
        "acc_10": acc_10(t, p),
        "spearman": spearman(t, p),
        "kendall": kendall(t, p),
    }
