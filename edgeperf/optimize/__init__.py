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

from edgeperf.optimize import objectives, optimizers
from edgeperf.optimize._designer import Designer, device_features, load_designer
from edgeperf.optimize._search import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MARGIN,
    Design,
    InfeasibleBudgetWarning,
    SearchResult,
    search,
)

__all__ = [
    "search",
    "Design",
    "SearchResult",
    "Designer",
    "load_designer",
    "device_features",
    "InfeasibleBudgetWarning",
    "DEFAULT_MARGIN",
    "DEFAULT_CONFIDENCE",
    "objectives",
    "optimizers",
]
