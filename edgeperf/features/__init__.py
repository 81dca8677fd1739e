"""Generic, fixed-length graph features of any ONNX model or torch module.

>>> from edgeperf import features
>>> v = features.onnx_features("model.onnx")          # doctest: +SKIP
>>> len(v) == len(features.FEATURE_NAMES)              # doctest: +SKIP
True

Columns: for each op type of :data:`OP_VOCABULARY` and ``other``: node count, million MACs,
million parameters, output activation megabytes; then whole-graph totals (:data:`TOTAL_FIELDS`).
``arch_features(space, archs)`` gives the same features for architectures of a search space
(builds and exports each one: slow).
"""

from __future__ import annotations

from edgeperf.features._graph import (
    FEATURE_NAMES,
    OP_VOCABULARY,
    OTHER,
    PER_OP_FIELDS,
    TOTAL_FIELDS,
    arch_features,
    onnx_features,
    torch_features,
)

__all__ = [
    "FEATURE_NAMES",
    "OP_VOCABULARY",
    "OTHER",
    "PER_OP_FIELDS",
    "TOTAL_FIELDS",
    "onnx_features",
    "torch_features",
    "arch_features",
]
