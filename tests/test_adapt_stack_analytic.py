"""``analytic`` and ``compact`` fit an additive device, ``stack`` finds the candidate that fits the
target (beyond the conformance suite)."""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf import metrics
from edgeperf.predictors import adapt
from edgeperf.predictors.adapt._analytic import analytic_features, compact_features
from edgeperf.predictors.adapt._stack import CANDIDATES, stack_weights

SPACE = "nasbench201"


#: strategy -> the cost columns its device model is linear in
FEATURES = {"analytic": analytic_features, "compact": compact_features}


def _additive_device(X, strategy="analytic"):
    """A device whose latency is exactly additive in ``strategy``'s cost columns (analytic: per
    operator type; compact: per MAC and byte of the front and back half, per layer launch)."""
    F = FEATURES[strategy](SPACE, X)
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


@pytest.mark.parametrize("strategy", sorted(FEATURES))
def test_additive_models_recover_their_device_from_20_measurements(phones_only, strategy):
    p, wide = phones_only
    archs, test = _sets(wide)
    sp = ep.spaces.get(SPACE)
    truth = _additive_device(sp.encode(test, "onehot"), strategy)
    values = _additive_device(sp.encode(archs, "onehot"), strategy)
    p.adapt("additive", archs=archs, values=values, strategy=strategy, overwrite=True)
    pred = p.predict(test, device="additive")
    assert metrics.spearman(truth, pred) > 0.95
    assert np.median(np.abs(pred / truth - 1.0)) < 0.08
    # the phones' own combination cannot order this device as well
    p.adapt("additive-nnls", archs=archs, values=values, strategy="nnls", overwrite=True)
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


def test_compact_features_split_costs_by_depth_and_count_layers():
    sp = ep.spaces.get("fbnet")
    X = sp.encode(sp.sample(50, seed=0), "onehot")
    F = compact_features("fbnet", X)
    n_ops = len(sp.choices[0][1])
    assert F.shape == (50, 4 + 1 + n_ops + 2) and (F >= 0).all()
    from edgeperf.datasets.synthetic import onehot_layer_costs

    c = onehot_layer_costs("fbnet", X)
    np.testing.assert_allclose(F[:, 0] + F[:, 1], c.macs[:, :-1].sum(axis=1), rtol=1e-9)  # front + back
    np.testing.assert_allclose(F[:, 2] + F[:, 3], c.mem_bytes[:, :-1].sum(axis=1), rtol=1e-9)
    assert (F[:, 0] > F[:, 1]).any() and (F[:, 0] < F[:, 1]).any()  # the halves are different costs
    np.testing.assert_allclose(F[:, 5 : 5 + n_ops].sum(axis=1), len(sp.choices))  # one option per layer
    assert (F[:, 4] <= len(sp.choices)).all() and (F[:, 4] >= 1).all()
    np.testing.assert_allclose(F[:, -2:], np.column_stack([c.macs[:, -1], c.mem_bytes[:, -1]]))


def test_stack_weights_are_convex_and_pick_the_column_that_predicts():
    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    P = np.column_stack([y + rng.normal(0, 1.0, 20), y + rng.normal(0, 0.01, 20), rng.normal(size=20)])
    w = stack_weights(P, y)
    assert (w >= 0).all() and np.isclose(w.sum(), 1.0)
    assert w[1] > 0.95


@pytest.mark.parametrize("strategy", sorted(FEATURES))
def test_stack_gives_the_weight_to_the_candidate_that_fits_the_target(phones_only, strategy):
    p, wide = phones_only
    archs, test = _sets(wide)
    sp = ep.spaces.get(SPACE)
    p.adapt("additive-stack", archs=archs, values=_additive_device(sp.encode(archs, "onehot"), strategy),
            strategy="stack", overwrite=True)
    s = p.adapters_["additive-stack"]
    weights = dict(zip(s.candidates_, s.stack_weights_))
    assert set(s.candidates_) <= set(CANDIDATES)
    assert weights.get(strategy, 0.0) > 0.8, weights
    truth = _additive_device(sp.encode(test, "onehot"), strategy)
    assert metrics.spearman(truth, p.predict(test, device="additive-stack")) > 0.95
    # its leave-one-out residuals are out of sample: not smaller than the chosen candidate's in-sample fit
    assert s.loo_log_residuals_.shape == (len(archs),) and np.isfinite(s.loo_log_residuals_).all()
    assert "stack" in adapt.names()


def test_a_strategy_registered_after_import_adapts_and_round_trips(phones_only, monkeypatch, tmp_path):
    """Plug-ins: ``adapt`` and the model file ask the registry, not a list taken at import."""
    from edgeperf.predictors.adapt._registry import _STRATEGIES
    from edgeperf.predictors.adapt._stack import StackStrategy

    cls = type("CompactStack", (StackStrategy,), {"name": "stack-compact", "candidates": ("nnls+bayes", "compact")})
    monkeypatch.setitem(_STRATEGIES, "stack-compact", cls)
    p, wide = phones_only
    archs, test = _sets(wide)
    sp = ep.spaces.get(SPACE)
    p.adapt("plugin", archs=archs, values=_additive_device(sp.encode(archs, "onehot"), "compact"),
            strategy="stack-compact", overwrite=True)
    s = p.adapters_["plugin"]
    assert type(s) is cls and set(s.candidates_) <= {"nnls+bayes", "compact"}
    again = ep.load(p.save(tmp_path / "plugin.edgeperf"))
    np.testing.assert_allclose(again.predict(test, device="plugin"), p.predict(test, device="plugin"))
