"""Predictors: the public API, errors, adaptation, fast paths, accuracy on real data."""

import numpy as np
import pandas as pd
import pytest

import edgeperf as ep
from edgeperf import metrics, spaces
from edgeperf.datasets import MeasurementTable
from edgeperf.errors import AdaptationError, ArchitectureError, NotFittedError, UnknownDeviceError
from edgeperf.predictors import JointPredictor, PerDevicePredictor

N_TRAIN = 900
FAST = {"n_estimators": 150}
TRAIN_DEVICES = ["1080ti_1", "1080ti_32", "silver_4114", "pixel3", "samsung_a50", "titanx_32"]


@pytest.fixture(scope="module")
def small(nb201):
    """Train archs [0, 900) + the reference archs of a few devices."""
    table, wide = nb201
    archs = set(wide.index[wide["arch_index"] < N_TRAIN]) | set(ep.predictors.reference_archs("nasbench201"))
    return table.select(devices=TRAIN_DEVICES, archs=archs)


@pytest.fixture(scope="module")
def joint(small):
    return JointPredictor(model_params=FAST).fit(small)


def _test_split(wide, device):
    rows = wide[(wide["arch_index"] >= N_TRAIN) & (wide["arch_index"] < N_TRAIN + 1000)]
    return list(rows.index), rows[device].to_numpy()


def test_public_api_exactly_as_documented(small, nb201, tmp_path):
    _, wide = nb201
    p = ep.JointPredictor(model_params=FAST)
    assert p.fit(small) is p
    assert set(p.devices_) == set(TRAIN_DEVICES) and p.space_ == "nasbench201"
    refs = ep.predictors.reference_archs("nasbench201")
    extra = list(wide.index[wide["arch_index"] < 10])
    archs = refs + extra
    values = wide.loc[archs, "gold_6240"].tolist()
    assert p.adapt("my-phone", archs=archs, values=values) is p
    test_archs, y = _test_split(wide, "gold_6240")
    out = p.predict(test_archs, device="my-phone")
    assert isinstance(out, np.ndarray) and out.shape == (len(test_archs),) and (out > 0).all()
    assert metrics.spearman(y, out) > 0.85  # an unseen CPU from 20 measurements
    one = p.predict(test_archs[0], device="1080ti_1")
    assert isinstance(one, float) and one > 0
    path = tmp_path / "model.edgeperf"
    p.save(path)
    q = ep.load(path)
    assert isinstance(q, ep.predictors.JointPredictor)
    np.testing.assert_array_equal(q.predict(test_archs, device="my-phone"), out)
    assert q.predict(test_archs[0], device="1080ti_1") == one


def test_joint_accuracy_on_held_out_archs(joint, nb201):
    _, wide = nb201
    archs, y = _test_split(wide, "1080ti_1")
    pred = joint.predict(archs, device="1080ti_1")
    assert metrics.spearman(y, pred) > 0.9
    assert metrics.acc_10(y, pred) > 0.7


def test_per_device_accuracy_and_energy_metric(nb201):
    table, wide = nb201
    train = set(wide.index[wide["arch_index"] < N_TRAIN])
    sub = table.select(devices=["titanx_1"], archs=train)
    p = PerDevicePredictor(model_params=FAST).fit(sub)
    archs, y = _test_split(wide, "titanx_1")
    pred = p.predict(archs, device="titanx_1")
    assert metrics.spearman(y, pred) > 0.9
    # energy: same machinery on an energy_mj table (values derived, it is about plumbing the metric)
    frame = sub.frame.assign(metric="energy_mj", value=sub.frame["value"] * 3.0)
    e = PerDevicePredictor(metric="energy_mj", model_params=FAST).fit(MeasurementTable(frame))
    assert e.metric_ == "energy_mj"
    np.testing.assert_allclose(e.predict(archs[:20], device="titanx_1"), 3.0 * pred[:20], rtol=0.05)
    with pytest.raises(ep.errors.DataValidationError, match="latency_ms"):
        PerDevicePredictor(metric="latency_ms").fit(MeasurementTable(frame))


@pytest.mark.parametrize("model", ["mlp", "ridge"])
def test_other_per_device_models(model, nb201, tmp_path):
    table, wide = nb201
    train = set(wide.index[wide["arch_index"] < 300])
    p = PerDevicePredictor(model=model, model_params={"epochs": 30} if model == "mlp" else None)
    p.fit(table.select(devices=["gold_6240"], archs=train))
    archs, y = _test_split(wide, "gold_6240")
    pred = p.predict(archs, device="gold_6240")
    assert metrics.spearman(y, pred) > 0.6
    p.save(tmp_path / "m.edgeperf")
    np.testing.assert_allclose(ep.load(tmp_path / "m.edgeperf").predict(archs, device="gold_6240"), pred)


