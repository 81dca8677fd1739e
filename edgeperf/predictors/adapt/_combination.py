"""Linear combinations of the training devices' log predictions: ``combination``, ``ridge``, ``nnls``.

``log y = b + sum_k w_k log yhat_k``:

- ``combination``: ridge-shrunk towards equal weights (the average device), the
  shrinkage chosen by leave-one-out on the target samples;
- ``ridge``: the same, shrunk towards zero weights;
- ``nnls``: non-negative least squares; besides the training devices its basis holds
  the analytic pseudo-devices (``@macs``, ``@params``, ``@mem_bytes``) where the host
  has them, so a device unlike every training device (an accelerator, a large batch,
  another runtime) can still be fitted as a power law of its compute.
"""

from __future__ import annotations

import math

import numpy as np

from edgeperf.errors import ModelFileError
from edgeperf.predictors.adapt._base import AdaptData, AdaptHost, AdaptStrategy, AffineForm, check_lengths
from edgeperf.predictors.adapt._registry import register

__all__ = ["CombinationStrategy", "RidgeStrategy", "NNLSStrategy", "fit_combination", "sparse_combination"]

#: Ridge strengths tried by leave-one-out in the shrunk combinations.
ALPHAS = np.logspace(-3, 3, 13)


def fit_combination(Z: np.ndarray, y: np.ndarray, kind: str) -> tuple[float, np.ndarray]:
    """Intercept and weights of ``y ~ b + Z w`` (``kind``: combination, ridge or nnls)."""
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
    for alpha in ALPHAS:
        M = np.linalg.inv(G + alpha * np.eye(k))
        v = M @ Zc.T @ rc
        H = Zc @ M @ Zc.T + 1.0 / n  # hat matrix incl. the intercept
        loo = (rc - Zc @ v) / np.clip(1.0 - np.diag(H), 1e-6, None)
        err = float(np.mean(loo**2))
        if err < best:
            best, best_v = err, v
    w = w0 + best_v
    return float(ym - zm @ w), w


def sparse_combination(host: AdaptHost, X: np.ndarray, basis, weights: np.ndarray) -> np.ndarray:
    """``basis_log(X) @ weights`` evaluating only the basis columns with a non-zero weight
    (non-negative least squares keeps few: each column skipped is a joint-model pass saved)."""
    used = np.flatnonzero(weights)
    if used.size == 0:
        return np.zeros(X.shape[0])
    return host.basis_log(X, [basis[i] for i in used]) @ weights[used]


class _LinearBasis(AdaptStrategy):
    """``b + Z w`` over named basis columns."""

    kind = "combination"
    _float_state = ("intercept_",)
    _array_state = ("weights_",)
    _names_state = ("basis_",)

    def _basis(self, host: AdaptHost) -> list[str]:
        return list(host.train_devices)

    def _fit(self, host, data: AdaptData) -> dict:
        basis = self._basis(host)
        b, w = fit_combination(data.columns(host, basis), data.logy, self.kind)
        return {"basis_": basis, "intercept_": b, "weights_": w}

    def predict_log(self, host, X):
        return self.intercept_ + sparse_combination(host, X, self.basis_, self.weights_)

    def affine_form(self):
        self._check_fitted()
        return AffineForm(float(self.intercept_), {b: float(w) for b, w in zip(self.basis_, self.weights_) if w})

    def _check_state(self, state):
        check_lengths(self.name, weights=(state["weights_"].size, len(state["basis_"])))

    def check_host(self, host):
        unknown = sorted(set(self.basis_) - set(host.basis_names))
        if unknown:
            raise ModelFileError(f"strategy {self.name!r}: basis devices {unknown} are not in the model")


@register("combination")
class CombinationStrategy(_LinearBasis):
    """Combination of the training devices, shrunk towards the average device."""

    kind = "combination"


@register("ridge")
class RidgeStrategy(_LinearBasis):
    """Combination of the training devices, shrunk towards zero."""

    kind = "ridge"


@register("nnls")
class NNLSStrategy(_LinearBasis):
    """Non-negative combination of the training devices and the analytic pseudo-devices."""

    kind = "nnls"

    def _basis(self, host):
        return list(host.basis_names)
