"""The measurement protocol: outlier rejection, stability re-measurement, timing with a fake clock."""

import itertools

import numpy as np
import pytest

from edgeperf.errors import ProfilingError
from edgeperf.profilers import MeasurementProtocol, TimingStats


def test_outliers_are_rejected_and_median_reported():
    samples = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98, 50.0]  # one run hit by a context switch
    stats = TimingStats.from_samples(samples)
    assert stats.rejected == 1
    assert stats.runs == 8
    assert stats.median_ms == pytest.approx(1.0)
    assert stats.cv < 0.1
    kept_all = TimingStats.from_samples(samples, reject_outliers=False)
    assert kept_all.rejected == 0 and kept_all.mean_ms > 5


def test_too_few_samples_are_not_trimmed():
    stats = TimingStats.from_samples([1.0, 1.0, 9.0])  # fewer than 8: no fences
    assert stats.runs == 3 and stats.rejected == 0


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [1.0, -2.0], [1.0, float("nan")], [float("inf")]])
def test_non_positive_or_non_finite_samples_raise(bad):
    with pytest.raises(ProfilingError, match="positive finite"):
        TimingStats.from_samples(bad)


def test_high_cv_round_is_measured_again_and_steady_round_wins():
    noisy = [1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0]  # bimodal: no outliers, CV ~0.5
    steady = [2.0, 2.02, 1.98, 2.0, 2.01, 1.99, 2.0, 2.0, 2.0, 2.0]
    rounds = iter([noisy, steady, steady])
    calls = []

    def one_round():
        calls.append(1)
        return next(rounds)

    stats = MeasurementProtocol(max_cv=0.05, max_rounds=3).stabilize(one_round)
    assert len(calls) == 2  # stopped once a round was steady
    assert stats.attempts == 2
    assert stats.median_ms == pytest.approx(2.0)
    assert stats.cv <= 0.05


def test_gives_up_after_max_rounds_and_keeps_the_steadiest():
    rng = np.random.default_rng(0)
    spreads = [0.6, 0.3, 0.5]
    rounds = iter([list(1.0 + s * rng.uniform(-1, 1, 30)) for s in spreads])
    calls = []

    def one_round():
        calls.append(1)
        return next(rounds)

    stats = MeasurementProtocol(max_cv=0.01, max_rounds=3).stabilize(one_round)
    assert len(calls) == 3
    assert stats.attempts == 2  # the round with spread 0.3 had the lowest CV


def test_a_device_tools_summary_is_accepted_as_is():
    summary = TimingStats(median_ms=5.0, mean_ms=5.1, std_ms=0.1, p10_ms=4.9, p90_ms=5.3, min_ms=4.8, cv=0.02, runs=50)
    stats = MeasurementProtocol().stabilize(lambda: summary)
    assert stats.median_ms == 5.0 and stats.runs == 50 and stats.attempts == 1


def test_measure_with_fake_clock_counts_warmup_and_repeats():
    # Each call of the fake clock advances 1 ms; a run spans exactly two reads -> 1 ms per run.
    ticks = itertools.count(step=1e-3)
    runs = []
    proto = MeasurementProtocol(warmup=3, repeats=7, max_rounds=1)
    stats = proto.measure(lambda: runs.append(1), clock=lambda: next(ticks))
    assert len(runs) == 3 + 7
    assert stats.runs == 7
    assert stats.median_ms == pytest.approx(1.0)
    assert stats.cv == pytest.approx(0.0, abs=1e-9)


def test_measure_remeasures_when_fake_clock_is_noisy():
    # First round: alternating 1 ms / 4 ms runs (CV ~0.6); afterwards every run takes 2 ms.
    durations = iter([1e-3, 4e-3] * 5 + [2e-3] * 100)
    now = [0.0]
    reads = itertools.count()

    def clock():
        # even reads start a run, odd reads end it after the next duration
        if next(reads) % 2:
            now[0] += next(durations)
        return now[0]

    stats = MeasurementProtocol(warmup=0, repeats=10, max_cv=0.1, max_rounds=3).measure(lambda: None, clock=clock)
    assert stats.attempts == 2
    assert stats.median_ms == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs", [dict(repeats=0), dict(warmup=-1), dict(max_rounds=0), dict(max_cv=0)])
def test_invalid_protocol_settings_raise(kwargs):
    with pytest.raises(ValueError):
        MeasurementProtocol(**kwargs)
