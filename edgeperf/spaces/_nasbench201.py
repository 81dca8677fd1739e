"""NAS-Bench-201: the CIFAR cell space of Dong & Yang (ICLR 2020).

A cell is a DAG of 4 nodes; each of the 6 edges (1<-0, 2<-0, 2<-1, 3<-0, 3<-1,
3<-2) carries one of 5 operations, so the space holds 5**6 = 15,625 cells.
"""

from __future__ import annotations

import functools
import itertools
from typing import Iterator

import numpy as np

from edgeperf.errors import ArchitectureError
from edgeperf.spaces import _costs
from edgeperf.spaces import register
from edgeperf.spaces._base import SearchSpace, check_arch_text

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (target node, source node) of each of the 6 edges, in string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_OP_INDEX = {op: i for i, op in enumerate(OPS)}

#: CIFAR network of the benchmark: channels per stage, cells per stage, input size, classes.
STAGE_CHANNELS = (16, 32, 64)
CELLS_PER_STAGE = 5
INPUT_SIZE = 32
NUM_CLASSES = 10
#: Stride of the ResNet reduction block between stages.
REDUCTION_STRIDE = 2


def _edge_cost(op: str, channels: int, size: int) -> _costs.Cost:
    """Cost of one edge op on a ``channels x size x size`` feature map."""
    elements = channels * size * size
    if op == "skip_connect":
        return _costs.Cost()
    if op in ("none", "avg_pool_3x3"):  # none still runs: it multiplies by 0
        return _costs.elementwise(elements, elements)
    kernel = 1 if op == "nor_conv_1x1" else 3
    conv, _ = _costs.conv2d(channels, channels, kernel, size, bn=True)
    return conv


def network_costs(ops: tuple[str, ...]) -> tuple[list[_costs.Cost], _costs.Cost]:
    """Analytic cost of each edge position (summed over the 15 cells) and of the whole network."""
    size = INPUT_SIZE
    stem, size = _costs.conv2d(3, STAGE_CHANNELS[0], 3, size, bn=True)
    fixed = [stem]
    per_edge = [_costs.Cost() for _ in EDGES]
    for stage, c in enumerate(STAGE_CHANNELS):
        if stage > 0:
            c_in = STAGE_CHANNELS[stage - 1]
            conv_a, out = _costs.conv2d(c_in, c, 3, size, stride=REDUCTION_STRIDE, bn=True)
            conv_b, _ = _costs.conv2d(c, c, 3, out, bn=True)
            pool = _costs.elementwise(c_in * size * size, c_in * out * out)
            down, _ = _costs.conv2d(c_in, c, 1, out)
            fixed += [conv_a, conv_b, pool, down]
            size = out
        for e, op in enumerate(ops):
            per_edge[e] = per_edge[e] + _edge_cost(op, c, size).scaled(CELLS_PER_STAGE)
    c_last = STAGE_CHANNELS[-1]
    fixed += [_costs.batchnorm(c_last), _costs.elementwise(c_last * size * size, c_last), _costs.linear(c_last, NUM_CLASSES)]
    return per_edge, _costs.total(fixed) + _costs.total(per_edge)


