"""Single-architecture evaluation from decisions (``predictors/_fastcodes.py``) equals XGBoost.

Covers the pieces (decision blocks against ``space.encode``, leaf masks against the tree walk,
per-code costs against ``cost_matrix``) and the predictor path built on them: trained and adapted
devices of FBNet and OFA, single strings and batches, strings with whitespace, invalid strings
(the same errors as before), and a strategy without an affine form (the general path).
"""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf.errors import ArchitectureError, UnknownDeviceError
from edgeperf.predictors import _joint
from edgeperf.predictors._fastcodes import AdditiveCosts, CodeEvaluator, DecisionBlocks, LeafMasks
from edgeperf.predictors._fasttrees import TreeArrays
from edgeperf.spaces._base import SearchSpace

from _predictor_support import small_joint_with_adapted

SPACES = ["fbnet", "ofa_mbv3"]


@pytest.mark.parametrize("name", SPACES)
def test_feature_decisions_are_what_each_column_depends_on(name):
    """Redrawing every decision outside a column's declared set never changes that column."""
    space = ep.spaces.get(name)
    deps = space.feature_decisions("onehot")
    sizes = [len(o) for _, o in space.choices]
    rng = np.random.default_rng(0)
    base = rng.integers(0, sizes, size=(200, len(sizes)))
    X = space.encode([space.from_choices(c) for c in base])
    for col in rng.choice(len(deps), size=12, replace=False):
        other = rng.integers(0, sizes, size=base.shape)
        keep = list(deps[col])
        other[:, keep] = base[:, keep]
        Y = space.encode([space.from_choices(c) for c in other])
        np.testing.assert_array_equal(Y[:, col], X[:, col])
    assert space.feature_decisions("structural") is None
    assert ep.spaces.get("nasbench201").feature_decisions() is None  # not described: no decision path


@pytest.mark.parametrize("name", SPACES)
def test_decision_blocks_rebuild_the_encoding_exactly(name):
    space = ep.spaces.get(name)
    blocks = DecisionBlocks(space, "onehot")
    archs = space.sample(500, seed=1)
    rows = blocks.rows(np.array([space.to_choices(a) for a in archs]))
    assert rows.shape == (500, len(blocks.blocks)) and rows.min() >= 0 and rows.max() < blocks.n_rows
    np.testing.assert_array_equal(blocks.encode(rows), space.encode(archs))
    # every decision sits in a block (OFA's stage depth in each of its layers'), FBNet's layers pair up
    assert set(d for b in blocks.blocks for d in b) == set(range(len(space.choices)))
    if name == "fbnet":
        assert len(blocks.blocks) == 11


def _onehot_booster(space, seed, k=3, n=800):
    """A booster over [k device features, one-hot encoding], as the joint model is."""
    import xgboost

    rng = np.random.default_rng(seed)
    X = space.encode(space.sample(n, seed=seed))
    E = rng.normal(size=(n, k)).astype(np.float32)
    w = rng.normal(size=X.shape[1])
    y = X @ w + np.sin(X @ rng.normal(size=X.shape[1])) * E[:, 0] + rng.normal(scale=0.05, size=n)
    params = {"max_depth": 7, "eta": 0.3, "nthread": 1, "seed": seed, "base_score": 0.3}
    return xgboost.train(params, xgboost.DMatrix(np.hstack([E, X]), label=y), num_boost_round=40), k


@pytest.mark.parametrize("name", SPACES)
def test_leaf_masks_equal_the_walk_and_the_booster_bit_for_bit(name):
    space = ep.spaces.get(name)
    booster, k = _onehot_booster(space, seed=2)
    blocks = DecisionBlocks(space, "onehot")
    trees = TreeArrays(booster)
    embeddings = [np.array([0.5, -1.0, 2.0], np.float32), np.zeros(k, np.float32)]
    parts = [LeafMasks(trees.specialise(e), blocks) for e in embeddings]
    archs = space.sample(300, seed=3)
    X = space.encode(archs)
    rows = blocks.rows(np.array([space.to_choices(a) for a in archs]))
    single = CodeEvaluator(parts[:1])
    both = CodeEvaluator(parts)
    for j, e in enumerate(embeddings):
        want = booster.inplace_predict(np.hstack([np.broadcast_to(e, (len(X), k)), X])).astype(np.float64)
        np.testing.assert_array_equal(np.array([both(r)[j] for r in rows]), want)
        if j == 0:
            np.testing.assert_array_equal(np.array([single(r)[0] for r in rows]), want)
        st = trees.specialise(e)
        np.testing.assert_array_equal(st.predict(X), want)
    # the invariant the evaluator rests on: one leaf left per tree, in exactly one of its words
    m = parts[0]
    for r in rows[:20]:
        word = np.bitwise_and.reduce(m.masks[r], axis=0)
        bits = np.unpackbits(word.view(np.uint8)).reshape(m.n_words, -1).sum(axis=1)
        assert set(bits) <= {0, 1} and bits.sum() == trees.specialise(embeddings[0]).n_trees


