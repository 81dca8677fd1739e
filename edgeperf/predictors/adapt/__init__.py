"""Few-shot adaptation strategies: how a joint model learns an unseen device from a few measurements.

Each strategy is an :class:`AdaptStrategy` registered by name; ``JointPredictor.adapt(...,
strategy=name)`` picks one (default :data:`DEFAULT`, chosen by ``benchmarks/fewshot_unseen.py``).

>>> from edgeperf.predictors import adapt
>>> adapt.names()[:3]
['bayes', 'combination', 'nnls']

A new strategy: subclass :class:`AdaptStrategy` in a private module of this package, decorate it
with ``@register("name")`` and import the module below; the conformance suite
(``tests/test_adapt_conformance.py``) then tests it like every other.
"""

from __future__ import annotations

from edgeperf.predictors.adapt._base import MIN_MEASUREMENTS, STATE_VERSION, AdaptData, AdaptHost, AdaptStrategy, AdditiveMs, AffineForm
from edgeperf.predictors.adapt._registry import get, names, register
from edgeperf.predictors.adapt._robust import fit_robust

# Built-in strategies (each module registers its classes on import; all are numpy/scipy only).
from edgeperf.predictors.adapt import _combination  # noqa: E402,F401  isort: skip
from edgeperf.predictors.adapt import _bayes  # noqa: E402,F401  isort: skip
from edgeperf.predictors.adapt import _signature  # noqa: E402,F401  isort: skip
from edgeperf.predictors.adapt import _synthetic  # noqa: E402,F401  isort: skip
from edgeperf.predictors.adapt import _analytic  # noqa: E402,F401  isort: skip
from edgeperf.predictors.adapt import _stack  # noqa: E402,F401  isort: skip

__all__ = ["AdaptStrategy", "AdaptData", "AdaptHost", "AdditiveMs", "AffineForm", "register", "get", "names", "DEFAULT", "STATE_VERSION",
           "MIN_MEASUREMENTS", "fit_robust"]

#: The default strategy, chosen by measurement on the adversarial splits of benchmarks/fewshot_unseen.py
#: (mean and worst split over NAS-Bench-201, FBNet and OFA; it replaced "nnls+bayes").
DEFAULT = "stack"
