"""The joint model fed the new device's signature: ``signature`` and ``signature+calibration``.

The signature is the device's log-metric on the reference architectures: measured
where the target samples include them, otherwise predicted by a ``combination`` fit
of the training devices. ``signature+calibration`` then fits an affine map in log
space on the target samples.
"""

from __future__ import annotations

import numpy as np

from edgeperf.errors import ModelFileError
from edgeperf.predictors.adapt._base import AdaptData, AdaptHost, AdaptStrategy, check_lengths
from edgeperf.predictors.adapt._combination import fit_combination
from edgeperf.predictors.adapt._registry import register

__all__ = ["SignatureStrategy", "CalibratedSignatureStrategy", "fit_affine"]


def fit_affine(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares ``target = a + b * pred`` with b > 0 (else a pure shift)."""
    pc = pred - pred.mean()
    denom = float(pc @ pc)
    b = float(pc @ (target - target.mean()) / denom) if denom > 0 else 1.0
    if not b > 0:
        b = 1.0
    a = float(target.mean() - b * pred.mean())
    return a, b


def _signature(host: AdaptHost, data: AdaptData) -> tuple[np.ndarray, int]:
    basis = list(host.train_devices)
    b, w = fit_combination(data.columns(host, basis), data.logy, "combination")
    refs = list(host.reference_archs)
    ref_pred = b + host.basis_log(host.encode(refs), basis) @ w
    measured = dict(zip(data.archs, data.logy))
    sig = np.array([measured.get(r, ref_pred[i]) for i, r in enumerate(refs)], dtype=np.float64)
    return sig, int(sum(r in measured for r in refs))


@register("signature")
class SignatureStrategy(AdaptStrategy):
    """The joint model with the device's (measured or imputed) signature."""

    _float_state = ("n_reference_measured_",)
    _array_state = ("signature_", "static_")

    def _fit(self, host, data: AdaptData) -> dict:
        sig, n_measured = _signature(host, data)
        return {"signature_": sig, "static_": np.asarray(data.static, np.float64), "n_reference_measured_": n_measured}

    def predict_log(self, host, X):
        return host.joint_log(X, self.signature_, self.static_)

    def check_host(self, host):
        check_lengths(self.name, signature=(self.signature_.size, len(host.reference_archs)))
        width = getattr(host, "n_static", None)
        if width is not None and self.static_.size != width:
            raise ModelFileError(f"strategy {self.name!r}: {self.static_.size} static features, expected {width}")


@register("signature+calibration")
class CalibratedSignatureStrategy(SignatureStrategy):
    """``signature``, then an affine map in log space fitted on the target samples."""

    _float_state = ("n_reference_measured_", "calibration_shift_", "calibration_slope_")

    def _fit(self, host, data: AdaptData) -> dict:
        state = super()._fit(host, data)
        pred = host.joint_log(data.X, state["signature_"], state["static_"])
        a, b = fit_affine(pred, data.logy)
        return {**state, "calibration_shift_": a, "calibration_slope_": b}

    def predict_log(self, host, X):
        return self.calibration_shift_ + self.calibration_slope_ * super().predict_log(host, X)

    def _check_state(self, state):
        if not state["calibration_slope_"] > 0:
            raise ModelFileError(f"strategy {self.name!r}: calibration slope must be > 0")
