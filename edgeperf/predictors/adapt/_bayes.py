"""Linear models in the architecture encoding: ``bayes`` and ``nnls+bayes``.

- ``bayes``: a hierarchical-Bayes linear model on the architecture encoding whose
  Gaussian prior (mean, covariance) comes from per-device linear fits of the
  training devices (the host's ``bayes_prior``);
- ``nnls+bayes``: the mean (in log space) of ``nnls`` and ``bayes``, unless the
  target samples conflict with the Bayes prior: when their prior-predictive
  Mahalanobis distance exceeds the chi-square quantile :data:`PRIOR_CONFLICT_LEVEL`
  (a device unlike the training devices, where the prior pulls towards the wrong
  behaviour), ``nnls`` alone. Seen here: 0.1-0.4 per sample for public devices like
  the training ones; 2.9 for ONNX Runtime on a 2-core VM and 3-14 for batch-32/64
  GPUs against batch-1 training GPUs.
"""

from __future__ import annotations

import numpy as np

from edgeperf.errors import ModelFileError
from edgeperf.predictors.adapt._base import AdaptData, AdaptHost, AdaptStrategy, AffineForm, check_lengths
from edgeperf.predictors.adapt._combination import fit_combination, sparse_combination
from edgeperf.predictors.adapt._registry import register

__all__ = ["BayesStrategy", "NNLSBayesStrategy", "PRIOR_CONFLICT_LEVEL"]

#: Chi-square level of the prior-data conflict check of ``nnls+bayes``.
PRIOR_CONFLICT_LEVEL = 0.999
#: Share of ``nnls`` in the blend when the targets agree with the prior.
BLEND_SHARE = 0.5


def _design(X: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((X.shape[0], 1)), X.astype(np.float64)])


def fit_bayes(host: AdaptHost, X: np.ndarray, logy: np.ndarray) -> tuple[float, np.ndarray]:
    """Posterior-mean (intercept, weights) of the linear model under the host's prior."""
    mean, cov, noise = host.bayes_prior()
    Phi = _design(X)
    prec = np.linalg.inv(cov)
    A = prec + Phi.T @ Phi / noise
    beta = np.linalg.solve(A, prec @ mean + Phi.T @ logy / noise)
    return float(beta[0]), beta[1:]


def prior_conflict(host: AdaptHost, X: np.ndarray, logy: np.ndarray) -> float:
    """Mahalanobis distance of the targets from the prior's predictive distribution
    (chi-square with ``len(logy)`` degrees of freedom when the device fits the prior)."""
    mean, cov, noise = host.bayes_prior()
    Phi = _design(X)
    resid = logy - Phi @ mean
    pred_cov = Phi @ cov @ Phi.T + noise * np.eye(len(logy))
    return float(resid @ np.linalg.solve(pred_cov, resid))


def _check_encoding_width(name: str, weights: np.ndarray, host: AdaptHost) -> None:
    if weights.size != host.n_features:
        raise ModelFileError(
            f"strategy {name!r}: {weights.size} encoding weights, but the model encodes {host.n_features} features"
        )


@register("bayes")
class BayesStrategy(AdaptStrategy):
    """Hierarchical-Bayes linear model on the architecture encoding."""

    _float_state = ("bayes_intercept_",)
    _array_state = ("bayes_weights_",)

    def _fit(self, host, data: AdaptData) -> dict:
        b, w = fit_bayes(host, data.X, data.logy)
        return {"bayes_intercept_": b, "bayes_weights_": w}

    def predict_log(self, host, X):
        return self.bayes_intercept_ + X.astype(np.float64) @ self.bayes_weights_

    def affine_form(self):
        self._check_fitted()
        return AffineForm(float(self.bayes_intercept_), {}, np.asarray(self.bayes_weights_, dtype=np.float64))

    def check_host(self, host):
        _check_encoding_width(self.name, self.bayes_weights_, host)


@register("nnls+bayes")
class NNLSBayesStrategy(AdaptStrategy):
    """Mean of ``nnls`` and ``bayes`` in log space; ``nnls`` alone on a prior-data conflict."""

    _float_state = ("intercept_", "bayes_intercept_", "nnls_share_", "prior_conflict_per_sample_")
    _array_state = ("weights_", "bayes_weights_")
    _names_state = ("basis_",)

    def _fit(self, host, data: AdaptData) -> dict:
        basis = list(host.basis_names)
        b, w = fit_combination(data.columns(host, basis), data.logy, "nnls")
        bb, bw = fit_bayes(host, data.X, data.logy)
        conflict = prior_conflict(host, data.X, data.logy)
        from scipy.stats import chi2

        n = len(data.archs)
        share = 1.0 if conflict > chi2.ppf(PRIOR_CONFLICT_LEVEL, n) else BLEND_SHARE
        return {
            "basis_": basis, "intercept_": b, "weights_": w, "bayes_intercept_": bb, "bayes_weights_": bw,
            "nnls_share_": share, "prior_conflict_per_sample_": conflict / n,
        }

    def predict_log(self, host, X):
        out = self.nnls_share_ * (self.intercept_ + sparse_combination(host, X, self.basis_, self.weights_))
        if self.nnls_share_ < 1.0:
            out += (1.0 - self.nnls_share_) * (self.bayes_intercept_ + X.astype(np.float64) @ self.bayes_weights_)
        return out

    def affine_form(self):
        self._check_fitted()
        nnls = AffineForm(float(self.intercept_), {b: float(w) for b, w in zip(self.basis_, self.weights_) if w})
        out = nnls.scaled(self.nnls_share_)
        if self.nnls_share_ < 1.0:
            bayes = AffineForm(float(self.bayes_intercept_), {}, np.asarray(self.bayes_weights_, dtype=np.float64))
            out = out + bayes.scaled(1.0 - self.nnls_share_)
        return out

    def notes(self):
        if self.nnls_share_ < 1.0:
            return ()
        return (f"the measurements conflict with the training devices' prior ({self.prior_conflict_per_sample_:.1f} "
                "per sample): the device is unlike the training devices, so only the non-negative combination of "
                "training devices and compute is used",)

    def _check_state(self, state):
        check_lengths(self.name, weights=(state["weights_"].size, len(state["basis_"])))
        if not 0.0 <= state["nnls_share_"] <= 1.0:
            raise ModelFileError(f"strategy {self.name!r}: nnls_share_ must lie in [0, 1], got {state['nnls_share_']}")

    def check_host(self, host):
        _check_encoding_width(self.name, self.bayes_weights_, host)
        unknown = sorted(set(self.basis_) - set(host.basis_names))
        if unknown:
            raise ModelFileError(f"strategy {self.name!r}: basis devices {unknown} are not in the model")
