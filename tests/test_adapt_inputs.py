"""adapt() and fit() input checking, the adapt report (C2), progress (C3), score and extrapolation warnings."""

import warnings

import numpy as np
import pandas as pd
import pytest

import edgeperf as ep
from edgeperf.errors import AdaptationError, ExtrapolationWarning, InvalidParameterError
from edgeperf.predictors import AdaptReport, JointPredictor, PerDevicePredictor

FAST = {"n_estimators": 30}


@pytest.fixture(scope="module")
def small(nb201):
    table, wide = nb201
    archs = set(wide.index[wide["arch_index"] < 300]) | set(ep.predictors.reference_archs("nasbench201"))
    return table.select(devices=["1080ti_1", "pixel3", "silver_4114"], archs=archs)


@pytest.fixture(scope="module")
def joint(small):
    return JointPredictor(model_params=FAST).fit(small)


@pytest.fixture(scope="module")
def target(nb201):
    _, wide = nb201
    archs = ep.predictors.reference_archs("nasbench201") + list(wide.index[400:410])
    return archs, wide.loc[archs, "gold_6240"].to_numpy()


def test_one_architecture_repeated_is_one_measurement(joint, target):
    archs, values = target
    with pytest.raises(AdaptationError, match="distinct"):
        joint.adapt("rep", archs=[archs[0]] * 20, values=[values[0]] * 20)
    assert "rep" not in joint.devices_


def test_repeats_are_merged_by_their_median(joint, target):
    archs, values = target
    dup_archs = archs + archs[:4] + archs[:4]
    dup_values = np.concatenate([values, values[:4] * 1.1, values[:4] * 0.95])
    joint.adapt("merged", archs=dup_archs, values=dup_values)
    medians = values.copy()
    medians[:4] = values[:4] * 1.0  # median of (v, 1.1 v, 0.95 v) is v
    joint.adapt("plain", archs=archs, values=medians)
    test = ep.spaces.get("nasbench201").sample(50, seed=5)
    np.testing.assert_allclose(joint.predict(test, device="merged"), joint.predict(test, device="plain"), rtol=1e-12)
    report = joint.adapt_reports_["merged"]
    assert report.n_measurements == 28 and report.n_distinct_archs == 20
    assert any("merged" in w for w in report.warnings)


def test_conflicting_repeats_are_an_error_naming_the_arch(joint, target):
    archs, values = target
    with pytest.raises(AdaptationError, match="conflicting") as err:
        joint.adapt("conflict", archs=archs + [archs[3]], values=np.append(values, values[3] * 3))
    assert archs[3] in str(err.value)
    assert "conflict" not in joint.devices_


@pytest.mark.parametrize(
    "values",
    [
        lambda v: [True] * len(v),
        lambda v: np.vstack([v, v]),
        lambda v: v.reshape(-1, 1),
        lambda v: "1.0 2.0",
        lambda v: [str(x) for x in v],
        lambda v: pd.to_datetime(np.arange(len(v)), unit="s").to_numpy(),
        lambda v: pd.Series(v > 1),
        lambda v: [None] * len(v),
    ],
    ids=["bools", "2d", "column", "string", "strings", "dates", "bool-series", "none"],
)
def test_non_numeric_values_are_refused(joint, target, values):
    archs, v = target
    with pytest.raises(AdaptationError, match="expected"):
        joint.adapt("bad", archs=archs, values=values(v))
    assert "bad" not in joint.devices_


@pytest.mark.parametrize(
    "kwargs",
    [
        {"adapt_strategy": "magic"},
        {"model": "random-forest"},
        {"model": 3},
        {"model_params": {"n_estimators": "many"}},
        {"model_params": {"n_estimators": 0}},
        {"model_params": {"learning_rate": float("nan")}},
        {"model_params": {"bogus": 1}},
        {"model_params": [("n_estimators", 3)]},
        {"random_state": "seed"},
        {"random_state": True},
        {"encoding": "zigzag"},
        {"reference_set": "help-v9"},
        {"metric": 5},
    ],
)
def test_bad_settings_raise_invalid_parameter_error(small, kwargs):
    with pytest.raises(InvalidParameterError):
        JointPredictor(**kwargs).fit(small)


def test_bad_settings_of_per_device_and_adapt(small, joint, target):
    archs, values = target
    for kwargs in ({"model_params": {"epochs": -1}, "model": "mlp"}, {"model_params": {"hidden_layer_sizes": (0,)}, "model": "mlp"},
                   {"model_params": {"max_depth": 2.5}}):
        with pytest.raises(InvalidParameterError):
            PerDevicePredictor(**kwargs).fit(small.select(devices=["pixel3"]))
    with pytest.raises(InvalidParameterError, match="nnls"):
        joint.adapt("x", archs=archs, values=values, strategy="magic")
    with pytest.raises(InvalidParameterError):
        joint.adapt("", archs=archs, values=values)
    with pytest.raises(InvalidParameterError):
        joint.fit(small, progress="yes")
    with pytest.raises(ep.errors.UnknownDeviceError):
        joint.predict(archs, device=["pixel3"])


