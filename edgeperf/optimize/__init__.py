"""Optimisation for many devices at once: the best design under a latency (and energy)
budget, by search and by a network that maps device features and a budget to a design.

>>> import edgeperf as ep                                                   # doctest: +SKIP
>>> p = ep.JointPredictor().fit(ep.datasets.load("help-nb201"))             # doctest: +SKIP
>>> r = ep.optimize.search(p, objective="nb201-cifar10", budget_ms={"pixel3": 20, "1080ti_1": 5})  # doctest: +SKIP
>>> r["pixel3"].arch, r["pixel3"].latency_ms, r["pixel3"].objective       # doctest: +SKIP
>>> d = ep.optimize.Designer().fit(p, objective="nb201-cifar10")            # doctest: +SKIP
>>> d.design(device="pixel3", budget_ms=20)                                 # doctest: +SKIP

Sub-packages: :mod:`~edgeperf.optimize.objectives` (what "best" means) and
:mod:`~edgeperf.optimize.optimizers` (how a search explores a space).
"""

from __future__ import annotations

import importlib

from edgeperf.optimize import objectives, optimizers

# Search and designer import scikit-learn (through NotFittedError and BaseEstimator): load them on
# first use so that `edgeperf --help` and the objective registry stay light.
_LAZY = {
    "Designer": "_designer", "device_features": "_designer", "load_designer": "_designer",
    "DEFAULT_CONFIDENCE": "_search", "DEFAULT_MARGIN": "_search", "Design": "_search",
    "InfeasibleBudgetWarning": "_search", "LatencyBound": "_search", "SearchResult": "_search",
    "search": "_search", "DEFAULT_TOLERANCE": "_search", "resolve_tolerance": "_search",
    "resolve_measured": "_search", "search_precisions": "_precision", "PrecisionDesign": "_precision",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"edgeperf.optimize.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "search",
    "Design",
    "SearchResult",
    "Designer",
    "load_designer",
    "device_features",
    "InfeasibleBudgetWarning",
    "LatencyBound",
    "DEFAULT_MARGIN",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_TOLERANCE",
    "resolve_tolerance",
    "resolve_measured",
    "search_precisions",
    "PrecisionDesign",
    "objectives",
    "optimizers",
]


def __dir__():
    return sorted(__all__)