def test_errors(joint):
    arch = spaces.get("nasbench201").sample(1, seed=0)[0]
    with pytest.raises(NotFittedError, match="fit"):
        JointPredictor().predict(arch, device="x")
    with pytest.raises(NotFittedError):
        PerDevicePredictor().predict([arch], device="x")
    with pytest.raises(UnknownDeviceError) as err:
        joint.predict(arch, device="nokia_3310")
    assert "1080ti_1" in str(err.value)  # lists the known ones
    fb = spaces.get("fbnet").sample(3, seed=0)
    with pytest.raises(ArchitectureError):
        joint.predict(fb, device="1080ti_1")
    with pytest.raises(ArchitectureError):
        joint.predict(fb[0], device="1080ti_1")
    with pytest.raises(ArchitectureError, match="shape"):
        joint.predict(np.zeros((2, 7), np.float32), device="1080ti_1")


def test_adapt_errors(joint):
    archs = spaces.get("nasbench201").sample(5, seed=1)
    p = joint
    with pytest.raises(AdaptationError, match="at least 3"):
        p.adapt("dev-a", archs=archs[:2], values=[1.0, 2.0])
    with pytest.raises(AdaptationError, match="one value per"):
        p.adapt("dev-a", archs=archs, values=[1.0, 2.0, 3.0])
    with pytest.raises(AdaptationError, match="> 0"):
        p.adapt("dev-a", archs=archs, values=[1.0, 2.0, np.nan, 4.0, 5.0])
    with pytest.raises(AdaptationError, match="> 0"):
        p.adapt("dev-a", archs=archs, values=[1.0, 2.0, -3.0, 4.0, 5.0])
    with pytest.raises(ArchitectureError):
        p.adapt("dev-a", archs=spaces.get("fbnet").sample(5, seed=0), values=[1.0] * 5)
    with pytest.raises(AdaptationError, match="training device"):
        p.adapt("1080ti_1", archs=archs, values=[1.0] * 5, overwrite=True)
    assert "dev-a" not in p.devices_  # nothing half-registered
    p.adapt("dev-b", archs=archs, values=[1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(AdaptationError, match="overwrite=True"):
        p.adapt("dev-b", archs=archs, values=[5.0, 4.0, 3.0, 2.0, 1.0])
    before = p.predict(archs, device="dev-b")
    p.adapt("dev-b", archs=archs, values=[5.0, 4.0, 3.0, 2.0, 1.0], overwrite=True)
    after = p.predict(archs, device="dev-b")
    assert p.devices_.count("dev-b") == 1
    assert not np.allclose(before, after)


@pytest.mark.parametrize("strategy", ep.predictors.ADAPT_STRATEGIES)
def test_every_strategy_adapts_an_unseen_gpu(strategy, joint, nb201):
    _, wide = nb201
    refs = ep.predictors.reference_archs("nasbench201")
    archs = refs + list(wide.index[(wide["arch_index"] >= 100) & (wide["arch_index"] < 110)])
    joint.adapt(f"gpu-{strategy}", archs=archs, values=wide.loc[archs, "2080ti_1"], strategy=strategy)
    test_archs, y = _test_split(wide, "2080ti_1")
    assert metrics.spearman(y, joint.predict(test_archs, device=f"gpu-{strategy}")) > 0.75


def test_adapt_without_reference_archs(joint, nb201):
    _, wide = nb201
    archs = list(wide.index[(wide["arch_index"] >= 200) & (wide["arch_index"] < 215)])
    joint.adapt("no-refs", archs=archs, values=wide.loc[archs, "silver_4210r"], strategy="signature")
    assert joint.adapters_["no-refs"].n_reference_measured_ == 0
    test_archs, y = _test_split(wide, "silver_4210r")
    assert metrics.spearman(y, joint.predict(test_archs, device="no-refs")) > 0.8


def test_training_device_missing_reference_measurements(nb201):
    table, wide = nb201
    archs = set(wide.index[wide["arch_index"] < 400]) - set(ep.predictors.reference_archs("nasbench201"))
    p = JointPredictor(model_params=FAST).fit(table.select(devices=["1080ti_1", "gold_6240"], archs=archs))
    assert p.training_["imputed_reference_values"] == {"1080ti_1": 10, "gold_6240": 10}
    test_archs, y = _test_split(wide, "gold_6240")
    assert metrics.spearman(y, p.predict(test_archs, device="gold_6240")) > 0.85


def test_input_forms_agree_and_fast_paths_match_the_model(joint):
    sp = spaces.get("nasbench201")
    archs = sp.sample(50, seed=3)
    X = sp.encode(archs)
    a = joint.predict(archs, device="pixel3")
    b = joint.predict(X, device="pixel3")
    c = np.array([joint.predict(x, device="pixel3") for x in archs])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # the finite-space cache returns exactly what the model computes
    direct = np.exp(joint._predict_log(X, "pixel3"))
    np.testing.assert_allclose(a, direct, rtol=1e-12)
    # a non-canonical spelling is canonicalised
    spaced = " " + archs[0] + " "
    assert joint.predict(spaced, device="pixel3") == a[0]
    # a non-one-hot array falls back to the model rather than a wrong cache hit
    Y = X.copy()
    Y[0, 0] = 0.5
    assert np.isfinite(joint.predict(Y, device="pixel3")).all()


def test_synthetic_table_without_builtin_data():
    sp = spaces.get("nasbench201")
    archs = list(dict.fromkeys(sp.sample(200, seed=0)))  # sampling may repeat a cell
    X = sp.encode(archs)
    rng = np.random.default_rng(0)
    costs = rng.uniform(0.1, 1.0, X.shape[1])
    rows = []
    for k, scale in enumerate([1.0, 2.0, 5.0]):
        y = scale * (1.0 + X @ (costs * (1 + 0.2 * k)))
        rows += [("nasbench201", a, f"dev{k}", "latency_ms", v) for a, v in zip(archs, y)]
    table = MeasurementTable(pd.DataFrame(rows, columns=["space", "arch", "device", "metric", "value"]))
    p = JointPredictor(model_params=FAST).fit(table)
    pred = p.predict(archs, device="dev2")
    assert metrics.mape(table.values("dev2").loc[archs].to_numpy(), pred) < 10


def test_cli_train_predict_adapt_eval(tmp_path, nb201):
    import json

    from typer.testing import CliRunner

    from edgeperf.cli import app

    table, wide = nb201
    ep.datasets.write(table.select(devices=["1080ti_1", "pixel3"], archs=set(wide.index[wide["arch_index"] < 200])),
                      tmp_path / "m.csv")
    ep.datasets.write(table.select(devices=["gold_6240"], archs=set(wide.index[wide["arch_index"] < 12])),
                      tmp_path / "new.csv")
    r = CliRunner()
    model, model2 = str(tmp_path / "j.edgeperf"), str(tmp_path / "j2.edgeperf")
    assert r.invoke(app, ["train", str(tmp_path / "m.csv"), "--out", model]).exit_code == 0
    res = r.invoke(app, ["predict", model, "--device", "pixel3", "--arch", wide.index[500]])
    assert res.exit_code == 0, res.output
    values = [line for line in res.output.splitlines() if line and not line.startswith("#")]
    assert "# latency_ms (ms) predicted on pixel3" in res.output and float(values[0].split("\t")[0]) > 0
    res = r.invoke(app, ["adapt", model, "--device", "gold_6240", "--measurements", str(tmp_path / "new.csv"), "--out", model2])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["eval", model2, str(tmp_path / "m.csv"), "--json"])
    out = json.loads(res.output)
    assert set(out) == {"1080ti_1", "pixel3"} and out["pixel3"]["spearman"] > 0.9


def test_a_device_unlike_every_training_device_is_fitted_through_compute(joint, nb201):
    """An accelerator whose latency follows MACs and memory traffic: no public device behaves
    like it, so the Bayes prior is set aside (prior-data conflict) and the analytic
    pseudo-devices carry the fit."""
    _, wide = nb201
    space = spaces.get("nasbench201")

    def accelerator_ms(archs):
        costs = space.cost_matrix(list(archs))
        return 2e-8 * costs[:, 0] + 5e-9 * costs[:, 2]

    refs = ep.predictors.reference_archs("nasbench201")
    archs = refs + list(wide.index[(wide["arch_index"] >= 300) & (wide["arch_index"] < 310)])
    joint.adapt("accelerator", archs=archs, values=accelerator_ms(archs), strategy="nnls+bayes")
    fitted = joint.adapters_["accelerator"]
    assert fitted.nnls_share_ == 1.0
    weights = dict(zip(fitted.basis_, fitted.weights_))
    assert weights["@macs"] > 0
    test_archs, _ = _test_split(wide, "2080ti_1")
    truth = accelerator_ms(test_archs)
    assert metrics.spearman(truth, joint.predict(test_archs, device="accelerator")) > 0.95

    # a device like the training ones keeps the prior
    joint.adapt("gpu-like", archs=archs, values=wide.loc[archs, "2080ti_1"], strategy="nnls+bayes")
    assert joint.adapters_["gpu-like"].nnls_share_ == 0.5


def test_whole_space_table_is_the_models_own_output(joint, tmp_path):
    """Finite spaces: fit stores every training device's prediction of every architecture;
    predictions, adaptation and model files use it instead of re-evaluating the model."""
    sp = spaces.get("nasbench201")
    table = joint.space_log_table_
    assert table.shape == (sp.size, len(joint.train_devices_))
    X = sp.encode(sp.sample(30, seed=11))
    for j, dev in enumerate(joint.train_devices_[:2]):
        p = joint.device_params_[dev]
        direct = joint._joint_log_embedded(X, p["signature"], p["static"])
        np.testing.assert_array_equal(joint._predict_log(X, dev), direct)
    loaded = ep.load(joint.save(tmp_path / "t.edgeperf"))
    np.testing.assert_array_equal(loaded.space_log_table_, table)
