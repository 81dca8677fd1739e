"""Designs that choose the precision: search each precision's (device, objective), keep the best."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import edgeperf as ep
from edgeperf.errors import InvalidParameterError, UnknownDeviceError
from edgeperf.optimize import InfeasibleBudgetWarning, objectives, search, search_precisions

from _optimize_support import small_predictor, synthetic_accuracy

ALL = list(ep.spaces.get("nasbench201").enumerate())


@pytest.fixture(scope="module")
def variants():
    """Two 'precisions' of one model: a fast device with a lossy objective, a slow one without loss."""
    acc = synthetic_accuracy()
    lossy = {a: v - 3.0 for a, v in acc.items()}
    return {"fp32": ("pixel3", objectives.get("accuracy", table=acc)),
            "int8": ("1080ti_1", objectives.get("accuracy", table=lossy))}


def test_the_chosen_precision_is_the_best_fitting_one(variants):
    p = small_predictor()
    for budget in [float(np.quantile(p.predict(ALL, device=d), q)) for d in ("pixel3", "1080ti_1") for q in (0.2, 0.6)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InfeasibleBudgetWarning)
            choice = search_precisions(p, variants=variants, budget_ms=budget, tolerance=0)
            each = {k: search(p, objective=o, budget_ms=budget, devices=[d], tolerance=0)[d]
                    for k, (d, o) in variants.items()}
        assert {k: c.arch for k, c in choice.candidates.items()} == {k: d.arch for k, d in each.items()}
        fitting = {k: d for k, d in each.items() if d.feasible}
        if fitting:
            assert choice.precision == max(fitting, key=lambda k: fitting[k].objective)
            assert choice.design == each[choice.precision] and choice.design.feasible


def test_nothing_fits_at_any_precision_warns_and_returns_the_fastest(variants):
    p = small_predictor()
    with pytest.warns(InfeasibleBudgetWarning, match="any precision"):
        choice = search_precisions(p, variants=variants, budget_ms=1e-6)
    assert not choice.design.feasible
    assert choice.design.latency_bound_ms == min(c.latency_bound_ms for c in choice.candidates.values())


@pytest.mark.parametrize("bad", [{}, {"fp32": ("pixel3", "macs")}, {"a": ("pixel3",), "b": ("pixel3", "macs")}, "fp32"])
def test_bad_variants(bad):
    with pytest.raises(InvalidParameterError):
        search_precisions(small_predictor(), variants=bad, budget_ms=5.0)


def test_unknown_device_of_a_precision():
    with pytest.raises(UnknownDeviceError):
        search_precisions(small_predictor(), variants={"fp32": ("pixel3", "macs"), "int8": ("nope", "macs")},
                          budget_ms=5.0)
