"""Latency / energy predictors: per-device models, a joint cross-device model,
few-shot adaptation to unseen devices, and model files.

>>> import edgeperf as ep                                        # doctest: +SKIP
>>> p = ep.JointPredictor().fit(ep.datasets.load("help-nb201"))  # doctest: +SKIP
>>> p.predict(arch, device="gold_6240")                          # doctest: +SKIP
"""

from __future__ import annotations

from edgeperf.predictors._base import BasePredictor
from edgeperf.predictors import adapt
from edgeperf.predictors._io import FORMAT_NAME, FORMAT_VERSION
from edgeperf.predictors._joint import (
    ADAPT_STRATEGIES,
    DEFAULT_ADAPT_STRATEGY,
    MIN_ADAPT_MEASUREMENTS,
    JointPredictor,
)
from edgeperf.predictors._load import load
from edgeperf.predictors._perdevice import PerDevicePredictor
from edgeperf.predictors._reference import DEFAULT_REFERENCE_SET, REFERENCE_SETS, reference_archs
from edgeperf.predictors._regressors import SklearnRegressor, TorchMLPRegressor, XGBoostRegressor

__all__ = [
    "BasePredictor",
    "PerDevicePredictor",
    "JointPredictor",
    "XGBoostRegressor",
    "SklearnRegressor",
    "TorchMLPRegressor",
    "load",
    "adapt",
    "reference_archs",
    "REFERENCE_SETS",
    "DEFAULT_REFERENCE_SET",
    "ADAPT_STRATEGIES",
    "DEFAULT_ADAPT_STRATEGY",
    "MIN_ADAPT_MEASUREMENTS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]
