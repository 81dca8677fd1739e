"""The exact fast path of XGBoost joint models (``predictors/_fasttrees.py``) equals XGBoost."""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf.predictors import _fasttrees
from edgeperf.predictors._fasttrees import FastJoint, TreeArrays

from _predictor_support import small_joint_with_adapted


def _booster(seed=0, n=600, k=4, d=12, missing=0.15):
    """A booster over [k fixed features, d free ones], trained with missing values in both."""
    import xgboost

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k + d)).astype(np.float32)
    X[:, k : k + 4] = rng.integers(0, 2, size=(n, 4))  # one-hot-like binary columns too
    y = X[:, 0] * X[:, k] + np.sin(X[:, 1]) + X[:, k + 5] ** 2 + rng.normal(scale=0.1, size=n)
    X[rng.random(X.shape) < missing] = np.nan
    params = {"max_depth": 5, "eta": 0.2, "tree_method": "hist", "nthread": 1, "seed": seed}
    return xgboost.train(params, xgboost.DMatrix(X, label=y), num_boost_round=25), rng, k, d


@pytest.mark.parametrize("rows", [1, 7, 300])  # 300 > NUMPY_MAX_ROWS: the specialised XGBoost model
def test_specialised_trees_equal_the_booster_with_missing_values(rows):
    booster, rng, k, d = _booster()
    trees = TreeArrays(booster)
    for fixed in (rng.normal(size=k), np.array([np.nan, 0.3, np.nan, -1.0]), np.zeros(k)):
        fixed = fixed.astype(np.float32)
        st = trees.specialise(fixed)
        X = rng.normal(size=(rows, d)).astype(np.float32)
        X[:, :4] = rng.integers(0, 2, size=(rows, 4))
        X[rng.random(X.shape) < 0.2] = np.nan
        X[0, 3], X[-1, 6] = np.inf, -np.inf
        full = np.hstack([np.broadcast_to(fixed, (rows, k)), X]).astype(np.float32)
        want = booster.inplace_predict(full).astype(np.float64)
        np.testing.assert_array_equal(st.predict(X), want)
        clean = np.nan_to_num(X, nan=0.5)  # the branch without missing values
        want = booster.inplace_predict(np.hstack([np.broadcast_to(fixed, (rows, k)), clean]).astype(np.float32))
        np.testing.assert_array_equal(st.predict(clean), want.astype(np.float64))


def test_specialisation_drops_the_fixed_features_and_is_memoised():
    booster, rng, k, d = _booster(seed=1, missing=0.0)
    fast = FastJoint(booster, max_embeddings=2)
    e1, e2, e3 = (rng.normal(size=k).astype(np.float32) for _ in range(3))
    st = fast.specialised(e1)
    assert st.n_features == d and (st.feature[~st.is_leaf] < d).all()
    assert fast.specialised(e1) is st
    fast.specialised(e2), fast.specialised(e3)
    assert fast.specialised(e1) is not st  # evicted: the memo is bounded
    assert fast.specialised(e3) is fast.specialised(e3)


@pytest.fixture(scope="module", params=["fbnet", "ofa_mbv3"])
def fitted(request):
    return small_joint_with_adapted(
        request.param, {"default": None, "sig": "signature+calibration"}
    )


def _reference(p, archs, device, method="predict", **kw):
    """The prediction through the full booster only."""
    p._fast_joint = lambda: None
    try:
        return getattr(p, method)(archs, device=device, **kw)
    finally:
        del p._fast_joint


def test_fast_path_equals_xgboost_for_trained_and_adapted_devices(fitted, tmp_path, monkeypatch):
    space = ep.spaces.get(fitted.space_)
    archs = space.sample(600, seed=5)
    loaded = ep.load(fitted.save(tmp_path / "m.edgeperf"))
    for p in (fitted, loaded):
        for dev in (fitted.train_devices_[0], fitted.train_devices_[-1], "default", "sig"):
            want = _reference(p, archs, dev)
            got = np.concatenate([p.predict(archs[i : i + 100], device=dev) for i in range(0, 600, 100)])
            np.testing.assert_allclose(got, want, rtol=1e-6)
            assert p.predict(archs[3], device=dev) == pytest.approx(want[3], rel=1e-6)
            for got, want in zip(p.predict(archs[:50], device=dev, return_std=True),
                                 _reference(p, archs[:50], dev, return_std=True)):
                np.testing.assert_allclose(got, want, rtol=1e-6)
            np.testing.assert_allclose(p.predict_quantile(archs[:50], device=dev, q=0.9),
                                       _reference(p, archs[:50], dev, "predict_quantile", q=0.9), rtol=1e-6)
    monkeypatch.setattr(_fasttrees, "BOOSTER_MIN_ROWS", 300)  # big batches: the specialised XGBoost model
    monkeypatch.setattr(_fasttrees, "BOOSTER_MIN_NODES", 0)
    X = space.encode(archs)
    for dev in (fitted.train_devices_[1], "default"):
        np.testing.assert_allclose(loaded.predict(X, device=dev), _reference(loaded, X, dev), rtol=1e-6)


def test_fast_path_follows_a_new_adaptation_and_refit(fitted):
    space = ep.spaces.get(fitted.space_)
    archs = space.sample(50, seed=8)
    refs = list(fitted.reference_archs_)
    ad = refs + space.sample(10, seed=9)
    values = np.exp(0.5 * np.log(fitted.predict(ad, device=fitted.train_devices_[0])) + 1.0)
    fitted.adapt("later", archs=ad, values=values, strategy="signature")
    np.testing.assert_allclose(fitted.predict(archs, device="later"), _reference(fitted, archs, "later"), rtol=1e-6)
    fitted.adapt("later", archs=ad, values=values * 2.0, strategy="signature", overwrite=True)
    np.testing.assert_allclose(fitted.predict(archs, device="later"), _reference(fitted, archs, "later"), rtol=1e-6)


def test_an_unsupported_booster_falls_back_to_the_full_model():
    import xgboost

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    booster = xgboost.train({"objective": "reg:absoluteerror", "max_depth": 3, "nthread": 1},
                            xgboost.DMatrix(X, label=X[:, 0]), num_boost_round=5)
    fast = FastJoint(booster)
    assert fast.predict(np.zeros(2, np.float32), X[:3, 2:]) is None
    assert fast.predict_many([np.zeros(2, np.float32)] * 2, X[:3, 2:]) is None
