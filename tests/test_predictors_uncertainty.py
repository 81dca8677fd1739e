"""Predictive uncertainty (C1): return_std, predict_quantile, its calibration, and budget picks using it."""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf import proxy
from edgeperf.errors import InvalidParameterError
from edgeperf.predictors import JointPredictor, PerDevicePredictor

FAST = {"n_estimators": 40}
TRAIN = ["1080ti_1", "1080ti_32", "pixel3", "silver_4114", "samsung_a50", "titanx_1"]


@pytest.fixture(scope="module")
def fitted(nb201):
    table, wide = nb201
    archs = set(wide.index[wide["arch_index"] < 400]) | set(ep.predictors.reference_archs("nasbench201"))
    p = JointPredictor(model_params=FAST).fit(table.select(devices=TRAIN, archs=archs))
    ad = ep.predictors.reference_archs("nasbench201") + list(wide.index[500:510])
    p.adapt("cpu", archs=ad, values=wide.loc[ad, "gold_6240"].to_numpy())
    return p


def test_calibration_is_leave_family_out_and_persisted(fitted, tmp_path):
    u = fitted.uncertainty_
    assert u["method"] == "leave-family-out" and u["folds"] == 3 and u["n_devices"] >= 3
    assert u["n_residuals"] > 100 and 0.1 < u["scale"] < 20
    q = ep.load(fitted.save(tmp_path / "m.edgeperf"))
    assert q.uncertainty_ == u
    archs = ep.spaces.get("nasbench201").sample(30, seed=2)
    for dev in ("pixel3", "cpu"):
        np.testing.assert_array_equal(q.predict_quantile(archs, device=dev), fitted.predict_quantile(archs, device=dev))


def test_return_std_and_quantiles(fitted):
    archs = ep.spaces.get("nasbench201").sample(40, seed=1)
    for dev in ("pixel3", "cpu"):
        mean, std = fitted.predict(archs, device=dev, return_std=True)
        np.testing.assert_array_equal(mean, fitted.predict(archs, device=dev))
        assert std.shape == mean.shape and (std > 0).all()
        one, one_std = fitted.predict(archs[0], device=dev, return_std=True)
        assert isinstance(one, float) and isinstance(one_std, float) and one == mean[0]
        q05, q50, q95 = (fitted.predict_quantile(archs, device=dev, q=q) for q in (0.05, 0.5, 0.95))
        np.testing.assert_allclose(q50, mean)
        assert (q05 < mean).all() and (mean < q95).all()
        # log-normal: the quantiles are symmetric in log space around the prediction
        np.testing.assert_allclose(np.log(q95) - np.log(mean), np.log(mean) - np.log(q05))
        assert isinstance(fitted.predict_quantile(archs[0], device=dev), float)
    for bad in (0, 1, 1.5, -0.1, "0.9", True, float("nan")):
        with pytest.raises(InvalidParameterError):
            fitted.predict_quantile(archs, device="cpu", q=bad)
    with pytest.raises(InvalidParameterError):
        fitted.predict(archs, device="cpu", return_std="yes")


def test_a_training_devices_interval_covers_its_training_archs(fitted, nb201):
    """The in-sample spread of a training device: its 90% interval holds ~90% of its rows."""
    _, wide = nb201
    archs = list(wide.index[wide["arch_index"] < 400])
    y = wide.loc[archs, "pixel3"].to_numpy()
    lo, hi = (fitted.predict_quantile(archs, device="pixel3", q=q) for q in (0.05, 0.95))
    assert 0.8 < np.mean((y >= lo) & (y <= hi)) < 0.99


def test_per_device_predictor_has_no_uncertainty(nb201):
    table, wide = nb201
    p = PerDevicePredictor(model="ridge").fit(table.select(devices=["pixel3"], archs=set(wide.index[:200])))
    assert not hasattr(p, "predict_quantile")
    with pytest.raises(InvalidParameterError, match="uncertainty"):
        p.predict(list(wide.index[:3]), device="pixel3", return_std=True)


def test_budget_picks_use_the_quantile_on_the_adapted_path(fitted, nb201):
    _, wide = nb201
    cands = list(wide.index[1000:1400])
    targets = ep.predictors.reference_archs("nasbench201") + list(wide.index[600:610])
    values = wide.loc[targets, "gold_6240"].to_numpy()
    budget = float(np.quantile(wide.loc[cands, "gold_6240"], 0.3))
    r = proxy.rank(cands, target_archs=targets, target_values=values, proxies=fitted, budget_ms=budget,
                   margin="auto", adapt="predictor", agreement_threshold=1.01)  # force the adapted path
    assert r.path == "adapted" and r.latency_upper_ms is not None
    assert set(r.meets_budget) == set(np.flatnonzero(r.latency_upper_ms <= budget))
    assert (r.latency_upper_ms > r.latency_ms).all()
    plain = r.within_budget(budget, margin=0.0)
    assert set(r.meets_budget) < set(plain)  # the quantile is stricter than the point prediction


def test_robust_loo_scale_leaves_out_the_largest_residuals():
    from edgeperf.predictors._uncertainty import TRIM_SHARE, robust_loo_scale

    r = np.array([0.1, -0.1] * 10)
    assert robust_loo_scale(r) == pytest.approx(0.1)
    spoilt = r.copy()
    spoilt[3] = 5.0  # one bad measurement of 20
    assert robust_loo_scale(spoilt) == pytest.approx(0.1) and np.sqrt(np.mean(spoilt**2)) > 1.0
    assert TRIM_SHARE * 20 >= 1  # the default trims at least one of HELP's 20
    assert robust_loo_scale([0.3]) == pytest.approx(0.3)  # never trims everything


