"""``analytic``: an additive device model fitted directly to the target's measurements.

Latency is modelled as the sum of what each layer costs on the device, grouped by operator type
(the option of a decision: ``nor_conv_3x3``, ``k5_e6``, ``k7``, ...):

    latency_ms = t0 + sum_type (a_type * MACs_type + b_type * bytes_type + c_type * count_type)
                    + a_fixed * MACs_fixed + b_fixed * bytes_fixed

with every coefficient >= 0 (time per MAC per operator type, per byte, per layer launch), fitted by
non-negative least squares on relative errors. The per-layer MACs and bytes are decoded from the
one-hot rows (:func:`edgeperf.datasets.synthetic.onehot_layer_costs`); the fixed layers are the
stem and head. It uses no training device, so it does not inherit their behaviour: useful where the
target is unlike all of them, weak where latency is not additive over layers. Measured on the
adversarial splits (n = 20): NAS-Bench-201 0.910 (``nnls+bayes`` 0.856; GPUs held out 0.964), FBNet
0.627 (0.808), OFA 0.792 (0.802). ``stack`` uses it where the target's own measurements say it fits.

``compact``: the same model on fewer columns (:func:`compact_features`), because 29 columns (FBNet)
are too many for ~20 measurements. Measured there: NAS-Bench-201 0.936, FBNet 0.812 (GPUs held
out 0.897, against ``analytic`` 0.654 and ``nnls+bayes`` 0.758), OFA 0.811.
"""

from __future__ import annotations

import numpy as np

from edgeperf.errors import ModelFileError
from edgeperf.predictors.adapt._base import AdaptData, AdaptHost, AdaptStrategy, AdditiveMs, AffineForm, onehot_space
from edgeperf.predictors.adapt._registry import register

__all__ = ["AnalyticStrategy", "CompactStrategy", "analytic_features", "compact_features"]

#: Floor of a predicted latency relative to the smallest fitted one (keeps the log finite).
_FLOOR = 1e-3
#: Ridge strength on the (column-normalised) coefficients; a little keeps NNLS stable at n ~ 20.
_RIDGE = 1e-3

# space -> (option group per one-hot column or -1, layer position per column, option names);
# deterministic from the space's feature names (a memo, not configuration).
_GROUPS: dict = {}


def _groups(space: str):
    from edgeperf import spaces

    if space not in _GROUPS:
        sp = spaces.get(space)
        names = sp.feature_names("onehot")
        positions = []
        for c in sp.feature_names("structural"):
            pos = c.rsplit(":", 1)[0]
            if not pos.startswith("total") and pos not in positions:
                positions.append(pos)
        pos_of = {p: i for i, p in enumerate(positions)}
        # One-hot columns of a layer's option ("pos:option"); others (OFA's resolution) carry no layer.
        layered = [j for j, n in enumerate(names) if ":" in n and n.rsplit(":", 1)[0] in pos_of]
        options = sorted({names[j].rsplit(":", 1)[1] for j in layered})
        group = np.full(len(names), -1)
        position = np.zeros(len(names), dtype=int)
        for j in layered:
            pos, option = names[j].rsplit(":", 1)
            group[j], position[j] = options.index(option), pos_of[pos]
        _GROUPS[space] = (group, position, options)
    return _GROUPS[space]


def _option_matrix(space: str) -> np.ndarray:
    """``(one-hot columns, operator types)`` 0/1 matrix: ``X @ it`` counts each type's layers."""
    group, _, options = _groups(space)
    G = np.zeros((group.size, len(options)))
    layered = np.flatnonzero(group >= 0)
    G[layered, group[layered]] = 1.0
    return G


def analytic_features(space: str, X: np.ndarray) -> np.ndarray:
    """Per-operator-type MACs, bytes and counts, then the fixed layers' MACs and bytes, of one-hot rows."""
    from edgeperf.datasets.synthetic import onehot_layer_costs

    _, position, _ = _groups(space)
    c = onehot_layer_costs(space, X)
    X = np.asarray(X, dtype=np.float64)
    G = _option_matrix(space)
    macs = (X * c.macs[:, position]) @ G
    mem = (X * c.mem_bytes[:, position]) @ G
    count = X @ G
    return np.hstack([macs, mem, count, c.macs[:, -1:], c.mem_bytes[:, -1:]])


