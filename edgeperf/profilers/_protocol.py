"""One measurement protocol, shared by every profiler.

Profilers differ only in how they run a model; how many times, what to throw
away and when to measure again is decided here. Latency on a shared machine
is noisy (see docs): the protocol reports the median of the kept runs,
rejects outliers with Tukey's fences, and re-measures when the coefficient of
variation stays above ``max_cv``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from edgeperf.errors import InvalidParameterError, ProfilingError

__all__ = ["MeasurementProtocol", "TimingStats"]

#: Tukey's fence factor: runs beyond Q3 + k*IQR (or below Q1 - k*IQR) are outliers.
_TUKEY_K = 1.5


@dataclass(frozen=True)
class TimingStats:
    """Summary of repeated timed runs of one model, in milliseconds."""

    median_ms: float
    mean_ms: float
    std_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    cv: float  # std / mean of the kept runs
    runs: int  # runs kept
    rejected: int = 0  # runs dropped as outliers
    attempts: int = 1  # measurement rounds it took to get a stable result

    def __post_init__(self) -> None:
        if not (math.isfinite(self.median_ms) and self.median_ms > 0):
            raise ProfilingError(f"expected a positive finite median latency, got {self.median_ms!r} ms")

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], *, reject_outliers: bool = True, attempts: int = 1) -> "TimingStats":
        x = np.asarray(samples_ms, dtype=float)
        if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ProfilingError(f"expected positive finite per-run times, got {x[:10].tolist()}...")
        kept = x
        if reject_outliers and x.size >= 8:
            q1, q3 = np.percentile(x, [25, 75])
            iqr = q3 - q1
            mask = (x >= q1 - _TUKEY_K * iqr) & (x <= q3 + _TUKEY_K * iqr)
            if mask.sum() >= max(3, x.size // 2):
                kept = x[mask]
        mean = float(kept.mean())
        std = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
        p10, p50, p90 = np.percentile(kept, [10, 50, 90])
        return cls(
            median_ms=float(p50),
            mean_ms=mean,
            std_ms=std,
            p10_ms=float(p10),
            p90_ms=float(p90),
            min_ms=float(kept.min()),
            cv=std / mean,
            runs=int(kept.size),
            rejected=int(x.size - kept.size),
            attempts=attempts,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeasurementProtocol:
    """How a model is timed: warm-up, repeats, outlier rejection, stability re-measurement.

    - ``warmup``: untimed runs first (caches, JIT, lazy allocation).
    - ``repeats``: timed runs per round.
    - ``max_cv``: when the kept runs' coefficient of variation is above this, measure another round,
      up to ``max_rounds`` rounds; the round with the lowest CV is reported (its ``attempts`` says
      how many rounds were needed).
    - ``cooldown_s``: sleep between models, so thermal throttling of one does not bleed into the next.
    """

    warmup: int = 10
    repeats: int = 50
    max_cv: float = 0.10
    max_rounds: int = 3
    reject_outliers: bool = True
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.max_rounds < 1:
            raise InvalidParameterError(
                f"expected warmup >= 0, repeats >= 1, max_rounds >= 1; got {self.warmup}, {self.repeats}, {self.max_rounds}"
            )
        if not self.max_cv > 0 or self.cooldown_s < 0:
            raise InvalidParameterError(f"expected max_cv > 0 and cooldown_s >= 0; got {self.max_cv}, {self.cooldown_s}")

    def measure(self, run_once: Callable[[], None], *, clock: Callable[[], float] = time.perf_counter) -> TimingStats:
        """Time ``run_once`` (one forward pass, results already on the host) under this protocol."""
        for _ in range(self.warmup):
            run_once()
        return self.stabilize(lambda: self._round(run_once, clock))

    def _round(self, run_once: Callable[[], None], clock: Callable[[], float]) -> list[float]:
        samples = []
        for _ in range(self.repeats):
            t0 = clock()
            run_once()
            samples.append((clock() - t0) * 1e3)
        return samples

    def stabilize(self, one_round: Callable[[], Sequence[float] | TimingStats]) -> TimingStats:
        """Run ``one_round`` (per-run samples in ms, or a ready summary from a device tool) until the
        spread is under ``max_cv`` or ``max_rounds`` is reached; the steadiest round wins."""
        best: TimingStats | None = None
        for attempt in range(1, self.max_rounds + 1):
            got = one_round()
            stats = got if isinstance(got, TimingStats) else TimingStats.from_samples(
                got, reject_outliers=self.reject_outliers, attempts=attempt
            )
            stats = TimingStats(**{**stats.to_dict(), "attempts": attempt})
            if best is None or stats.cv < best.cv:
                best = stats
            if stats.cv <= self.max_cv:
                break
        if self.cooldown_s:
            time.sleep(self.cooldown_s)
        return best

    def to_dict(self) -> dict:
        return asdict(self)
