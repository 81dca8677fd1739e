"""``analytic`` fits an additive device, ``stack`` finds the candidate that fits the target (beyond
the conformance suite)."""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf import metrics
from edgeperf.predictors import adapt
from edgeperf.predictors.adapt._analytic import analytic_features
from edgeperf.predictors.adapt._stack import CANDIDATES, stack_weights

SPACE = "nasbench201"


def _additive_device(X):
    """A device whose latency is exactly additive over operator types (per MAC, per byte, per launch)."""
    F = analytic_features(SPACE, X)
    rng = np.random.default_rng(3)
    coef = rng.uniform(0.0, 1.0, F.shape[1]) / np.maximum(F.mean(axis=0), 1e-9) * (rng.uniform(size=F.shape[1]) < 0.6)
    return 0.5 + F @ coef


@pytest.fixture(scope="module")
def phones_only():
    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    archs = set(wide.index[wide["arch_index"] < 300]) | set(ep.predictors.reference_archs(SPACE))
    sub = table.select(devices=["pixel3", "samsung_a50"], archs=archs)
    return ep.JointPredictor(model_params={"n_estimators": 30}).fit(sub), wide


def _sets(wide):
    archs = ep.predictors.reference_archs(SPACE) + list(wide.index[(wide["arch_index"] >= 300) & (wide["arch_index"] < 310)])
    test = list(wide.index[(wide["arch_index"] >= 1000) & (wide["arch_index"] < 1400)])
    return archs, test


def test_analytic_recovers_an_additive_device_from_20_measurements(phones_only):
    p, wide = phones_only
    archs, test = _sets(wide)
    sp = ep.spaces.get(SPACE)
    truth = _additive_device(sp.encode(test, "onehot"))
    p.adapt("additive", archs=archs, values=_additive_device(sp.encode(archs, "onehot")), strategy="analytic",
            overwrite=True)
    pred = p.predict(test, device="additive")
    assert metrics.spearman(truth, pred) > 0.95
    assert np.median(np.abs(pred / truth - 1.0)) < 0.08
    # the phones' own combination cannot order this device as well
    p.adapt("additive-nnls", archs=archs, values=_additive_device(sp.encode(archs, "onehot")), strategy="nnls",
            overwrite=True)
    assert metrics.spearman(truth, p.predict(test, device="additive-nnls")) < metrics.spearman(truth, pred)


def test_analytic_features_are_costs_per_operator_type():
    sp = ep.spaces.get(SPACE)
    X = sp.encode(sp.sample(50, seed=0), "onehot")
    F = analytic_features(SPACE, X)
    assert F.shape == (50, 3 * 5 + 2) and (F >= 0).all()
    # per-type MACs add up to the searchable layers' MACs; counts add up to the number of edges
    from edgeperf.datasets.synthetic import onehot_layer_costs

    c = onehot_layer_costs(SPACE, X)
    np.testing.assert_allclose(F[:, :5].sum(axis=1), c.macs[:, :-1].sum(axis=1), rtol=1e-9)
    np.testing.assert_allclose(F[:, 10:15].sum(axis=1), len(sp.choices))


def test_stack_weights_are_convex_and_pick_the_column_that_predicts():
    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    P = np.column_stack([y + rng.normal(0, 1.0, 20), y + rng.normal(0, 0.01, 20), rng.normal(size=20)])
    w = stack_weights(P, y)
    assert (w >= 0).all() and np.isclose(w.sum(), 1.0)
    assert w[1] > 0.95


def test_stack_gives_the_weight_to_the_candidate_that_fits_the_target(phones_only):
    p, wide = phones_only
    archs, test = _sets(wide)
    sp = ep.spaces.get(SPACE)
    p.adapt("additive-stack", archs=archs, values=_additive_device(sp.encode(archs, "onehot")), strategy="stack",
            overwrite=True)
    s = p.adapters_["additive-stack"]
    weights = dict(zip(s.candidates_, s.stack_weights_))
    assert set(s.candidates_) <= set(CANDIDATES)
    assert weights.get("analytic", 0.0) > 0.8
    truth = _additive_device(sp.encode(test, "onehot"))
    assert metrics.spearman(truth, p.predict(test, device="additive-stack")) > 0.95
    # its leave-one-out residuals are out of sample: not smaller than the chosen candidate's in-sample fit
    assert s.loo_log_residuals_.shape == (len(archs),) and np.isfinite(s.loo_log_residuals_).all()
    assert "stack" in adapt.names()
