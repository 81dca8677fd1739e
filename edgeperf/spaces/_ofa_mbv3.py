"""Once-for-All MobileNetV3: 5 stages of depth 2-4, per-layer kernel 3/5/7 and expansion 3/4/6,
input resolution 128-224 in steps of 4 (Cai et al., ICLR 2020)."""

from __future__ import annotations

import functools
import json
import re

import numpy as np

from edgeperf.errors import ArchitectureError
from edgeperf.spaces import _costs
from edgeperf.spaces import register
from edgeperf.spaces._base import MAX_ARCH_CHARS, SearchSpace, check_arch_text

N_STAGES = 5
MAX_DEPTH = 4
N_LAYERS = N_STAGES * MAX_DEPTH
DEPTHS = (2, 3, 4)
EXPANDS = (3, 4, 6)
KERNELS = (3, 5, 7)
RESOLUTIONS = tuple(range(128, 225, 4))
#: (kernel, expand) choices of one layer, the order of the cost tables' columns.
_KE_PAIRS = tuple((k, x) for k in KERNELS for x in EXPANDS)


# ``ofa_mbv3_d234_e346_k357_w1.0`` (OFAMobileNetV3, width multiplier 1.0).
FIRST_CONV_CHANNELS = 16
FIRST_CONV_STRIDE = 2
FIRST_BLOCK_KERNEL = 3
STAGE_WIDTHS = (24, 40, 80, 112, 160)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
FINAL_EXPAND_CHANNELS = 960
FEATURE_MIX_CHANNELS = 1280
NUM_CLASSES = 1000
SE_REDUCTION = 4
#: OFA rounds every channel count to a multiple of 8 (``make_divisible``).
CHANNEL_DIVISOR = 8
#: ``make_divisible`` never rounds down by more than 10%.
MAX_ROUND_DOWN = 0.9


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """OFA/MobileNet channel rounding: nearest multiple of ``divisor``, at most 10% below."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < MAX_ROUND_DOWN * value:
        new += divisor
    return new


def layer_plan(parsed) -> list[dict]:
    """One dict per searchable layer (20): c_in, c_out, kernel, expand, stride, act, se, active."""
    d, e, ks, _ = parsed
    plan, c_in = [], FIRST_CONV_CHANNELS
    for stage in range(N_STAGES):
        for layer in range(MAX_DEPTH):
            i = stage * MAX_DEPTH + layer
            active = layer < d[stage]
            c_out = STAGE_WIDTHS[stage]
            plan.append(dict(
                c_in=c_in, c_out=c_out, kernel=ks[i], expand=e[i], stride=STAGE_STRIDES[stage] if layer == 0 else 1,
                act=STAGE_ACTS[stage], se=STAGE_SE[stage], active=active,
            ))
            if active:
                c_in = c_out
    return plan


def mbconv_cost(c_in: int, c_out: int, kernel: int, expand: int, stride: int, se: bool, size: int) -> tuple[_costs.Cost, int]:
    """Cost of an OFA MBConv layer (+ residual add when shapes match) on a ``size x size`` input."""
    mid = make_divisible(round(c_in * expand))
    cost = _costs.Cost()
    if expand != 1:
        expand_cost, _ = _costs.conv2d(c_in, mid, 1, size, bn=True)
        cost = cost + expand_cost
    dw, out = _costs.conv2d(mid, mid, kernel, size, stride=stride, groups=mid, bn=True)
    cost = cost + dw
    if se:
        se_mid = make_divisible(mid // SE_REDUCTION)
        reduce, _ = _costs.conv2d(mid, se_mid, 1, 1, bias=True)
        excite, _ = _costs.conv2d(se_mid, mid, 1, 1, bias=True)
        # pooling reads the map; the rescale reads it again and writes it
        cost = cost + reduce + excite + _costs.elementwise(mid * out * out, mid) + _costs.elementwise(mid * out * out, mid * out * out)
    project, _ = _costs.conv2d(mid, c_out, 1, out, bn=True)
    cost = cost + project
    if stride == 1 and c_in == c_out:
        cost = cost + _costs.elementwise(2 * c_out * out * out, c_out * out * out)
    return cost, out


def network_costs(parsed) -> tuple[list[_costs.Cost], _costs.Cost]:
    """Analytic cost of each of the 20 layer positions (zero when inactive) and of the network."""
    r = parsed[3]
    first, size = _costs.conv2d(3, FIRST_CONV_CHANNELS, 3, r, stride=FIRST_CONV_STRIDE, bn=True)
    block0, size = mbconv_cost(FIRST_CONV_CHANNELS, FIRST_CONV_CHANNELS, FIRST_BLOCK_KERNEL, 1, 1, False, size)
    layers = []
    for spec in layer_plan(parsed):
        if not spec["active"]:
            layers.append(_costs.Cost())
            continue
        cost, size = mbconv_cost(spec["c_in"], spec["c_out"], spec["kernel"], spec["expand"], spec["stride"], spec["se"], size)
        layers.append(cost)
    final, size = _costs.conv2d(STAGE_WIDTHS[-1], FINAL_EXPAND_CHANNELS, 1, size, bn=True)
    pool = _costs.elementwise(FINAL_EXPAND_CHANNELS * size * size, FINAL_EXPAND_CHANNELS)
    mix, _ = _costs.conv2d(FINAL_EXPAND_CHANNELS, FEATURE_MIX_CHANNELS, 1, 1)
    fixed = first + block0 + final + pool + mix + _costs.linear(FEATURE_MIX_CHANNELS, NUM_CLASSES)
    return layers, fixed + _costs.total(layers)


def _canonical_reader():
    """(pattern, slices, translation tables, resolution index) reading the option indices straight
    out of a canonical string (what ``to_string`` prints: one digit per depth, expansion and kernel)."""
    fields = (("d", DEPTHS, N_STAGES), ("e", EXPANDS, N_LAYERS), ("ks", KERNELS, N_LAYERS))
    if any(len(str(v)) != 1 for _, options, _ in fields for v in options):
        return None
    pattern, slices, tables, pos = "", [], [], 0
    for key, options, n in fields:
        head = ("{" if not pattern else "],") + f'"{key}":['
        pattern += re.escape(head) + ",".join([f"[{''.join(map(str, options))}]"] * n)
        pos += len(head)
        slices.append(slice(pos, pos + 2 * n - 1, 2))
        tables.append(str.maketrans({str(v): chr(i) for i, v in enumerate(options)}))
        pos += 2 * n - 1
    pattern += re.escape('],"r":') + r"(\d+)\}"
    return re.compile(pattern), slices, tables, {r: i for i, r in enumerate(RESOLUTIONS)}


_CANONICAL = _canonical_reader()


def _active(depths) -> list[bool]:
    return [layer < depths[stage] for stage in range(N_STAGES) for layer in range(MAX_DEPTH)]


@register
class OFAMobileNetV3(SearchSpace):
    name = "ofa_mbv3"
    description = "Once-for-All MobileNetV3: depth 2-4 x 5 stages, kernel 3/5/7, expand 3/4/6, resolution 128-224"
    encodings = ("onehot", "structural")
    size = len(RESOLUTIONS) * sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS) ** N_STAGES

    def parse(self, arch: str) -> tuple:
        check_arch_text(arch, "an OFA JSON string")
        try:
            data = json.loads(arch)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, an int of > 4300 digits, deep nesting
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else (
                "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
            raise ArchitectureError(
                f'expected JSON like {{"d":[5 depths],"e":[20 expands],"ks":[20 kernels],"r":224}}, '
                f"got {arch!r} ({reason})"
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
        if encoding == "structural":
            return (N_LAYERS + 1) * len(_costs.COST_FIELDS) + 1
        return N_LAYERS * self._PER_LAYER + 1

    def feature_names(self, encoding: str | None = None) -> list[str]:
        if encoding == "structural":
            return _costs.structural_names([f"layer{i}" for i in range(N_LAYERS)], ["resolution"])
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

    def _encode_structural(self, parsed: tuple) -> np.ndarray:
        """Per layer position: MACs, params, memory traffic (0 when inactive); network totals;
        resolution scaled to [0, 1]."""
        layers, network = network_costs(parsed)
        r = parsed[3]
        return _costs.structural_vector(layers, network, [(r - RESOLUTIONS[0]) / (RESOLUTIONS[-1] - RESOLUTIONS[0])])

    def _network_costs(self, parsed):
        return network_costs(parsed)

    @functools.cached_property
    def _cost_tables(self) -> dict[int, _costs.AdditiveCostTable]:
        """One table per resolution; its choices are (kernel, expand) pairs, in _KE_PAIRS order."""
        return {
            r: _costs.AdditiveCostTable(
                network_costs,
                {(k, x): ((MAX_DEPTH,) * N_STAGES, (x,) * N_LAYERS, (k,) * N_LAYERS, r) for k, x in _KE_PAIRS},
            )
            for r in RESOLUTIONS
        }

    def _onehot_costs(self, X: np.ndarray) -> np.ndarray:
        layers = X[:, :-1].reshape(len(X), N_LAYERS, self._PER_LAYER).astype(np.float64)
        kernel = layers[:, :, 1 : 1 + len(KERNELS)]
        expand = layers[:, :, 1 + len(KERNELS) :]
        # (kernel, expand) indicator per layer; inactive layers have neither, so they add nothing
        pairs = np.einsum("nlk,nle->nlke", kernel, expand).reshape(len(X), N_LAYERS, len(_KE_PAIRS))
        step = RESOLUTIONS[1] - RESOLUTIONS[0]
        res = RESOLUTIONS[0] + step * np.rint(X[:, -1] * (RESOLUTIONS[-1] - RESOLUTIONS[0]) / step).astype(int)
        out = np.empty((len(X), len(_costs.COST_COLUMNS)))
        for r in np.unique(res):
            rows = res == r
            if int(r) not in self._cost_tables:
                raise ArchitectureError(f"resolution {int(r)} decoded from the one-hot rows is not in {RESOLUTIONS}")
            out[rows] = self._cost_tables[int(r)].costs(pairs[rows])
        return out

    def input_shape(self, arch: str, *, batch_size: int = 1) -> tuple[int, ...]:
        r = self.parse(arch)[3]
        return (batch_size, 3, r, r)

    def build_module(self, arch: str, *, num_classes: int | None = None):
        """The OFA MobileNetV3 subnet of ``arch`` as a plain network, randomly initialised, eval mode."""
        from edgeperf.spaces._torch_ofa import OFAMobileNetV3Network

        return OFAMobileNetV3Network(self.parse(arch), num_classes or NUM_CLASSES).eval()

    @functools.cached_property
    def choices(self) -> tuple[tuple[str, tuple], ...]:
        """Depth per stage, expansion and kernel per layer position, then resolution (the
        order of the string's fields). A layer beyond its stage's depth does not run, so its
        expansion and kernel change the string but not the network."""
        return (
            tuple((f"stage{s}:depth", DEPTHS) for s in range(N_STAGES))
            + tuple((f"layer{i}:expand", EXPANDS) for i in range(N_LAYERS))
            + tuple((f"layer{i}:kernel", KERNELS) for i in range(N_LAYERS))
            + (("resolution", RESOLUTIONS),)
        )

    def to_choices(self, arch: str) -> tuple[int, ...]:
        # canonical strings are read without JSON; anything else takes parse (and its errors)
        if _CANONICAL is not None and isinstance(arch, str) and len(arch) <= MAX_ARCH_CHARS:
            pattern, slices, tables, resolution = _CANONICAL
            m = pattern.fullmatch(arch)
            if m is not None and int(m.group(1)) in resolution and m.group(1)[0] != "0":
                digits = "".join([arch[s].translate(t) for s, t in zip(slices, tables)])
                return (*digits.encode(), resolution[int(m.group(1))])
        return super().to_choices(arch)

    def feature_decisions(self, encoding: str | None = None):
        """The one-hot columns of layer ``i`` (active flag, kernel, expansion; masked when the
        layer does not run) depend on its stage's depth and its own expansion and kernel;
        ``resolution`` on the resolution. (Declared per layer, not per column: the active flag
        needs only the depth, but a layer is the unit its cost is additive over.) The structural
        encoding's totals depend on everything, so it is not described."""
        if (encoding or self.encodings[0]) != "onehot":
            return None
        expand0, kernel0 = N_STAGES, N_STAGES + N_LAYERS
        layers = [(i // MAX_DEPTH, expand0 + i, kernel0 + i) for i in range(N_LAYERS)]
        return tuple(d for d in layers for _ in range(self._PER_LAYER)) + ((kernel0 + N_LAYERS,),)

    def _choice_values(self, parsed: tuple) -> tuple:
        d, e, ks, r = parsed
        return (*d, *e, *ks, r)

    def _from_choice_values(self, values: tuple) -> tuple:
        d, rest = values[:N_STAGES], values[N_STAGES:]
        return tuple(d), tuple(rest[:N_LAYERS]), tuple(rest[N_LAYERS : 2 * N_LAYERS]), rest[-1]

    def _draw(self, rng: np.random.Generator, n: int) -> list[str]:
        out = []
        for _ in range(n):
            d = tuple(int(x) for x in rng.choice(DEPTHS, N_STAGES))
            e = tuple(int(x) for x in rng.choice(EXPANDS, N_LAYERS))
            ks = tuple(int(x) for x in rng.choice(KERNELS, N_LAYERS))
            r = int(rng.choice(RESOLUTIONS))
            out.append(self.to_string((d, e, ks, r)))
        return out