@pytest.mark.parametrize("name", SPACES)
def test_decoding_encoded_rows_gives_back_their_blocks_or_refuses(name):
    space = ep.spaces.get(name)
    blocks = DecisionBlocks(space, "onehot")
    archs = space.sample(500, seed=11)
    X = space.encode(archs).astype(np.float32)
    rows = blocks.decode(X)
    np.testing.assert_array_equal(blocks.encode(rows), X)  # codes that encode alike are interchangeable
    want = blocks.rows(np.array([space.to_choices(a) for a in archs]))
    np.testing.assert_array_equal(blocks.encode(want), blocks.encode(rows))
    for bad in (X[:, :-1], X + np.float32(0.5)):
        assert blocks.decode(bad) is None
    broken = X.copy()
    broken[7, np.flatnonzero(X[7])[0]] = 0.0  # one row loses a chosen option
    assert blocks.decode(broken) is None


@pytest.mark.parametrize("name", SPACES)
def test_costs_per_code_equal_the_cost_matrix(name):
    space = ep.spaces.get(name)
    blocks = DecisionBlocks(space, "onehot")
    costs = AdditiveCosts(blocks, space.cost_matrix)
    assert (costs.ctx is None) == (name == "fbnet")  # OFA's layer costs depend on the resolution
    archs = space.sample(300, seed=4)
    rows = blocks.rows(np.array([space.to_choices(a) for a in archs]))
    np.testing.assert_array_equal(np.array([costs.costs(r) for r in rows]), space.cost_matrix(space.encode(archs)))


def test_costs_that_do_not_add_up_are_refused():
    space = ep.spaces.get("fbnet")
    blocks = DecisionBlocks(space, "onehot")
    with pytest.raises(ValueError, match="not a sum"):
        AdditiveCosts(blocks, lambda X: space.cost_matrix(X) ** 2)


@pytest.mark.parametrize("name", SPACES)
def test_to_choices_fast_reading_equals_parsing(name):
    space = ep.spaces.get(name)
    archs = space.sample(300, seed=6)
    for a in archs:
        assert space.to_choices(a) == SearchSpace.to_choices(space, a)
    padded = "  " + archs[0] + "\n"
    assert space.to_choices(padded) == SearchSpace.to_choices(space, archs[0])
    if name == "ofa_mbv3":  # spaces inside the JSON, another key order: parsed, same choices
        import json

        d = json.loads(archs[1])
        assert space.to_choices(json.dumps({k: d[k] for k in ("r", "ks", "e", "d")})) == space.to_choices(archs[1])
        bad = [archs[0].replace('"r":', '"r":0'), archs[0].replace('"d":[', '"d":[5,', 1)[:-1], archs[0][:-1],
               archs[0].replace('"ks":[', '"ks":[4', 1)]
    else:
        bad = [archs[0].replace("-", "-k9_e9-", 1), archs[0] + "-skip", "", archs[0].upper()]
    for b in bad:
        with pytest.raises(ArchitectureError) as fast:
            space.to_choices(b)
        with pytest.raises(ArchitectureError) as slow:
            space.parse(b)
        assert str(fast.value) == str(slow.value)


@pytest.fixture(scope="module", params=SPACES)
def fitted(request):
    return small_joint_with_adapted(
        request.param, {"stack": None, "nnls": "nnls", "bayes": "bayes", "sig": "signature", "compact": "compact",
                        "analytic": "analytic"}
    )


def _reference(p, archs, device):
    """Through the full booster only (the instance attribute shadows the fast paths)."""
    p._fast_joint = lambda: None
    try:
        return p.predict(archs, device=device)
    finally:
        del p._fast_joint


def _warm(p, space, device):
    for a in space.sample(_joint.CODE_EVALUATOR_AFTER, seed=123):
        p.predict(a, device=device)


