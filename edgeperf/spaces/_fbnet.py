"""FBNet: 22 searchable layers x 9 candidate blocks, as used by HW-NAS-Bench and HELP.

The network is HW-NAS-Bench's CIFAR-100 FBNet (see ``_torch_fbnet`` for the layout and where it
comes from); the constants below are shared by the analytic costs and the torch model.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from edgeperf.errors import ArchitectureError
from edgeperf.spaces import _costs
from edgeperf.spaces import register
from edgeperf.spaces._base import MAX_ARCH_CHARS, SearchSpace, check_arch_text

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
N_LAYERS = 22
_OP_INDEX = {op: i for i, op in enumerate(OPS)}

# HW-NAS-Bench ``fbnet_get_metrics``, CIFAR-100 setting.
STEM_CHANNELS = 16
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (1, 1, 2, 2, 1, 2, 1)
HEADER_CHANNELS = 1504
INPUT_SIZE = 32
NUM_CLASSES = 100


def same_padding(kernel: int, stride: int) -> int:
    """Padding so that out = in / stride (HW-NAS-Bench ConvBlock rule)."""
    return int(math.ceil((kernel - stride) / 2))


def parse_op(op: str) -> tuple[int, int, int] | None:
    """(kernel, expansion, groups) of a block name like ``k5_e1_g2``; ``None`` for ``skip``."""
    if op == "skip":
        return None
    parts = op.split("_")
    groups = int(parts[2][1:]) if len(parts) == 3 else 1
    return int(parts[0][1:]), int(parts[1][1:]), groups


def layer_plan() -> list[tuple[int, int, int]]:
    """(c_in, c_out, stride) of each of the 22 searchable layers."""
    plan, c_in = [], STEM_CHANNELS
    for c_out, n, stride in zip(STAGE_CHANNELS, STAGE_LAYERS, STAGE_STRIDES):
        for i in range(n):
            plan.append((c_in, c_out, stride if i == 0 else 1))
            c_in = c_out
    return plan


def _layer_cost(op: str, c_in: int, c_out: int, stride: int, size: int) -> tuple[_costs.Cost, int]:
    spec = parse_op(op)
    if spec is None:
        if c_in == c_out and stride == 1:
            return _costs.Cost(), size
        return _costs.conv2d(c_in, c_out, 1, size, stride=stride, padding=0, bn=True)
    kernel, expansion, groups = spec
    mid = c_in * expansion
    expand, _ = _costs.conv2d(c_in, mid, 1, size, groups=groups, padding=0, bn=True)
    dw, out = _costs.conv2d(mid, mid, kernel, size, stride=stride, padding=same_padding(kernel, stride), groups=mid, bn=True)
    project, _ = _costs.conv2d(mid, c_out, 1, out, groups=groups, padding=0, bn=True)
    cost = expand + dw + project
    if groups > 1:  # channel shuffle reads and writes the expanded map
        cost = cost + _costs.elementwise(mid * size * size, mid * size * size)
    if c_in == c_out and stride == 1:  # residual add
        cost = cost + _costs.elementwise(2 * c_out * out * out, c_out * out * out)
    return cost, out


def network_costs(ops: tuple[str, ...]) -> tuple[list[_costs.Cost], _costs.Cost]:
    """Analytic cost of each of the 22 layers and of the whole network."""
    stem, size = _costs.conv2d(3, STEM_CHANNELS, 3, INPUT_SIZE, bn=True)
    layers = []
    for op, (c_in, c_out, stride) in zip(ops, layer_plan()):
        cost, size = _layer_cost(op, c_in, c_out, stride, size)
        layers.append(cost)
    header, size = _costs.conv2d(STAGE_CHANNELS[-1], HEADER_CHANNELS, 1, size, padding=0, bn=True)
    pool = _costs.elementwise(HEADER_CHANNELS * size * size, HEADER_CHANNELS)
    fixed = stem + header + pool + _costs.linear(HEADER_CHANNELS, NUM_CLASSES)
    return layers, fixed + _costs.total(layers)


@register
class FBNet(SearchSpace):
    name = "fbnet"
    description = "FBNet space (HW-NAS-Bench): 22 layers x 9 blocks (kernel, expansion, groups, skip)"
    encodings = ("onehot", "structural")
    size = len(OPS) ** N_LAYERS

    def parse(self, arch: str) -> tuple[str, ...]:
        check_arch_text(arch, "an FBNet string of 22 ops joined by '-'")
        ops = tuple(arch.strip().split("-"))
        if len(ops) != N_LAYERS:
            raise ArchitectureError(f"expected {N_LAYERS} ops joined by '-', got {len(ops)} in {arch!r}")
        for i, op in enumerate(ops):
            if op not in _OP_INDEX:
                raise ArchitectureError(f"layer {i} of {arch!r}: unknown op {op!r}; expected one of {OPS}")
        return ops

    def to_string(self, parsed: tuple[str, ...]) -> str:
        return "-".join(parsed)

    def encoding_dim(self, encoding: str | None = None) -> int:
        if encoding == "structural":
            return (N_LAYERS + 1) * len(_costs.COST_FIELDS)
        return N_LAYERS * len(OPS)

    def feature_names(self, encoding: str | None = None) -> list[str]:
        if encoding == "structural":
            return _costs.structural_names([f"layer{i}" for i in range(N_LAYERS)])
        return [f"layer{i}:{op}" for i in range(N_LAYERS) for op in OPS]

    def _encode_structural(self, parsed: tuple[str, ...]) -> np.ndarray:
        """Per layer: MACs, params, memory traffic; then network totals."""
        layers, network = network_costs(parsed)
        return _costs.structural_vector(layers, network)

    def _network_costs(self, parsed):
        return network_costs(parsed)

    @functools.cached_property
    def _cost_table(self) -> _costs.AdditiveCostTable:
        return _costs.AdditiveCostTable(network_costs, {op: (op,) * N_LAYERS for op in OPS})

    def _onehot_costs(self, X: np.ndarray) -> np.ndarray:
        return self._cost_table.costs(X.reshape(len(X), N_LAYERS, len(OPS)))

    def input_shape(self, arch: str, *, batch_size: int = 1) -> tuple[int, ...]:
        self.parse(arch)
        return (batch_size, 3, INPUT_SIZE, INPUT_SIZE)

    def build_module(self, arch: str, *, num_classes: int | None = None):
        """HW-NAS-Bench's CIFAR-100 FBNet network for ``arch``, randomly initialised, eval mode."""
        from edgeperf.spaces._torch_fbnet import FBNetNetwork

        return FBNetNetwork(self.parse(arch), num_classes or NUM_CLASSES).eval()

    def _encode_onehot(self, parsed: tuple[str, ...]) -> np.ndarray:
        v = np.zeros(self.encoding_dim(), dtype=np.float32)
        for i, op in enumerate(parsed):
            v[i * len(OPS) + _OP_INDEX[op]] = 1.0
        return v

    def _draw(self, rng: np.random.Generator, n: int) -> list[str]:
        picks = rng.integers(0, len(OPS), size=(n, N_LAYERS))
        return [self.to_string(tuple(OPS[i] for i in row)) for row in picks]

    @functools.cached_property
    def choices(self) -> tuple[tuple[str, tuple], ...]:
        """One decision per searchable layer, options :data:`OPS`."""
        return tuple((f"layer{i}", OPS) for i in range(N_LAYERS))

    def to_choices(self, arch: str) -> tuple[int, ...]:
        # the common case without building the parsed tuple; anything odd takes parse's errors
        if isinstance(arch, str) and len(arch) <= MAX_ARCH_CHARS:
            ops = arch.strip().split("-")
            if len(ops) == N_LAYERS:
                try:
                    return tuple(map(_OP_INDEX.__getitem__, ops))
                except KeyError:
                    pass
        return super().to_choices(arch)

    def feature_decisions(self, encoding: str | None = None):
        """One-hot column ``layer{i}:{op}`` depends on decision ``layer{i}`` only; the structural
        encoding's totals depend on every layer, so it is not described."""
        if (encoding or self.encodings[0]) != "onehot":
            return None
        return tuple((i // len(OPS),) for i in range(self.encoding_dim("onehot")))

    def _choice_values(self, parsed: tuple[str, ...]) -> tuple:
        return parsed

    def _from_choice_values(self, values: tuple) -> tuple[str, ...]:
        return tuple(values)
