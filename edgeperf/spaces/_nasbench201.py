"""NAS-Bench-201: the CIFAR cell space of Dong & Yang (ICLR 2020).

A cell is a DAG of 4 nodes; each of the 6 edges (1<-0, 2<-0, 2<-1, 3<-0, 3<-1,
3<-2) carries one of 5 operations, so the space holds 5**6 = 15,625 cells.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from edgeperf.errors import ArchitectureError
from edgeperf.spaces import register
from edgeperf.spaces._base import SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (target node, source node) of each of the 6 edges, in string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@register
class NASBench201(SearchSpace):
    name = "nasbench201"
    description = "NAS-Bench-201 CIFAR cell space: 6 edges x 5 ops, 15,625 cells, 3 stages of 5 cells, C=16"
    encodings = ("onehot",)
    size = len(OPS) ** len(EDGES)

    def parse(self, arch: str) -> tuple[str, ...]:
        if not isinstance(arch, str):
            raise ArchitectureError(f"expected a NAS-Bench-201 cell string, got {type(arch).__name__}")
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
        return len(EDGES) * len(OPS)

    def feature_names(self, encoding: str | None = None) -> list[str]:
        return [f"edge{t}<-{s}:{op}" for t, s in EDGES for op in OPS]

    def _encode_onehot(self, parsed: tuple[str, ...]) -> np.ndarray:
        v = np.zeros(self.encoding_dim(), dtype=np.float32)
        for e, op in enumerate(parsed):
            v[e * len(OPS) + _OP_INDEX[op]] = 1.0
        return v

    def sample(self, n: int, *, seed: int | None = None) -> list[str]:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(OPS), size=(n, len(EDGES)))
        return [self.to_string(tuple(OPS[i] for i in row)) for row in picks]

    def enumerate(self) -> Iterator[str]:
        """All 15,625 cells, in the product order of :data:`OPS` (not NAS-Bench-201's own index
        order: the built-in table ``help-nb201`` carries the official ``arch_index``)."""
        for ops in itertools.product(OPS, repeat=len(EDGES)):
            yield self.to_string(ops)
