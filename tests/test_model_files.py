"""Model files: round trip, and clear errors for anything that is not one."""

import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import edgeperf as ep
from edgeperf import spaces
from edgeperf.errors import ModelFileError
from edgeperf.predictors import JointPredictor, PerDevicePredictor, SklearnRegressor, TorchMLPRegressor, XGBoostRegressor


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    archs = set(wide.index[wide["arch_index"] < 300])
    p = JointPredictor(model_params={"n_estimators": 50}).fit(table.select(devices=["1080ti_1", "pixel3"], archs=archs))
    path = tmp_path_factory.mktemp("m") / "model.edgeperf"
    p.save(path)
    return p, path


def test_round_trip_and_metadata(saved):
    p, path = saved
    q = ep.load(path)
    X = spaces.get("nasbench201").encode(spaces.get("nasbench201").sample(100, seed=0))
    for d in p.devices_:
        np.testing.assert_array_equal(q.predict(X, device=d), p.predict(X, device=d))
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
        assert all(n == "metadata.json" or n.endswith(".npy") for n in zf.namelist())
    assert meta["format"] == "edgeperf-model" and meta["format_version"] == ep.predictors.FORMAT_VERSION
    assert meta["space"] == "nasbench201" and meta["unit"] == "ms" and len(meta["reference_archs"]) == 10
    assert meta["predictor_type"] == "JointPredictor" and meta["devices"] == p.devices_


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for n in zin.namelist():
            data = edit(n, zin.read(n))
            if data is not None:
                zout.writestr(n, data)


def test_bad_files(saved, tmp_path):
    _, path = saved
    raw = path.read_bytes()
    cases = {}
    cases["random"] = np.random.default_rng(0).bytes(4096)
    cases["truncated"] = raw[: len(raw) // 2]
    cases["json_of_other_tool"] = json.dumps({"learner": {"gradient_booster": {}}}).encode()
    for name, data in cases.items():
        f = tmp_path / f"{name}.edgeperf"
        f.write_bytes(data)
        with pytest.raises(ModelFileError):
            ep.load(f)
    nometa = tmp_path / "nometa.zip"
    _rewrite(path, nometa, lambda n, d: None if n == "metadata.json" else d)
    with pytest.raises(ModelFileError, match="metadata.json"):
        ep.load(nometa)

    def bump(n, d):
        if n != "metadata.json":
            return d
        m = json.loads(d)
        m["format_version"] = 99
        return json.dumps(m)

    newer = tmp_path / "newer.edgeperf"
    _rewrite(path, newer, bump)
    with pytest.raises(ModelFileError, match=f"version {ep.predictors.FORMAT_VERSION}, got 99"):
        ep.load(newer)

    def pickled(n, d):  # an object array needs pickle: must be refused, not executed
        if n.endswith("prior_mean.npy"):
            buf = io.BytesIO()
            np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            return buf.getvalue()
        return d

    evil = tmp_path / "evil.edgeperf"
    _rewrite(path, evil, pickled)
    with pytest.raises(ModelFileError, match="pickle"):
        ep.load(evil)
    with pytest.raises(ModelFileError, match="does not exist"):
        ep.load(tmp_path / "missing.edgeperf")


def test_unsavable_estimator_is_a_clear_error(tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    archs = set(wide.index[wide["arch_index"] < 100])
    p = PerDevicePredictor(model=DecisionTreeRegressor()).fit(table.select(devices=["pixel3"], archs=archs))
    with pytest.raises(ModelFileError, match="pickle"):
        p.save(tmp_path / "x.edgeperf")
    assert not (tmp_path / "x.edgeperf").exists()


@parametrize_with_checks(
    [
        XGBoostRegressor(n_estimators=20, random_state=0),
        SklearnRegressor(random_state=0),
        TorchMLPRegressor(hidden_layer_sizes=(32,), epochs=150, random_state=0),
    ]
)
def test_sklearn_contract(estimator, check):
    check(estimator)
