"""``nnls+synthetic``: the ``nnls`` combination with the best-fitting synthetic devices added.

A device unlike every training device (a GPU when only phones and CPUs were measured) may still
behave like some plausible analytic device. The strategy scores a fixed bank of
:data:`N_BANK` synthetic devices (:mod:`edgeperf.datasets.synthetic`: random roofline models with
launch overheads, parallel units, precision, batch size and per-operator quirks) on the target's
measurements, keeps the ``max(2, n // 2)`` whose affine fit in log space has the smallest
leave-one-out error (NASFLAT's "start from the device that agrees best with the samples", with
synthetic hardware widening the choice), and fits non-negative weights over the training devices,
the analytic pseudo-devices and those synthetic devices.

Measured on the adversarial splits of ``benchmarks/fewshot_unseen.py`` (n = 20): better than the
default ``nnls+bayes`` on NAS-Bench-201 (mean 0.892 vs 0.856; GPUs with no GPU in training 0.907
vs 0.821), worse on FBNet (0.723 vs 0.808) and OFA (0.786 vs 0.802), where the synthetic family
fits real devices less well. So it is an option, not the default.
"""

from __future__ import annotations

import numpy as np

from edgeperf.errors import EdgePerfError, ModelFileError
from edgeperf.predictors.adapt._base import AdaptData, AdaptHost, AdaptStrategy, check_lengths, onehot_space
from edgeperf.predictors.adapt._combination import fit_combination
from edgeperf.predictors.adapt._registry import register

__all__ = ["SyntheticNNLSStrategy", "N_BANK", "BANK_SEED", "affine_loo_errors"]

#: Synthetic devices scored per adaptation, and the seed of that bank (fixed: a model file names
#: the chosen devices, which regenerate exactly from the name).
N_BANK = 1000
BANK_SEED = 0


def affine_loo_errors(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out mean squared error of ``y ~ a + b z`` for every column ``z`` of ``Z``
    (``inf`` where the slope is not positive: a device that orders the target backwards)."""
    n = y.size
    Zc = Z - Z.mean(axis=0)
    yc = y - y.mean()
    sxx = (Zc**2).sum(axis=0)
    safe = np.where(sxx > 0, sxx, 1.0)
    b = np.where(sxx > 0, (Zc * yc[:, None]).sum(axis=0) / safe, 0.0)
    lev = 1.0 / n + np.where(sxx > 0, Zc**2 / safe, 0.0)
    loo = (yc[:, None] - Zc * b) / np.clip(1.0 - lev, 1e-6, None)
    return np.where(b > 0, (loo**2).mean(axis=0), np.inf)


# The bank per space, prepared for scoring (a memo of deterministic values, not configuration).
_BANKS: dict[str, object] = {}


def _bank(space: str, n_choices: int):
    from edgeperf.datasets.synthetic import device_bank, synthetic_devices

    if space not in _BANKS:
        _BANKS[space] = device_bank(synthetic_devices(space, N_BANK, seed=BANK_SEED), n_choices)
    return _BANKS[space]


def _bank_log(space: str, bank, X: np.ndarray) -> np.ndarray:
    """(n, devices) log latencies of a prepared synthetic bank on encoded one-hot rows."""
    from edgeperf.datasets.synthetic import bank_latency_ms, onehot_layer_costs

    return np.log(bank_latency_ms(bank, onehot_layer_costs(space, X))).T


@register("nnls+synthetic")
class SyntheticNNLSStrategy(AdaptStrategy):
    """Non-negative combination of training, analytic and best-fitting synthetic devices."""

    _float_state = ("intercept_",)
    _array_state = ("weights_",)
    _names_state = ("basis_", "synthetic_")

    def _fit(self, host: AdaptHost, data: AdaptData) -> dict:
        space = self._space(host)
        bank = _bank(space, data.X.shape[1])
        S = _bank_log(space, bank, data.X)
        keep = max(2, len(data.archs) // 2)
        top = np.argsort(affine_loo_errors(S, data.logy), kind="stable")[:keep]
        basis = list(host.basis_names)
        b, w = fit_combination(np.hstack([data.columns(host, basis), S[:, top]]), data.logy, "nnls")
        return {"basis_": basis, "synthetic_": [bank.devices[i].name for i in top], "intercept_": b, "weights_": w}

    def _space(self, host) -> str:
        return onehot_space(host, self.name)

    def _chosen(self, n_choices: int):
        """The chosen synthetic devices, prepared (rebuilt when the state changes)."""
        from edgeperf.datasets.synthetic import device_bank, synthetic_device

        if getattr(self, "_chosen_names", None) != self.synthetic_:
            self._chosen_bank = device_bank([synthetic_device(n) for n in self.synthetic_], n_choices)
            self._chosen_names = list(self.synthetic_)
        return self._chosen_bank

    def predict_log(self, host, X):
        Z = np.hstack([host.basis_log(X, self.basis_), _bank_log(self._space(host), self._chosen(X.shape[1]), X)])
        return self.intercept_ + Z @ self.weights_

    def _check_state(self, state):
        from edgeperf.datasets.synthetic import synthetic_device

        check_lengths(self.name, weights=(state["weights_"].size, len(state["basis_"]) + len(state["synthetic_"])))
        for n in state["synthetic_"]:
            try:
                synthetic_device(n)
            except EdgePerfError as exc:
                raise ModelFileError(f"strategy {self.name!r}: {exc}") from None

    def check_host(self, host):
        unknown = sorted(set(self.basis_) - set(host.basis_names))
        if unknown:
            raise ModelFileError(f"strategy {self.name!r}: basis devices {unknown} are not in the model")
        wrong = [n for n in self.synthetic_ if n.split("-")[1] != host.space]
        if wrong:
            raise ModelFileError(f"strategy {self.name!r}: synthetic devices {wrong} are not of space {host.space!r}")