def compact_features(space: str, X: np.ndarray) -> np.ndarray:
    """MACs and bytes of the front and the back half of the layers, the number of layers that
    compute (MACs > 0), the count of each operator type, then the fixed layers' MACs and bytes.

    Fewer columns than :func:`analytic_features` (FBNet: 16 instead of 29), so ~20 measurements
    pin them down; the split by depth keeps what matters on a batched GPU (the high-resolution
    front layers cost several times more per MAC than the back ones), the counts what matters at
    batch 1 (time per kernel launch)."""
    from edgeperf.datasets.synthetic import onehot_layer_costs

    c = onehot_layer_costs(space, X)
    macs, mem = c.macs[:, :-1], c.mem_bytes[:, :-1]
    front = np.arange(macs.shape[1]) < macs.shape[1] / 2
    counts = np.asarray(X, dtype=np.float64) @ _option_matrix(space)
    return np.column_stack([macs[:, front].sum(1), macs[:, ~front].sum(1), mem[:, front].sum(1), mem[:, ~front].sum(1),
                            (macs > 0).sum(1), counts, c.macs[:, -1], c.mem_bytes[:, -1]])


@register("analytic")
class AnalyticStrategy(AdaptStrategy):
    """Additive per-operator-type cost model (non-negative time per MAC, byte and layer)."""

    _float_state = ("t0_ms_", "floor_ms_")
    _array_state = ("coef_",)
    #: ``(space, one-hot rows) -> cost columns``, each with a non-negative time per unit.
    features = staticmethod(analytic_features)

    def _fit(self, host: AdaptHost, data: AdaptData) -> dict:
        F = self.features(self._space(host), data.X)
        y = np.exp(data.logy)
        A = np.hstack([np.ones((len(y), 1)), F]) / y[:, None]  # relative errors
        scale = np.abs(A).max(axis=0)
        scale[scale == 0] = 1.0
        An = A / scale
        k = An.shape[1]
        from scipy.optimize import nnls

        ridge = np.sqrt(_RIDGE) * np.eye(k)
        w, _ = nnls(np.vstack([An, ridge]), np.concatenate([np.ones(len(y)), np.zeros(k)]))
        w = w / scale
        return {"t0_ms_": float(w[0]), "coef_": w[1:], "floor_ms_": float(_FLOOR * y.min())}

    def _space(self, host) -> str:
        return onehot_space(host, self.name)

    def predict_log(self, host, X):
        ms = self.t0_ms_ + self._layer_ms(self._space(host), X)
        return np.log(np.maximum(ms, self.floor_ms_))

    def _layer_ms(self, space: str, X: np.ndarray) -> np.ndarray:
        """The layers' milliseconds of one-hot rows (a sum of per-layer terms: additive features)."""
        return self.features(space, X) @ self.coef_

    def affine_form(self):
        self._check_fitted()
        return AffineForm(0.0, additive=(AdditiveMs(1.0, float(self.t0_ms_), float(self.floor_ms_), self._layer_ms),))

    def _check_state(self, state):
        if (state["coef_"] < 0).any() or state["t0_ms_"] < 0 or not state["floor_ms_"] > 0:
            raise ModelFileError(f"strategy {self.name!r}: coefficients must be >= 0 and the floor > 0")

    def check_host(self, host):
        one_row = np.zeros((1, _groups(host.space)[0].size))  # a one-hot row of the space
        width = self.features(host.space, one_row).shape[1]  # one coefficient per cost column
        if self.coef_.size != width:
            raise ModelFileError(f"strategy {self.name!r}: {self.coef_.size} coefficients, the space needs {width}")


@register("compact")
class CompactStrategy(AnalyticStrategy):
    """:class:`AnalyticStrategy` on :func:`compact_features`: time per MAC and byte of the front
    and back half of the network, per computing layer, per layer of each operator type."""

    features = staticmethod(compact_features)
