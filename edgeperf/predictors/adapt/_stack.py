"""``stack``: a per-target choice among strategies, made on the target's own measurements only.

No single strategy wins on every kind of unseen device: the additive device models ``analytic``
and ``compact`` are far better than ``nnls+bayes`` where latency adds up per layer in a way the
training devices do not share (NAS-Bench-201 on GPUs, CPUs, phones; FBNet on GPUs, for ``compact``),
and worse where the training devices already know the target's behaviour. ``stack`` fits every candidate of
:data:`CANDIDATES` on the target's ``n`` measurements and computes each one's leave-one-out
predictions. The reference candidate (``nnls+bayes``, the previous default) is always used; another
one joins only where its leave-one-out squared error is lower by more than :data:`SE_GATE` paired
standard errors (the one-standard-error rule). The used candidates are combined with the convex
weights that minimise the squared error of their leave-one-out predictions (stacked
generalisation, Wolpert 1992 / Breiman 1996). It never looks at any other device.

Its own leave-one-out residuals (for the adapt report and ``return_std``) redo the gate and the
weights without each measurement, on the candidates' leave-one-out predictions, so they are out of
sample for the weights too.

Measured on the adversarial splits of ``benchmarks/fewshot_unseen.py`` (n = 20, 2 seeds, mean over
splits / worst split), against ``nnls+bayes``: NAS-Bench-201 0.935 / 0.874 vs 0.864 / 0.821, FBNet
0.859 / 0.759 vs 0.808 / 0.758, OFA 0.821 / 0.613 vs 0.802 / 0.512; hence the default. Without
``compact`` among the candidates: 0.938 / 0.881, 0.818 / 0.764, 0.821 / 0.605.
"""

from __future__ import annotations

import numpy as np

from edgeperf.errors import ModelFileError
from edgeperf.predictors.adapt._base import AdaptData, AdaptHost, AdaptStrategy, check_lengths
from edgeperf.predictors.adapt._analytic import AnalyticStrategy
from edgeperf.predictors.adapt._registry import get, register

__all__ = ["StackStrategy", "CANDIDATES", "stack_weights"]

#: The strategies ``stack`` chooses among (those the host supports); the first is the reference.
CANDIDATES = ("nnls+bayes", "analytic", "compact", "nnls", "bayes")
#: Another candidate joins the reference only where its leave-one-out squared error is lower by
#: more than this many paired standard errors (the one-standard-error rule of cross-validation:
#: with ~20 noisy measurements, a smaller leave-one-out error alone is often luck).
SE_GATE = 1.0
#: Weight of the sum-to-one row in the constrained least squares (relative to the data rows).
_SUM_ROW_WEIGHT = 1e3


