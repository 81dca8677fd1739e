"""Once-for-All MobileNetV3: 5 stages of depth 2-4, per-layer kernel 3/5/7 and expansion 3/4/6,
input resolution 128-224 in steps of 4 (Cai et al., ICLR 2020)."""

from __future__ import annotations

import json

import numpy as np

from edgeperf.errors import ArchitectureError
from edgeperf.spaces import register
from edgeperf.spaces._base import SearchSpace

N_STAGES = 5
MAX_DEPTH = 4
N_LAYERS = N_STAGES * MAX_DEPTH
DEPTHS = (2, 3, 4)
EXPANDS = (3, 4, 6)
KERNELS = (3, 5, 7)
RESOLUTIONS = tuple(range(128, 225, 4))


def _active(depths) -> list[bool]:
    return [layer < depths[stage] for stage in range(N_STAGES) for layer in range(MAX_DEPTH)]


@register
class OFAMobileNetV3(SearchSpace):
    name = "ofa_mbv3"
    description = "Once-for-All MobileNetV3: depth 2-4 x 5 stages, kernel 3/5/7, expand 3/4/6, resolution 128-224"
    encodings = ("onehot",)
    size = len(RESOLUTIONS) * sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS) ** N_STAGES

    def parse(self, arch: str) -> tuple:
        if not isinstance(arch, str):
            raise ArchitectureError(f"expected an OFA JSON string, got {type(arch).__name__}")
        try:
            data = json.loads(arch)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(
                f'expected JSON like {{"d":[5 depths],"e":[20 expands],"ks":[20 kernels],"r":224}}, '
                f"got {arch!r} ({exc.msg})"
            ) from None
        if not isinstance(data, dict) or set(data) != {"d", "e", "ks", "r"}:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ArchitectureError(f"expected exactly the keys d, e, ks, r in {arch!r}, got {got}")

        def ints(key, length, allowed):
            vals = data[key]
            if not isinstance(vals, list) or len(vals) != length:
                raise ArchitectureError(f"field {key!r} of {arch!r}: expected a list of {length} ints")
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
                    raise ArchitectureError(f"field {key!r} of {arch!r}: value {v!r} not in {allowed}")
            return tuple(vals)

        d = ints("d", N_STAGES, DEPTHS)
        e = ints("e", N_LAYERS, EXPANDS)
        ks = ints("ks", N_LAYERS, KERNELS)
        r = data["r"]
        if isinstance(r, bool) or not isinstance(r, int) or r not in RESOLUTIONS:
            raise ArchitectureError(f"field 'r' of {arch!r}: expected a resolution in 128..224 step 4, got {r!r}")
        return d, e, ks, r

    def to_string(self, parsed: tuple) -> str:
        d, e, ks, r = parsed
        return json.dumps({"d": list(d), "e": list(e), "ks": list(ks), "r": r}, separators=(",", ":"))

    # per layer: active flag, kernel one-hot (3), expand one-hot (3); then resolution scaled to [0, 1]
    _PER_LAYER = 1 + len(KERNELS) + len(EXPANDS)

    def encoding_dim(self, encoding: str | None = None) -> int:
        return N_LAYERS * self._PER_LAYER + 1

    def feature_names(self, encoding: str | None = None) -> list[str]:
        names = []
        for i in range(N_LAYERS):
            names += [f"layer{i}:active"] + [f"layer{i}:k{k}" for k in KERNELS] + [f"layer{i}:e{x}" for x in EXPANDS]
        return names + ["resolution"]

    def _encode_onehot(self, parsed: tuple) -> np.ndarray:
        d, e, ks, r = parsed
        v = np.zeros(self.encoding_dim(), dtype=np.float32)
        # Layers beyond a stage's depth do not run: their kernel and expansion are masked out.
        for i, on in enumerate(_active(d)):
            if on:
                base = i * self._PER_LAYER
                v[base] = 1.0
                v[base + 1 + KERNELS.index(ks[i])] = 1.0
                v[base + 1 + len(KERNELS) + EXPANDS.index(e[i])] = 1.0
        v[-1] = (r - RESOLUTIONS[0]) / (RESOLUTIONS[-1] - RESOLUTIONS[0])
        return v

    def sample(self, n: int, *, seed: int | None = None) -> list[str]:
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            d = tuple(int(x) for x in rng.choice(DEPTHS, N_STAGES))
            e = tuple(int(x) for x in rng.choice(EXPANDS, N_LAYERS))
            ks = tuple(int(x) for x in rng.choice(KERNELS, N_LAYERS))
            r = int(rng.choice(RESOLUTIONS))
            out.append(self.to_string((d, e, ks, r)))
        return out
