"""Rank agreement between two series, with a confidence interval that respects small n.

The interval is Fisher's z with the Bonett & Wright (2000) standard errors:
Spearman ``sqrt((1 + r**2 / 2) / (n - 3))``, Kendall ``sqrt(0.437 / (n - 4))``.
They stay honest at the 5-20 target measurements proxy reuse works with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from edgeperf.errors import UnknownNameError

__all__ = ["Agreement", "METHODS", "rank_correlation", "topk_overlap", "correlation_interval", "agreement"]

#: Rank-agreement methods :func:`rank_correlation` knows.
METHODS = ("spearman", "kendall", "topk")
#: |r| is clipped to this before Fisher's z so a perfect sample correlation keeps a finite interval.
MAX_ABS_R = 0.995
#: Bonett & Wright's constant in the Kendall tau standard error.
KENDALL_SE_CONSTANT = 0.437
#: Fewest pairs a correlation is computed from; fewer give NaN.
MIN_PAIRS = 3
#: Default share of architectures counted as "top" by the top-k overlap.
DEFAULT_TOPK_FRACTION = 0.1
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Agreement:
    """A rank correlation ``value`` of ``n`` pairs with its ``[low, high]`` interval."""

    value: float
    low: float
    high: float
    n: int
    method: str = "spearman"
    confidence: float = DEFAULT_CONFIDENCE

    def __str__(self) -> str:
        return f"{self.method} {self.value:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.confidence:.0%} CI, n={self.n})"

    @property
    def width(self) -> float:
        return self.high - self.low

    def to_dict(self) -> dict:
        return asdict(self)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise UnknownNameError("rank-agreement method", method, METHODS)


def topk_overlap(x, y, k: int | None = None) -> float:
    """Share of the ``k`` smallest of ``x`` that are also among the ``k`` smallest of ``y``.

    Smallest = fastest. Ties at the boundary count in (ranks by ``min``), and the
    overlap is divided by the smaller of the two top sets so ties cannot push it over 1.
    """
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n == 0:
        return float("nan")
    k = max(1, int(round(DEFAULT_TOPK_FRACTION * n))) if k is None else int(k)
    k = min(max(k, 1), n)
    top_x = rankdata(x, method="min") <= k
    top_y = rankdata(y, method="min") <= k
    return float((top_x & top_y).sum() / min(top_x.sum(), top_y.sum()))


def rank_correlation(x, y, method: str = "spearman") -> float:
    """Rank agreement of two equally long series (NaN pairs dropped; ties handled).

    Spearman uses average ranks, Kendall is tau-b; both give NaN when one side is
    constant or fewer than :data:`MIN_PAIRS` pairs remain.
    """
    from edgeperf import metrics

    _check_method(method)
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < MIN_PAIRS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    if method == "topk":
        return topk_overlap(x, y)
    if method == "kendall":
        return metrics.kendall(x, y)
    return metrics.spearman(x, y)


def _z_standard_error(r: float, n: int, method: str) -> float:
    if method == "kendall":
        return math.sqrt(KENDALL_SE_CONSTANT / (n - 4)) if n > 4 else math.inf
    return math.sqrt((1.0 + r * r / 2.0) / (n - 3)) if n > 3 else math.inf


def correlation_interval(
    r: float, n: int, method: str = "spearman", confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Fisher-z interval of a Spearman or Kendall correlation ``r`` from ``n`` pairs.

    Too few pairs (n <= 3 for Spearman, n <= 4 for Kendall) or ``r`` NaN give
    ``(-1, 1)``: nothing is known. Top-k overlap has no such theory: ``(0, 1)``.
    """
    from scipy.stats import norm

    _check_method(method)
    if method == "topk":
        return (0.0, 1.0)
    if not np.isfinite(r):
        return (-1.0, 1.0)
    se = _z_standard_error(r, n, method)
    if not np.isfinite(se):
        return (-1.0, 1.0)
    z = math.atanh(float(np.clip(r, -MAX_ABS_R, MAX_ABS_R)))
    half = norm.ppf(0.5 + confidence / 2.0) * se
    return (math.tanh(z - half), math.tanh(z + half))


def agreement(x, y, method: str = "spearman", confidence: float = DEFAULT_CONFIDENCE) -> Agreement:
    """:class:`Agreement` of two series: correlation plus its small-sample interval."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = int((np.isfinite(x) & np.isfinite(y)).sum())
    r = rank_correlation(x, y, method)
    low, high = correlation_interval(r, n, method, confidence)
    return Agreement(value=r, low=low, high=high, n=n, method=method, confidence=confidence)


def interval_width(r: float, n: int, method: str = "spearman", confidence: float = DEFAULT_CONFIDENCE) -> float:
    low, high = correlation_interval(r, n, method, confidence)
    return high - low
