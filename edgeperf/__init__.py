"""edgeperf: latency and energy prediction for DNNs on many edge devices.

Quick start::

    import edgeperf as ep
    table = ep.datasets.load("help-nb201")
    p = ep.JointPredictor().fit(table)
    p.predict("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
              device="pixel3")

Sub-packages are imported on first use, so ``import edgeperf`` stays fast and
torch or TVM load only when a profiler or a torch model needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgeperf._version import __version__
from edgeperf.errors import EdgePerfError

__all__ = [
    "__version__",
    "EdgePerfError",
    "errors",
    "spaces",
    "datasets",
    "features",
    "profilers",
    "predictors",
    "proxy",
    "pretrained",
    "farm",
    "optimize",
    "bespoke",
    "JointPredictor",
    "load",
]

# farm and bespoke need their extras; every sub-package is imported only when used.
_SUBMODULES = {"errors", "spaces", "datasets", "features", "profilers", "predictors", "proxy", "farm", "optimize",
               "bespoke"}
_PREDICTOR_NAMES = {"JointPredictor": "JointPredictor", "load": "load"}

if TYPE_CHECKING:  # pragma: no cover
    from edgeperf import datasets, errors, features, predictors, profilers, proxy, spaces
    from edgeperf.predictors import JointPredictor, load


def __getattr__(name: str):
    if name == "pretrained":  # ep.pretrained.load("help-nb201"): the shipped predictors
        return importlib.import_module("edgeperf.predictors.pretrained")
    if name in _SUBMODULES:
        return importlib.import_module(f"edgeperf.{name}")
    if name in _PREDICTOR_NAMES:
        return getattr(importlib.import_module("edgeperf.predictors"), _PREDICTOR_NAMES[name])
    raise AttributeError(f"module 'edgeperf' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