def stack_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimise ``||y - P w||`` (``P``: one column per
    candidate of out-of-sample predictions of ``y``)."""
    from scipy.optimize import nnls

    k = P.shape[1]
    scale = _SUM_ROW_WEIGHT * max(float(np.abs(P).max()), 1.0)
    A = np.vstack([P, np.full((1, k), scale)])
    w, _ = nnls(A, np.append(y, scale))
    if not w.any():
        w = np.full(k, 1.0 / k)
    return w / w.sum()


def gated_weights(P: np.ndarray, y: np.ndarray, z: float = SE_GATE) -> np.ndarray:
    """:func:`stack_weights` over the reference column 0 and the columns whose squared errors beat
    it by more than ``z`` paired standard errors; zero weight for the others."""
    E = (P - y[:, None]) ** 2
    d = E[:, 1:] - E[:, :1]
    se = d.std(axis=0, ddof=1) / np.sqrt(len(y))
    keep = np.concatenate([[0], 1 + np.flatnonzero(d.mean(axis=0) + z * se < 0)])
    w = np.zeros(P.shape[1])
    w[keep] = stack_weights(P[:, keep], y)
    return w


def _stacked_loo(P: np.ndarray, y: np.ndarray, z: float = SE_GATE) -> np.ndarray:
    """Residual of each measurement under weights fitted without it (on the candidates' leave-one-out
    predictions ``P``, which are already out of sample for that measurement)."""
    n = y.size
    out = np.empty(n)
    for i in range(n):
        rows = np.delete(np.arange(n), i)
        out[i] = y[i] - P[i] @ gated_weights(P[rows], y[rows], z)
    return out


def _candidates(host: AdaptHost, candidates) -> list[str]:
    """The ``candidates`` the host can serve (the additive device models decode per-layer costs
    from one-hot rows: they need the encoding's ``@macs`` cost column)."""
    onehot = "@macs" in host.basis_names
    return [c for c in candidates if onehot or not issubclass(get(c), AnalyticStrategy)]


@register("stack")
class StackStrategy(AdaptStrategy):
    """Convex combination of candidate strategies, weighted by their leave-one-out fit to the target."""

    _array_state = ("stack_weights_",)
    _names_state = ("candidates_",)
    #: What it chooses among, the reference first (a subclass may choose among others).
    candidates = CANDIDATES
    se_gate = SE_GATE

    def _fit(self, host, data: AdaptData) -> dict:
        names = _candidates(host, self.candidates)
        fitted = [get(c)().fit(host, data) for c in names]
        P = data.logy[:, None] - np.column_stack([f.loo_log_residuals_ for f in fitted])
        w = gated_weights(P, data.logy, self.se_gate)
        used = np.flatnonzero(w > 0)
        return {"candidates_": [names[i] for i in used], "stack_weights_": w[used],
                "fitted_": [fitted[i] for i in used], "loo_candidates_": P}

    def fit(self, host: AdaptHost, data: AdaptData) -> "StackStrategy":
        # The base class would refit everything n times for the leave-one-out residuals; the
        # candidates' own leave-one-out predictions already give them (see _stacked_loo).
        if not isinstance(data, AdaptData):
            return super().fit(host, data)  # raises the base class's error
        state = self._fit(host, data)
        loo = _stacked_loo(state.pop("loo_candidates_"), data.logy, self.se_gate)
        for k, v in state.items():
            setattr(self, k, v)
        self.loo_log_residuals_ = loo
        self.n_fit_ = len(data.archs)
        return self

    def _leave_one_out(self, host, data: AdaptData) -> np.ndarray:
        return _stacked_loo(self._fit(host, data)["loo_candidates_"], data.logy, self.se_gate)

    def predict_log(self, host, X):
        return sum(w * f.predict_log(host, X) for w, f in zip(self.stack_weights_, self.fitted_))

    def affine_form(self):
        """The weighted sum of the used candidates' forms (None when one of them is not affine)."""
        self._check_fitted()
        out = None
        for w, f in zip(self.stack_weights_, self.fitted_):
            form = f.affine_form()
            if form is None:
                return None
            out = form.scaled(float(w)) if out is None else out + form.scaled(float(w))
        return out

    def notes(self):
        return tuple(n for f in self.fitted_ for n in f.notes())

    # ---- state: the base's plus each used candidate's own, under its index ---------------------
    def get_state(self):
        meta, arrays = super().get_state()
        meta["candidate_states"] = []
        for i, f in enumerate(self.fitted_):
            m, a = f.get_state()
            meta["candidate_states"].append(m)
            arrays.update({f"candidate{i}/{k}": v for k, v in a.items()})
        return meta, arrays

    def set_state(self, meta, arrays):
        # the candidates first, so that nothing is assigned when any state is bad
        names, states = (meta.get(k) if isinstance(meta, dict) else None for k in ("candidates_", "candidate_states"))
        if not isinstance(names, list) or not isinstance(states, list) or len(states) != len(names):
            raise ModelFileError(f"strategy {self.name!r}: expected one candidate state per candidate; the file is corrupted")
        fitted = []
        for i, (name, m) in enumerate(zip(names, states)):
            if name not in CANDIDATES:
                raise ModelFileError(f"strategy {self.name!r}: unknown candidate {name!r:.60} (expected one of {CANDIDATES})")
            prefix = f"candidate{i}/"
            fitted.append(get(name)().set_state(m, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}))
        super().set_state(meta, arrays)
        self.fitted_ = fitted
        return self

    def _check_state(self, state):
        w = state["stack_weights_"]
        check_lengths(self.name, stack_weights=(w.size, len(state["candidates_"])))
        if (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise ModelFileError(f"strategy {self.name!r}: stack weights must be >= 0 and sum to 1, got {w.tolist()}")

    def check_host(self, host):
        for f in self.fitted_:
            f.check_host(host)
