"""Analytic cost model shared by the spaces' ``structural`` encodings (no torch needed).

Conventions, chosen so the numbers can be checked against a built torch module:

- ``macs``: multiply-accumulates of Conv2d and Linear layers only (what forward hooks on
  those two module types count); BN, activations, pooling and adds count 0 MACs.
- ``params``: trainable parameters (``sum(p.numel())``): conv/linear weights and biases and
  BatchNorm affine weight and bias (running statistics are buffers, not parameters).
- ``mem_bytes``: memory traffic of the layers that would run as separate kernels after
  BN/activation fusion: input activations + output activations + weights, float32. Identity
  layers move nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Bytes of one float32 element (models are built and exported in float32).
BYTES_PER_ELEMENT = 4
#: Scales used by the structural encodings: log1p(value / scale) keeps features O(1..10).
MACS_SCALE = 1e6  # per million MACs
PARAMS_SCALE = 1e3  # per thousand parameters
MEM_BYTES_SCALE = 1e3  # per kilobyte
#: Names of the three numbers each structural position carries (units in the names).
COST_FIELDS = ("log1p_mmacs", "log1p_kparams", "log1p_kbytes")


@dataclass(frozen=True)
class Cost:
    """Cost of a layer or a network (see module docstring for the counting rules)."""

    macs: int = 0
    params: int = 0
    mem_bytes: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.params + other.params, self.mem_bytes + other.mem_bytes)

    def scaled(self, times: int) -> "Cost":
        return Cost(self.macs * times, self.params * times, self.mem_bytes * times)

    def features(self) -> list[float]:
        """The three normalised numbers of :data:`COST_FIELDS`."""
        return [
            math.log1p(self.macs / MACS_SCALE),
            math.log1p(self.params / PARAMS_SCALE),
            math.log1p(self.mem_bytes / MEM_BYTES_SCALE),
        ]


def total(costs) -> Cost:
    out = Cost()
    for c in costs:
        out = out + c
    return out


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial output size of a convolution or pooling window (PyTorch floor rule)."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d(
    c_in: int, c_out: int, kernel: int, size: int, *, stride: int = 1, padding: int | None = None,
    groups: int = 1, bias: bool = False, bn: bool = False,
) -> tuple[Cost, int]:
    """Cost of a square Conv2d on a ``size x size`` input (+ optional BN); returns (cost, out size)."""
    padding = kernel // 2 if padding is None else padding
    out = conv_out(size, kernel, stride, padding)
    weights = c_out * (c_in // groups) * kernel * kernel
    macs = weights * out * out
    params = weights + (c_out if bias else 0) + (2 * c_out if bn else 0)
    mem = (c_in * size * size + c_out * out * out + weights + (c_out if bias else 0)) * BYTES_PER_ELEMENT
    return Cost(macs, params, mem), out


def linear(n_in: int, n_out: int, *, bias: bool = True) -> Cost:
    weights = n_in * n_out + (n_out if bias else 0)
    return Cost(n_in * n_out, weights, (n_in + n_out + weights) * BYTES_PER_ELEMENT)


def batchnorm(channels: int) -> Cost:
    """A stand-alone BatchNorm2d: parameters only (it folds into the conv before it)."""
    return Cost(0, 2 * channels, 0)


def elementwise(elements_in: int, elements_out: int) -> Cost:
    """A parameter-free layer that reads and writes activations (pooling, zeroing, adding)."""
    return Cost(0, 0, (elements_in + elements_out) * BYTES_PER_ELEMENT)


def structural_vector(positions: list[Cost], network: Cost, extra: list[float] = ()) -> np.ndarray:
    """Per-position cost features, then whole-network totals, then any ``extra`` numbers."""
    values: list[float] = []
    for c in positions:
        values += c.features()
    values += network.features()
    values += list(extra)
    return np.asarray(values, dtype=np.float32)


def structural_names(position_names: list[str], extra: list[str] = ()) -> list[str]:
    names = [f"{p}:{f}" for p in position_names for f in COST_FIELDS]
    return names + [f"total:{f}" for f in COST_FIELDS] + list(extra)


#: Columns of :meth:`SearchSpace.cost_matrix`, in order (raw counts; units in the names).
COST_COLUMNS = ("macs", "params", "mem_bytes")


def as_row(cost: Cost) -> np.ndarray:
    return np.array([cost.macs, cost.params, cost.mem_bytes], dtype=np.float64)


class AdditiveCostTable:
    """Whole-network costs of many one-hot rows at once.

    The analytic cost of every space here is a fixed part plus one independent term per
    layer position, and that term depends only on the choice made at that position (for
    OFA, also on the resolution). So one network per choice, with that choice everywhere,
    gives the term of every position; the fixed part is the rest of its total. Costs of
    any row are then a table lookup: exact, and vectorised where ``network_costs`` is a
    Python loop per architecture.
    """

    def __init__(self, network_costs, uniform_archs):
        """``uniform_archs``: choice -> parsed architecture with that choice at every position."""
        self.choices = list(uniform_archs)
        terms, fixed = [], None
        for choice in self.choices:
            layers, network = network_costs(uniform_archs[choice])
            rows = np.array([as_row(c) for c in layers])
            terms.append(rows)
            rest = as_row(network) - rows.sum(axis=0)
            if fixed is not None and not np.array_equal(rest, fixed):
                raise AssertionError("the cost model is not additive over layer positions")
            fixed = rest
        self.terms = np.stack(terms, axis=1)  # (positions, choices, 3)
        self.fixed = fixed

    def costs(self, choice_onehot: np.ndarray) -> np.ndarray:
        """``(n, 3)`` costs of rows given as ``(n, positions, choices)`` indicators."""
        return self.fixed + np.einsum("npc,pcf->nf", choice_onehot.astype(np.float64), self.terms)
