"""FBNet: 22 searchable layers x 9 candidate blocks, as used by HW-NAS-Bench and HELP."""

from __future__ import annotations

import numpy as np

from edgeperf.errors import ArchitectureError
from edgeperf.spaces import register
from edgeperf.spaces._base import SearchSpace

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
N_LAYERS = 22
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@register
class FBNet(SearchSpace):
    name = "fbnet"
    description = "FBNet space (HW-NAS-Bench): 22 layers x 9 blocks (kernel, expansion, groups, skip)"
    encodings = ("onehot",)
    size = len(OPS) ** N_LAYERS

    def parse(self, arch: str) -> tuple[str, ...]:
        if not isinstance(arch, str):
            raise ArchitectureError(f"expected an FBNet string of 22 ops joined by '-', got {type(arch).__name__}")
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
        return N_LAYERS * len(OPS)

    def feature_names(self, encoding: str | None = None) -> list[str]:
        return [f"layer{i}:{op}" for i in range(N_LAYERS) for op in OPS]

    def _encode_onehot(self, parsed: tuple[str, ...]) -> np.ndarray:
        v = np.zeros(self.encoding_dim(), dtype=np.float32)
        for i, op in enumerate(parsed):
            v[i * len(OPS) + _OP_INDEX[op]] = 1.0
        return v

    def sample(self, n: int, *, seed: int | None = None) -> list[str]:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(OPS), size=(n, N_LAYERS))
        return [self.to_string(tuple(OPS[i] for i in row)) for row in picks]
