"""Synthetic hardware: analytic device models sampled at random, for meta-training only.

A synthetic device turns each architecture's per-layer analytic costs (the space's
``structural`` encoding: MACs, parameters and memory traffic per layer position) into a latency
with a small roofline model whose constants are drawn at random (the idea of "Sim-is-More",
arXiv 2504.00663: thousands of plausible devices to learn from, where real tables have tens):

- peak compute (MACs/s) and memory bandwidth (bytes/s), and how compute and memory time
  overlap (a smooth max of exponent ``overlap``: 1 = they add, large = pure roofline);
- parallel units: a layer's work runs in waves of ``wave_macs``, so small layers leave the
  device under-used (GPU-like devices have large waves, MCU-like ones tiny);
- a launch overhead per active layer and a fixed per-inference overhead;
- precision (fp32 / fp16 / int8): bytes moved shrink and peak compute grows;
- batch size: MACs and activation traffic scale with it, weight traffic does not;
- per-operator behaviour: per one-hot choice, a random number of kernel launches and a random
  log-speed factor (an op a runtime has a fast kernel for, or lacks one).

Latencies are deterministic functions of the architecture. Synthetic devices are named
``syn-<space>-<seed>-<k>`` with ``DeviceSpec.kind == "synthetic"`` and must never be scored as
real hardware. Scoring many devices at once: ``bank_latency_ms(device_bank(devices, onehot_dim),
layer_costs(space, archs))``.

>>> from edgeperf.datasets.synthetic import synthetic_devices, synthetic_table
>>> devs = synthetic_devices("nasbench201", 100, seed=0)
>>> devs[0].latency_ms(archs)                                        # doctest: +SKIP
>>> table = synthetic_table("nasbench201", archs, 100, seed=0)       # a MeasurementTable
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeperf.errors import ArchitectureError

__all__ = ["SyntheticDevice", "LayerCosts", "DeviceBank", "layer_costs", "onehot_layer_costs", "device_bank",
           "bank_latency_ms", "synthetic_devices", "synthetic_device", "synthetic_table", "SYNTHETIC_KIND"]

SYNTHETIC_KIND = "synthetic"
_MS_PER_S = 1e3
#: Sampling ranges (log10 where marked) of the device constants; wide on purpose, from
#: microcontroller-like to datacenter-GPU-like.
_LOG10_PEAK_MACS_PER_S = (8.5, 13.5)
_LOG10_BANDWIDTH_BYTES_PER_S = (8.5, 12.0)
_LOG10_WAVE_MACS = (2.0, 8.0)
_LOG10_LAUNCH_MS = (-4.0, -0.5)
_LOG10_FIXED_MS = (-3.0, 0.5)
_OVERLAP = (1.0, 6.0)
_QUIRK_SIGMA = (0.0, 0.2)
_PRECISIONS = {"fp32": (1.0, 1.0), "fp16": (0.5, 2.0), "int8": (0.25, 4.0)}  # bytes scale, speed-up
_BATCH_SIZES = (1, 1, 1, 4, 16, 64, 256)
_BYTES_PER_PARAM = 4  # the structural encoding counts float32 traffic
_KERNELS_PER_CHOICE = (0.0, 3.0)
#: Architectures sampled to fit the one-hot -> per-layer cost map, and the magnitude below which
#: a fitted cost is a zero (an absent layer) rather than least-squares round-off.
_MAP_SAMPLES = 1500
_MAP_ZERO = 1.0
# One-hot -> per-layer cost maps, per space (a memo of a deterministic fit, not configuration).
_ONEHOT_MAPS: dict[str, np.ndarray] = {}


@dataclass(frozen=True)
class LayerCosts:
    """Per-position analytic costs of some architectures, arrays of shape (n, positions + 1) (the
    last column: the fixed layers), plus their one-hot rows (n, onehot_dim)."""

    macs: np.ndarray
    params: np.ndarray
    mem_bytes: np.ndarray
    onehot: np.ndarray


def layer_costs(space: str, archs) -> LayerCosts:
    """Decode the ``structural`` encoding of ``archs`` back to per-position MACs, params and bytes."""
    from edgeperf import spaces
    from edgeperf.spaces import MACS_SCALE, MEM_BYTES_SCALE, PARAMS_SCALE

    sp = spaces.get(space)
    if "structural" not in sp.encodings:
        raise ArchitectureError(f"space {sp.name!r} has no structural encoding to build synthetic devices on")
    archs = [archs] if isinstance(archs, str) else list(archs)
    names = sp.feature_names("structural")
    S = sp.encode(archs, "structural").astype(np.float64).reshape(len(archs), -1)

    def positions(field, scale):
        """Per-position values, plus one column for the fixed layers (stem, head): total - sum."""
        cols = [i for i, c in enumerate(names) if c.endswith(":" + field) and not c.startswith("total:")]
        layers = np.expm1(S[:, cols]) * scale
        total = np.expm1(S[:, names.index(f"total:{field}")]) * scale
        return np.column_stack([layers, np.clip(total - layers.sum(axis=1), 0.0, None)])

    return LayerCosts(
        macs=positions("log1p_mmacs", MACS_SCALE),
        params=positions("log1p_kparams", PARAMS_SCALE),
        mem_bytes=positions("log1p_kbytes", MEM_BYTES_SCALE),
        onehot=sp.encode(archs, "onehot").astype(np.float64).reshape(len(archs), -1),
    )


@dataclass(frozen=True)
class SyntheticDevice:
    """One analytic device model of one search space (constants in their units)."""

    name: str
    space: str
    peak_macs_per_s: float
    bandwidth_bytes_per_s: float
    wave_macs: float
    launch_ms: float
    fixed_ms: float
    overlap: float
    precision: str
    batch_size: int
    quirk_seed: int
    quirk_sigma: float

    def latency_ms(self, archs, *, costs: "LayerCosts | None" = None) -> np.ndarray:
        """Latency in ms of each architecture (a float for one string); pass ``costs`` (from
        :func:`layer_costs`) to score many devices on the same architectures without re-encoding."""
        single = isinstance(archs, str)
        c = costs if costs is not None else layer_costs(self.space, archs)
        out = bank_latency_ms(device_bank([self], c.onehot.shape[1]), c)[0]
        return float(out[0]) if single else out

    def spec(self):
        """The device as a :class:`DeviceSpec` (kind ``synthetic``; constants in ``extra``)."""
        from edgeperf.datasets._records import DeviceSpec

        extra = {k: v for k, v in asdict(self).items() if k not in ("name", "batch_size")}
        return DeviceSpec(name=self.name, kind=SYNTHETIC_KIND, batch_size=self.batch_size, extra=extra)


@dataclass(frozen=True)
class DeviceBank:
    """Many synthetic devices as arrays, ready to score together: constants of shape
    ``(devices, 1, 1)`` and per-device draws over the one-hot choices, ``(devices, n_choices)``:
    log-speed quirks and kernel launches per choice (deterministic from each ``quirk_seed``)."""

    devices: tuple
    constants: dict
    quirks: np.ndarray
    kernels: np.ndarray


def device_bank(devices, n_choices: int) -> DeviceBank:
    """Prepare ``devices`` for :func:`bank_latency_ms` on architectures with ``n_choices`` one-hot columns."""
    devices = tuple(devices)
    fields = ("peak_macs_per_s", "bandwidth_bytes_per_s", "wave_macs", "launch_ms", "fixed_ms", "overlap", "batch_size")
    constants = {f: np.array([getattr(d, f) for d in devices], dtype=np.float64)[:, None, None] for f in fields}
    constants["byte_scale"] = np.array([_PRECISIONS[d.precision][0] for d in devices])[:, None, None]
    constants["speedup"] = np.array([_PRECISIONS[d.precision][1] for d in devices])[:, None, None]
    quirks, kernels = [], []
    for d in devices:
        rng = np.random.default_rng(d.quirk_seed)
        quirks.append(rng.normal(0.0, d.quirk_sigma, n_choices))
        kernels.append(rng.uniform(*_KERNELS_PER_CHOICE, n_choices))
    return DeviceBank(devices, constants, np.array(quirks), np.array(kernels))


def bank_latency_ms(bank: DeviceBank, costs: LayerCosts) -> np.ndarray:
    """``(len(bank.devices), n)`` latencies in ms of many devices on the same architectures."""
    k = bank.constants
    weight_bytes = np.minimum(costs.params * _BYTES_PER_PARAM, costs.mem_bytes)[None]
    act_bytes = costs.mem_bytes[None] - weight_bytes
    work = costs.macs[None] * k["batch_size"]
    waves = np.ceil(work / k["wave_macs"])
    used = np.where(work > 0, work / np.maximum(waves * k["wave_macs"], 1.0), 1.0)
    compute_s = work / (k["peak_macs_per_s"] * k["speedup"] * used)
    memory_s = (weight_bytes + act_bytes * k["batch_size"]) * k["byte_scale"] / k["bandwidth_bytes_per_s"]
    p = k["overlap"]
    layer_s = (compute_s**p + memory_s**p) ** (1.0 / p)
    active = ((costs.mem_bytes > 0) | (costs.macs > 0)).sum(axis=1)
    launches = active[None, :] + bank.kernels @ costs.onehot.T
    overhead_ms = k["fixed_ms"][:, :, 0] + k["launch_ms"][:, :, 0] * launches
    return (overhead_ms + layer_s.sum(axis=2) * _MS_PER_S) * np.exp(bank.quirks @ costs.onehot.T)


def onehot_layer_costs(space: str, X: np.ndarray) -> LayerCosts:
    """:class:`LayerCosts` of one-hot rows ``X``, through a linear map fitted once per space on
    sampled architectures (exact where per-layer costs are additive in the one-hot choices, as in
    NAS-Bench-201 and FBNet; for OFA the map also takes the resolution and its square, and is an
    approximation). Lets a predictor that only sees encoded rows evaluate synthetic devices."""
    from edgeperf import spaces

    name = spaces.get(space).name
    if name not in _ONEHOT_MAPS:
        archs = spaces.get(name).sample(_MAP_SAMPLES, seed=0)
        c = layer_costs(name, archs)
        W, *_ = np.linalg.lstsq(_map_features(name, c.onehot), np.hstack([c.macs, c.params, c.mem_bytes]), rcond=None)
        _ONEHOT_MAPS[name] = W
    X = np.asarray(X, dtype=np.float64)
    Y = np.clip(_map_features(name, X) @ _ONEHOT_MAPS[name], 0.0, None)
    Y[Y < _MAP_ZERO] = 0.0
    macs, params, mem = np.split(Y, 3, axis=1)
    return LayerCosts(macs=macs, params=params, mem_bytes=mem, onehot=X)


def _map_features(space: str, X: np.ndarray) -> np.ndarray:
    one = np.ones((len(X), 1))
    if space != "ofa_mbv3":
        return np.hstack([X, one])
    layers, r = X[:, :-1], X[:, -1:]
    return np.hstack([layers, layers * r, layers * r * r, one, r, r * r])


def _log_uniform(rng, lo_hi) -> float:
    return float(10.0 ** rng.uniform(*lo_hi))


def synthetic_devices(space: str, n: int, *, seed: int = 0) -> list[SyntheticDevice]:
    """``n`` synthetic devices of ``space`` drawn with ``seed`` (the same seed gives the same devices)."""
    from edgeperf import spaces

    space = spaces.get(space).name
    if n < 1:
        raise ArchitectureError(f"expected n >= 1 synthetic devices, got {n}")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        out.append(SyntheticDevice(
            name=f"syn-{space}-{seed}-{k}",
            space=space,
            peak_macs_per_s=_log_uniform(rng, _LOG10_PEAK_MACS_PER_S),
            bandwidth_bytes_per_s=_log_uniform(rng, _LOG10_BANDWIDTH_BYTES_PER_S),
            wave_macs=_log_uniform(rng, _LOG10_WAVE_MACS),
            launch_ms=_log_uniform(rng, _LOG10_LAUNCH_MS),
            fixed_ms=_log_uniform(rng, _LOG10_FIXED_MS),
            overlap=float(rng.uniform(*_OVERLAP)),
            precision=str(rng.choice(list(_PRECISIONS))),
            batch_size=int(rng.choice(_BATCH_SIZES)),
            quirk_seed=int(rng.integers(2**31)),
            quirk_sigma=float(rng.uniform(*_QUIRK_SIGMA)),
        ))
    return out


def synthetic_device(name: str) -> SyntheticDevice:
    """The synthetic device called ``name`` (``syn-<space>-<seed>-<k>``), regenerated exactly."""
    parts = name.split("-") if isinstance(name, str) else []
    if len(parts) != 4 or parts[0] != "syn" or not parts[2].isdigit() or not parts[3].isdigit():
        raise ArchitectureError(f"expected a synthetic device name syn-<space>-<seed>-<k>, got {name!r}")
    return synthetic_devices(parts[1], int(parts[3]) + 1, seed=int(parts[2]))[int(parts[3])]


def synthetic_table(space: str, archs, n: int, *, seed: int = 0):
    """A :class:`MeasurementTable` of ``n`` synthetic devices' latencies on ``archs``."""
    import pandas as pd

    from edgeperf import spaces
    from edgeperf.datasets._table import MeasurementTable

    sp = spaces.get(space)
    canon = sp.validate(list(archs))
    devices = synthetic_devices(sp.name, n, seed=seed)
    costs = layer_costs(sp.name, canon)
    Y = bank_latency_ms(device_bank(devices, costs.onehot.shape[1]), costs)
    frames = [pd.DataFrame({"space": sp.name, "arch": canon, "device": d.name, "metric": "latency_ms", "value": y})
              for d, y in zip(devices, Y)]
    return MeasurementTable(pd.concat(frames, ignore_index=True), devices_info={d.name: d.spec() for d in devices},
                            source=f"synthetic({sp.name}, n={n}, seed={seed})")