def test_adapted_quantiles_use_the_robust_scale_and_old_files_the_rms_rule(fitted, tmp_path):
    from statistics import NormalDist

    from edgeperf.predictors._uncertainty import SHRINK_WEIGHTS, robust_loo_scale

    u = fitted.uncertainty_
    assert 0.1 < u["robust_scale"] < 20 and u["shrink_weight"] in SHRINK_WEIGHTS and u["pooled_scale"] > 0
    archs = ep.spaces.get("nasbench201").sample(20, seed=3)
    loo = fitted.adapters_["cpu"].loo_log_residuals_
    z = NormalDist().inv_cdf(0.95)
    w = u["shrink_weight"]
    own = u["pooled_scale"] ** (1 - w) * robust_loo_scale(loo) ** w
    want = fitted.predict(archs, device="cpu") * np.exp(z * own * u["robust_scale"])
    np.testing.assert_allclose(fitted.predict_quantile(archs, device="cpu"), want)
    unshrunk = ep.load(fitted.save(tmp_path / "m.edgeperf"))
    for key in ("shrink_weight", "pooled_scale"):  # a model file written before the shrinkage
        del unshrunk.uncertainty_[key]
    want = fitted.predict(archs, device="cpu") * np.exp(z * robust_loo_scale(loo) * u["robust_scale"])
    np.testing.assert_allclose(unshrunk.predict_quantile(archs, device="cpu"), want)
    old = ep.load(fitted.save(tmp_path / "m.edgeperf"))
    del old.uncertainty_["robust_scale"]  # a model file written before the robust scale
    rms = np.sqrt(np.mean(loo**2))
    want_old = fitted.predict(archs, device="cpu") * np.exp(z * rms * u["scale"])
    np.testing.assert_allclose(old.predict_quantile(archs, device="cpu"), want_old)


def test_one_bad_adaptation_measurement_widens_the_bound_less_than_the_rms_rule(fitted, nb201):
    import copy

    _, wide = nb201
    p = copy.deepcopy(fitted)
    ad = ep.predictors.reference_archs("nasbench201") + list(wide.index[500:510])
    values = wide.loc[ad, "gold_6240"].to_numpy().copy()
    values[12] *= 2.0  # a mis-measured architecture, not far enough off to be left out of the fit
    p.adapt("cpu-spoilt", archs=ad, values=values)
    assert not any("left out" in w for w in p.adapt_reports_["cpu-spoilt"].warnings)
    arch = list(wide.index[2000:2001])
    ratio = lambda dev: float(p.predict_quantile(arch, device=dev)[0] / p.predict(arch, device=dev)[0])  # noqa: E731
    old_rule = float(np.exp(1.6448536 * p.adapters_["cpu-spoilt"].log_std(1)[0] * p.uncertainty_["scale"]))
    assert ratio("cpu-spoilt") < old_rule
    assert ratio("cpu-spoilt") < 1.5 * ratio("cpu")  # about as tight as the clean adaptation
    values[12] *= 5.0  # 10x off: left out of the fit, so the bound is the clean one's
    p.adapt("cpu-spoilt", archs=ad, values=values, overwrite=True)
    assert any("left out" in w for w in p.adapt_reports_["cpu-spoilt"].warnings)
    assert ratio("cpu-spoilt") < 1.2 * ratio("cpu")


def test_calibration_trusts_a_devices_own_scale_only_as_far_as_it_tracks_its_errors():
    """The shrink weight kept is the one with the tightest calibrated bounds: none of the own
    scale where own scales are noise around one common spread, all of it where each is its
    device's true spread; either way the bounds cover 95 % of the calibration residuals."""
    from statistics import NormalDist

    from edgeperf.predictors._uncertainty import _shrinkage, shrunk_scale

    rng = np.random.default_rng(0)
    noise = np.exp(rng.normal(0.0, 0.5, 40))
    z = NormalDist().inv_cdf(0.95)
    for truth, want in (("common", 0.0), ("own", 1.0)):
        spreads = np.full(40, 0.1) if truth == "common" else 0.1 * noise
        errors = [rng.normal(0.0, s, 500) for s in spreads]
        u = _shrinkage(errors, list(0.1 * noise))
        assert u["shrink_weight"] == want
        assert u["pooled_scale"] == pytest.approx(float(np.exp(np.mean(np.log(0.1 * noise)))))
        bounds = [z * shrunk_scale(s, u) * u["robust_scale"] for s in 0.1 * noise]
        assert np.mean(np.concatenate([e <= b for e, b in zip(errors, bounds)])) >= 0.94


@pytest.mark.parametrize("bad", [{"shrink_weight": 1.5}, {"shrink_weight": -0.1}, {"shrink_weight": "0.5"},
                                 {"pooled_scale": 0.0}, {"pooled_scale": -1.0}])
def test_a_corrupted_shrinkage_in_a_model_file_is_refused(fitted, tmp_path, bad):
    import json
    import zipfile

    from edgeperf.errors import ModelFileError

    path = fitted.save(tmp_path / "m.edgeperf")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    name = next(n for n in members if n.endswith(".json") and b'"uncertainty"' in members[n])
    meta = json.loads(members[name])
    meta["uncertainty"].update(bad)
    members[name] = json.dumps(meta).encode()
    spoilt = tmp_path / "spoilt.edgeperf"
    with zipfile.ZipFile(spoilt, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(ModelFileError, match="uncertainty"):
        ep.load(spoilt)
