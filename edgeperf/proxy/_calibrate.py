"""A monotone map from a proxy's latency to the target's, fitted in log space.

Latencies of different devices differ by roughly a power law (a constant ratio
plus curvature), so the map works on ``log(ms)``. It never reverses the proxy's
order: every path below is non-decreasing, which the tests check with
hypothesis.

- 0 points: identity (the proxy's milliseconds are returned as they are).
- 1 point, or points whose proxy values are all equal: a shift in log space
  (one ratio ``target / proxy``).
- fewer than :data:`MIN_ISOTONIC_POINTS`: affine in log space, slope clipped
  to ``>= 0`` (a power law ``y = a * x**b``, ``b >= 0``).
- otherwise: isotonic regression in log space, linear interpolation inside the
  measured range and, outside it, linear extrapolation with the affine slope,
  so candidates slower or faster than anything measured still get distinct,
  ordered values.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from edgeperf.errors import AdaptationError, InvalidParameterError, NotFittedError

__all__ = ["MonotoneCalibrator", "MIN_ISOTONIC_POINTS"]

#: Fewest distinct proxy values before the isotonic fit replaces the affine one. With HELP's
#: budget of 20 target measurements an isotonic fit has flat steps that tie many candidates
#: at one value, and budget selection then picks the slowest of a tie (seen in the demo:
#: 2 of 10 picks met the budget); the affine map keeps every candidate distinct.
MIN_ISOTONIC_POINTS = 30
CALIBRATION_METHODS = ("auto", "affine", "isotonic", "shift")
#: Calibrated log-latencies are kept where ``exp`` stays finite and > 0 (clipping keeps the map
#: non-decreasing): a power law fitted on nearly equal proxy values (two points 0.7 % apart: an
#: exponent of ~100) extrapolates far out of range.
_LOG_MS_RANGE = (float(np.log(np.finfo(float).tiny)) + 1.0, float(np.log(np.finfo(float).max)) - 1.0)


class MonotoneCalibrator(RegressorMixin, BaseEstimator):
    """Non-decreasing map proxy ms -> target ms, fitted in log space.

    Parameters
    ----------
    method : {"auto", "affine", "isotonic", "shift"}
        ``auto`` picks by the number of distinct points (see the module doc);
        ``shift`` fits only the ratio (used when the target values carry no rank
        information, e.g. all equal).
    """

    def __init__(self, *, method: str = "auto"):
        self.method = method

    def fit(self, proxy_ms, target_ms):
        if self.method not in CALIBRATION_METHODS:
            raise InvalidParameterError(f"calibration method must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        x = np.asarray(proxy_ms, dtype=float).ravel()
        y = np.asarray(target_ms, dtype=float).ravel()
        if len(x) != len(y):
            raise AdaptationError(f"expected as many proxy as target values, got {len(x)} and {len(y)}")
        if np.any(~np.isfinite(x) | (x <= 0)) or np.any(~np.isfinite(y) | (y <= 0)):
            raise AdaptationError("calibration needs finite latencies > 0 ms on both sides")
        lx, ly = np.log(x), np.log(y)
        self.n_points_ = len(x)
        distinct = len(np.unique(lx))
        self.isotonic_ = None
        if len(x) == 0:
            self.kind_, self.slope_, self.intercept_ = "identity", 1.0, 0.0
        elif distinct < 2 or self.method == "shift":
            self.kind_, self.slope_, self.intercept_ = "shift", 1.0, float(np.mean(ly - lx))
        else:
            slope, intercept = np.polyfit(lx, ly, 1)
            if slope < 0:  # anti-monotone points: a flat map is the best non-decreasing affine fit
                slope, intercept = 0.0, float(np.mean(ly))
            self.slope_, self.intercept_ = float(slope), float(intercept)
            use_iso = self.method == "isotonic" or (self.method == "auto" and distinct >= MIN_ISOTONIC_POINTS)
            self.kind_ = "affine"
            if use_iso:
                from sklearn.isotonic import IsotonicRegression

                self.isotonic_ = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(lx, ly)
                self.x_min_, self.x_max_ = float(lx.min()), float(lx.max())
                self.kind_ = "isotonic"
        return self

    def predict_log(self, proxy_ms) -> np.ndarray:
        """Calibrated ``log(target ms)``."""
        if not hasattr(self, "kind_"):
            raise NotFittedError("MonotoneCalibrator is not fitted yet; call fit(proxy_ms, target_ms) first")
        lx = np.log(np.asarray(proxy_ms, dtype=float).ravel())
        if self.isotonic_ is None:
            out = self.intercept_ + self.slope_ * lx
        else:
            out = self.isotonic_.predict(lx)
            lo, hi = lx < self.x_min_, lx > self.x_max_
            # beyond the measured range: continue from the isotonic end value with the affine slope
            out[lo] = self.isotonic_.predict([self.x_min_])[0] + self.slope_ * (lx[lo] - self.x_min_)
            out[hi] = self.isotonic_.predict([self.x_max_])[0] + self.slope_ * (lx[hi] - self.x_max_)
        return np.clip(out, *_LOG_MS_RANGE)

    def predict(self, proxy_ms) -> np.ndarray:
        """Calibrated target latency in ms."""
        return np.exp(self.predict_log(proxy_ms))
