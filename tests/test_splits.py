"""Adversarial device splits of the few-shot benchmark (benchmarks/_splits.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _splits import (  # noqa: E402
    cross_correlation,
    hardware_type_splits,
    least_correlated_bisections,
    rank_correlations,
)


def _two_families(n_archs=200, seed=0):
    """Latencies of 8 devices: 4 follow one cost, 4 another, independent one."""
    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(size=n_archs), rng.lognormal(size=n_archs)
    cols = [a * rng.lognormal(0, 0.05, n_archs) for _ in range(4)] + [b * rng.lognormal(0, 0.05, n_archs) for _ in range(4)]
    devices = [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)]
    return devices, np.column_stack(cols)


def test_rank_correlations_are_spearman():
    devices, Y = _two_families()
    from scipy.stats import spearmanr

    C = rank_correlations(Y)
    assert C.shape == (8, 8)
    assert C[0, 5] == pytest.approx(spearmanr(Y[:, 0], Y[:, 5]).statistic)
    assert np.allclose(np.diag(C), 1.0)


def test_bisection_separates_uncorrelated_families():
    devices, Y = _two_families()
    C = rank_correlations(Y)
    splits = least_correlated_bisections(devices, C, seeds=(0, 1, 2))
    assert splits, "expected at least one split"
    for train, test in splits:
        assert set(train).isdisjoint(test) and set(train) | set(test) == set(devices)
        assert {d[0] for d in train} != {d[0] for d in test}
        assert len({d[0] for d in train}) == 1  # the cut follows the families
        assert cross_correlation(train, test, devices, C) < 0.3
    # each bisection is used in both directions, and repeated ones are dropped
    assert len(splits) == 2


def test_bisection_is_less_correlated_than_a_random_split():
    rng = np.random.default_rng(3)
    devices, Y = _two_families(seed=3)
    C = rank_correlations(Y)
    train, test = least_correlated_bisections(devices, C, seeds=(0,))[0]
    perm = list(rng.permutation(devices))
    assert cross_correlation(train, test, devices, C) < cross_correlation(perm[:4], perm[4:], devices, C)


def test_hardware_type_splits_hold_out_each_type_whole():
    devices = ["gpu_1", "gpu_32", "cpu_a", "phone_x", "phone_y"]
    type_of = lambda d: d.split("_")[0]  # noqa: E731
    splits = hardware_type_splits(devices, type_of)
    assert [t for t, _, _ in splits] == ["cpu", "gpu", "phone"]
    for t, train, test in splits:
        assert all(type_of(d) == t for d in test) and all(type_of(d) != t for d in train)
        assert sorted(train + test) == sorted(devices)
    assert hardware_type_splits(["gpu_1", "gpu_2"], type_of) == []  # nothing left to train on