def test_adapt_report(joint, target, tmp_path):
    archs, values = target
    joint.adapt("reported", archs=archs, values=values, overwrite=True)
    r = joint.adapt_reports_["reported"]
    assert isinstance(r, AdaptReport) and r.strategy == joint.adapt_strategy
    assert r.n_measurements == r.n_distinct_archs == 20
    assert 0 < r.loo_mape_pct < 100 and 0.5 < r.loo_spearman <= 1.0  # an unseen server CPU
    assert r.warnings == ()
    with pytest.raises(Exception):
        r.strategy = "x"  # frozen
    loaded = ep.load(joint.save(tmp_path / "m.edgeperf"))
    assert loaded.adapt_reports_["reported"] == r
    assert "leave-one-out MAPE" in str(r)
    # without the reference architectures: a warning that says what to measure
    no_refs = list(ep.datasets.load("help-nb201").wide().index[500:515])
    joint.adapt("no-refs", archs=no_refs, values=np.linspace(1, 2, 15), strategy="nnls", overwrite=True)
    w = joint.adapt_reports_["no-refs"].warnings
    assert any("0 of the 10 reference architectures" in x for x in w) and any("15 distinct" in x for x in w)


def test_progress_callback(small):
    calls = []
    JointPredictor(model_params={"n_estimators": 12}).fit(small, progress=lambda d, t, s: calls.append((d, t, s)))
    done = [c[0] for c in calls]
    assert calls and done == sorted(done) and calls[-1][0] == calls[-1][1]
    assert {c[2] for c in calls} >= {"device signatures", "joint model (boosting rounds)", "Bayes prior"}
    calls.clear()
    PerDevicePredictor(model_params=FAST).fit(small, progress=lambda d, t, s: calls.append((d, t, s)))
    assert [c[0] for c in calls] == [1, 2, 3] and all(c[1] == 3 for c in calls)


def test_score_follows_scikit_learn(joint, nb201):
    _, wide = nb201
    test = list(wide.index[1000:1300])
    y = wide.loc[test, "pixel3"].to_numpy()
    from sklearn.metrics import r2_score

    r2 = joint.score(test, y, device="pixel3")
    assert r2 == pytest.approx(r2_score(np.log(y), np.log(joint.predict(test, device="pixel3"))))
    assert 0.0 < r2 <= 1.0
    assert joint.score(test, y[::-1].copy(), device="pixel3") < r2
    with pytest.raises(InvalidParameterError, match="device"):
        joint.score(test, y)
    with pytest.raises(ep.errors.DataValidationError):
        joint.score(test, y[:5], device="pixel3")


def test_extrapolation_warning_for_a_model_far_bigger_than_any_trained_on(nb201):
    import torch

    table, _ = nb201
    small = table.select(devices=["gold_6240"], archs=table.archs[:16])
    p = PerDevicePredictor(model="ridge", encoding="graph").fit(small)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        p.predict(table.archs[20], device="gold_6240")  # a cell of the same space: inside the range
    big = torch.nn.Sequential(torch.nn.Conv2d(3, 512, 3, padding=1), torch.nn.Conv2d(512, 512, 3, padding=1)).eval()
    with pytest.warns(ExtrapolationWarning, match="macs far outside the training data"):
        p.predict(big, device="gold_6240", input_shape=(1, 3, 32, 32))


def test_a_measurement_unlike_every_other_is_left_out_of_the_fit_but_kept_as_measured(joint, target):
    archs, values = target
    odd = values.copy()
    odd[12] /= 200.0  # what a runtime that folds a whole network into a constant reports
    joint.adapt("odd", archs=archs, values=odd, overwrite=True)
    rest = [i for i in range(len(archs)) if i != 12]
    joint.adapt("without", archs=[archs[i] for i in rest], values=values[rest], overwrite=True)
    test = ep.spaces.get("nasbench201").sample(50, seed=5)
    np.testing.assert_allclose(joint.predict(test, device="odd"), joint.predict(test, device="without"), rtol=1e-12)
    report = joint.adapt_reports_["odd"]
    assert report.n_distinct_archs == 20 and report.n_measurements == 20
    assert any("left out of the fit" in w and archs[12] in w for w in report.warnings)
    assert joint.adapt_measurements_["odd"][archs[12]] == pytest.approx(odd[12])  # still known as measured
    assert len(joint.adapt_measurements_["odd"]) == 20


@pytest.mark.parametrize("device", ["gold_6240", "samsung_s7", "essential_ph_1", "titanx_256", "silver_4210r"])
def test_noisy_measurements_of_real_devices_are_all_used(joint, nb201, device):
    _, wide = nb201
    archs = ep.predictors.reference_archs("nasbench201") + list(wide.index[600:610])
    noise = np.random.default_rng(0).lognormal(0.0, 0.1, len(archs))  # 10 % timing noise on top
    joint.adapt("noisy", archs=archs, values=wide.loc[archs, device].to_numpy() * noise, overwrite=True)
    assert not any("left out" in w for w in joint.adapt_reports_["noisy"].warnings)


def test_an_adaptation_with_a_measurement_left_out_round_trips_through_a_model_file(joint, target, tmp_path):
    archs, values = target
    odd = values.copy()
    odd[12] /= 200.0
    joint.adapt("odd-saved", archs=archs, values=odd, overwrite=True)
    back = ep.load(joint.save(tmp_path / "m.edgeperf"))
    test = ep.spaces.get("nasbench201").sample(50, seed=6)
    np.testing.assert_array_equal(back.predict(test, device="odd-saved"), joint.predict(test, device="odd-saved"))
    assert back.adapt_reports_["odd-saved"] == joint.adapt_reports_["odd-saved"]
    assert back.adapt_measurements_["odd-saved"] == joint.adapt_measurements_["odd-saved"]