def test_single_calls_through_decisions_equal_xgboost(fitted, tmp_path):
    space = ep.spaces.get(fitted.space_)
    archs = space.sample(400, seed=7)
    loaded = ep.load(fitted.save(tmp_path / "m.edgeperf"))
    devices = (fitted.train_devices_[0], fitted.train_devices_[-1], "stack", "nnls", "bayes", "compact", "analytic")
    for p in (fitted, loaded):
        for dev in devices:
            # additive device models: per-code tables within ADDITIVE_RTOL of their own float sums
            rtol = 1e-8 if dev in ("compact", "analytic") else 1e-12
            want = _reference(p, archs, dev)
            first = p.predict(archs[0], device=dev)  # before the evaluator: the general path
            _warm(p, space, dev)
            # OFA's per-layer costs of one-hot rows are a fitted, clipped map, not a sum per
            # decision: its additive device models keep the general path (still equal below)
            general = fitted.space_ == "ofa_mbv3" and dev in ("compact", "analytic")
            assert (p._code_evaluator(dev) is None) == general
            got = np.array([p.predict(a, device=dev) for a in archs])
            assert isinstance(got[0], float) and first == pytest.approx(got[0], rel=rtol)
            # Same float32 tree sums as XGBoost; the float64 back-transform (and, for adapted
            # devices, float64 terms in another order) may differ in the last bit between numpy's
            # scalar and vectorised exp.
            np.testing.assert_allclose(got, want, rtol=rtol)
            np.testing.assert_allclose(p.predict(archs, device=dev), want, rtol=1e-6)  # batches unchanged
            assert p.predict("  " + archs[5] + "\n", device=dev) == got[5]


def test_the_adapted_forms_use_costs_and_encoding_terms(fitted):
    """The exactness test above covers every kind of term: basis devices, costs, the encoding and
    additive device models."""
    forms = {d: fitted.adapters_[d].affine_form() for d in ("stack", "nnls", "bayes")}
    assert forms["bayes"].encoding is not None and not forms["bayes"].basis
    assert any(k.startswith("@") for k in forms["nnls"].basis) or fitted.space_ == "fbnet"
    assert fitted.adapters_["sig"].affine_form() is None
    for dev in ("compact", "analytic"):
        (term,) = fitted.adapters_[dev].affine_form().additive
        assert term.weight == 1.0 and term.t0_ms >= 0 and term.floor_ms > 0


def test_a_strategy_without_affine_form_and_errors_take_the_general_path(fitted):
    space = ep.spaces.get(fitted.space_)
    archs = space.sample(50, seed=8)
    _warm(fitted, space, "sig")
    assert fitted._code_evaluator("sig") is None
    np.testing.assert_allclose([fitted.predict(a, device="sig") for a in archs], _reference(fitted, archs, "sig"),
                               rtol=1e-6)
    dev = fitted.train_devices_[0]
    _warm(fitted, space, dev)
    bad = archs[0][:-1] if fitted.space_ == "ofa_mbv3" else archs[0] + "-k3_e1"
    with pytest.raises(ArchitectureError) as fast:
        fitted.predict(bad, device=dev)
    with pytest.raises(ArchitectureError) as general:
        fitted.predict([bad], device=dev)
    assert str(fast.value) == str(general.value) and str(fast.value).startswith("architecture #0")
    with pytest.raises(UnknownDeviceError):
        fitted.predict(archs[0], device="no-such-device")
    with pytest.raises(ArchitectureError):
        fitted.predict(12, device=dev)


def test_the_evaluator_follows_a_new_adaptation(fitted):
    space = ep.spaces.get(fitted.space_)
    archs = space.sample(40, seed=9)
    refs = list(fitted.reference_archs_)
    ad = refs + space.sample(10, seed=10)
    base = fitted.predict(ad, device=fitted.train_devices_[0])
    fitted.adapt("moving", archs=ad, values=base * 1.5, strategy="nnls")
    _warm(fitted, space, "moving")
    before = np.array([fitted.predict(a, device="moving") for a in archs])
    fitted.adapt("moving", archs=ad, values=base * 3.0, strategy="nnls", overwrite=True)
    after = np.array([fitted.predict(a, device="moving") for a in archs])  # the general path again
    np.testing.assert_allclose(after, _reference(fitted, archs, "moving"), rtol=1e-12)
    np.testing.assert_allclose(after / before, 2.0, rtol=1e-6)
    _warm(fitted, space, "moving")
    np.testing.assert_allclose([fitted.predict(a, device="moving") for a in archs], after, rtol=1e-12)