@register
class NASBench201(SearchSpace):
    name = "nasbench201"
    description = "NAS-Bench-201 CIFAR cell space: 6 edges x 5 ops, 15,625 cells, 3 stages of 5 cells, C=16"
    encodings = ("onehot", "structural")
    size = len(OPS) ** len(EDGES)
    #: The operations and the (target node, source node) edges, in string order.
    ops = OPS
    edges = EDGES

    def parse(self, arch: str) -> tuple[str, ...]:
        check_arch_text(arch, "a NAS-Bench-201 cell string")
        nodes = arch.strip().split("+")
        if len(nodes) != 3:
            raise ArchitectureError(
                f"expected 3 node groups separated by '+' like '|nor_conv_3x3~0|+|...~0|...~1|+|...|', got {arch!r}"
            )
        ops: list[str] = []
        for target, group in enumerate(nodes, start=1):
            group = group.strip()
            if not (group.startswith("|") and group.endswith("|")):
                raise ArchitectureError(f"node {target} of {arch!r}: expected '|op~src|...|', got {group!r}")
            edges = group[1:-1].split("|")
            if len(edges) != target:
                raise ArchitectureError(f"node {target} of {arch!r}: expected {target} edges, got {len(edges)}")
            for source, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if not sep or src != str(source):
                    raise ArchitectureError(
                        f"node {target} of {arch!r}: expected an edge 'op~{source}', got {edge!r}"
                    )
                if op not in _OP_INDEX:
                    raise ArchitectureError(f"unknown operation {op!r} in {arch!r}; expected one of {OPS}")
                ops.append(op)
        return tuple(ops)

    def to_string(self, parsed: tuple[str, ...]) -> str:
        groups, k = [], 0
        for target in (1, 2, 3):
            groups.append("|" + "|".join(f"{parsed[k + s]}~{s}" for s in range(target)) + "|")
            k += target
        return "+".join(groups)

    def encoding_dim(self, encoding: str | None = None) -> int:
        if encoding == "structural":
            return (len(EDGES) + 1) * len(_costs.COST_FIELDS)
        return len(EDGES) * len(OPS)

    def feature_names(self, encoding: str | None = None) -> list[str]:
        if encoding == "structural":
            return _costs.structural_names([f"edge{t}<-{s}" for t, s in EDGES])
        return [f"edge{t}<-{s}:{op}" for t, s in EDGES for op in OPS]

    def _encode_structural(self, parsed: tuple[str, ...]) -> np.ndarray:
        """Per edge: MACs, params and memory traffic summed over the 15 cells; then network totals."""
        per_edge, network = network_costs(parsed)
        return _costs.structural_vector(per_edge, network)

    def _network_costs(self, parsed):
        return network_costs(parsed)

    @functools.cached_property
    def _cost_table(self) -> _costs.AdditiveCostTable:
        return _costs.AdditiveCostTable(network_costs, {op: (op,) * len(EDGES) for op in OPS})

    def _onehot_costs(self, X: np.ndarray) -> np.ndarray:
        return self._cost_table.costs(X.reshape(len(X), len(EDGES), len(OPS)))

    def input_shape(self, arch: str, *, batch_size: int = 1) -> tuple[int, ...]:
        self.parse(arch)
        return (batch_size, 3, INPUT_SIZE, INPUT_SIZE)

    def build_module(self, arch: str, *, num_classes: int | None = None):
        """The CIFAR network of NAS-Bench-201 for this cell, randomly initialised, eval mode."""
        from edgeperf.spaces._torch_nb201 import NB201Network

        return NB201Network(self.parse(arch), EDGES, num_classes or NUM_CLASSES).eval()

    def _encode_onehot(self, parsed: tuple[str, ...]) -> np.ndarray:
        v = np.zeros(self.encoding_dim(), dtype=np.float32)
        for e, op in enumerate(parsed):
            v[e * len(OPS) + _OP_INDEX[op]] = 1.0
        return v

    def _draw(self, rng: np.random.Generator, n: int) -> list[str]:
        picks = rng.integers(0, len(OPS), size=(n, len(EDGES)))
        return [self.to_string(tuple(OPS[i] for i in row)) for row in picks]

    @functools.cached_property
    def choices(self) -> tuple[tuple[str, tuple], ...]:
        """One decision per edge (string order), options :data:`OPS`."""
        return tuple((f"edge{t}<-{s}", OPS) for t, s in EDGES)

    def _choice_values(self, parsed: tuple[str, ...]) -> tuple:
        return parsed

    def _from_choice_values(self, values: tuple) -> tuple[str, ...]:
        return tuple(values)

    def enumerate(self) -> Iterator[str]:
        """All 15,625 cells, in the product order of :data:`OPS` (not NAS-Bench-201's own index
        order: the built-in table ``help-nb201`` carries the official ``arch_index``)."""
        for ops in itertools.product(OPS, repeat=len(EDGES)):
            yield self.to_string(ops)
