"""Proxy reuse: rank architectures for a new device with another device's latencies.

- :func:`similarity`: how monotone latency is across devices (device x device
  rank agreement, clustered), from measurements or from a predictor.
- :func:`rank`: rank candidates for a target device using the proxy device(s)
  that agree best with a few target measurements, calibrate milliseconds
  monotonically, adapt when agreement is weak; :func:`select_within_budget`
  keeps the candidates predicted to meet a latency budget.

>>> import edgeperf as ep
>>> table = ep.datasets.load("help-nb201")                                # doctest: +SKIP
>>> r = ep.proxy.rank(candidates, target_archs=measured, target_values=ms,
...                   proxies=table, budget_ms=5.0)                       # doctest: +SKIP
>>> r.proxy, r.path, r.reason, r.agreement, r.order[:5], r.meets_budget  # doctest: +SKIP
>>> ep.proxy.similarity(table).write_report("report/")                  # doctest: +SKIP
"""

from edgeperf.proxy._calibrate import MonotoneCalibrator
from edgeperf.proxy._rank import (
    DEFAULT_AGREEMENT_THRESHOLD,
    NextMeasurement,
    RankResult,
    rank,
    select_within_budget,
)
from edgeperf.proxy._similarity import SimilarityResult, similarity
from edgeperf.proxy._sources import load_any
from edgeperf.proxy._stats import Agreement, agreement, correlation_interval, rank_correlation, topk_overlap

__all__ = [
    "similarity",
    "SimilarityResult",
    "rank",
    "RankResult",
    "NextMeasurement",
    "select_within_budget",
    "MonotoneCalibrator",
    "Agreement",
    "agreement",
    "correlation_interval",
    "rank_correlation",
    "topk_overlap",
    "DEFAULT_AGREEMENT_THRESHOLD",
    "load_any",
]
