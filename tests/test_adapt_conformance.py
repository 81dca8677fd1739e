"""Conformance suite of adaptation strategies: every registered strategy passes it.

A strategy added later (``@adapt.register("name")`` in a module imported by
``edgeperf/predictors/adapt/__init__.py``) is picked up through ``adapt.names()``.
"""

import inspect
import json
import zipfile

import numpy as np
import pytest

import edgeperf as ep
from edgeperf import metrics
from edgeperf.errors import AdaptationError, EdgePerfError, ModelFileError, UnknownNameError
from edgeperf.predictors import adapt

STRATEGIES = adapt.names()
TRAIN_DEVICES = ["1080ti_1", "pixel3", "silver_4114", "samsung_a50"]
TARGET = "gold_6240"


@pytest.fixture(scope="module")
def joint(nb201):
    table, wide = nb201
    archs = set(wide.index[wide["arch_index"] < 400]) | set(ep.predictors.reference_archs("nasbench201"))
    return ep.JointPredictor(model_params={"n_estimators": 40}).fit(table.select(devices=TRAIN_DEVICES, archs=archs))


@pytest.fixture(scope="module")
def target(nb201):
    """HELP's protocol: the 10 reference archs + 10 others, and a disjoint test set."""
    _, wide = nb201
    archs = ep.predictors.reference_archs("nasbench201") + list(wide.index[(wide["arch_index"] >= 500) & (wide["arch_index"] < 510)])
    test = list(wide.index[(wide["arch_index"] >= 1000) & (wide["arch_index"] < 1200)])
    return archs, wide.loc[archs, TARGET].to_numpy(), test


def _host(joint):
    from edgeperf.predictors._joint import _Host

    return _Host(joint)


def _data(joint, archs, values):
    host = _host(joint)
    X = host.encode(archs)
    return adapt.AdaptData(archs=tuple(archs), X=X, logy=np.log(values), basis_log=host.basis_log(X, host.basis_names),
                           static=np.asarray(joint.static_means_, dtype=np.float64))


def _new(name):
    cls = adapt.get(name)
    kwargs = {"random_state": 0} if "random_state" in inspect.signature(cls).parameters else {}
    return cls(**kwargs)


def test_registry():
    assert adapt.DEFAULT in STRATEGIES
    assert set(ep.predictors.ADAPT_STRATEGIES) == set(STRATEGIES)
    assert adapt.STATE_VERSION == ep.predictors.FORMAT_VERSION  # strategy states are part of the file format
    for name in STRATEGIES:
        cls = adapt.get(name)
        assert issubclass(cls, adapt.AdaptStrategy) and cls.name == name
    with pytest.raises(UnknownNameError, match="nnls"):
        adapt.get("no-such-strategy")
    with pytest.raises(TypeError):
        adapt.register("not-a-strategy")(object)


@pytest.mark.parametrize("name", STRATEGIES)
def test_fits_and_predicts_finite_values(name, joint, target):
    archs, values, test = target
    host = _host(joint)
    s = _new(name).fit(host, _data(joint, archs, values))
    X = host.encode(test)
    out = s.predict_log(host, X)
    assert out.shape == (len(test),) and out.dtype == np.float64 and np.isfinite(out).all()
    std = s.log_std(len(test))
    assert std.shape == (len(test),) and np.isfinite(std).all() and (std > 0).all()
    assert s.loo_log_residuals_.shape == (len(archs),)
    # through the predictor: positive ms of the right shape, better than chance on an unseen CPU
    joint.adapt(f"c-{name}", archs=archs, values=values, strategy=name, overwrite=True)
    ms = joint.predict(test, device=f"c-{name}")
    assert ms.shape == (len(test),) and (ms > 0).all() and np.isfinite(ms).all()
    truth = ep.datasets.load("help-nb201").wide().loc[test, TARGET].to_numpy()
    assert metrics.spearman(truth, ms) > 0.5


@pytest.mark.parametrize("name", STRATEGIES)
def test_an_affine_form_equals_predict_log(name, joint, target):
    """A strategy that states an affine form (hosts evaluate it by their own route) means it:
    const + weighted basis columns + X @ encoding + weighted logs of additive device models is its
    predict_log, on rows it never saw."""
    archs, values, test = target
    host = _host(joint)
    s = _new(name).fit(host, _data(joint, archs, values))
    form = s.affine_form()
    if name in ("nnls", "bayes", "nnls+bayes", "combination", "ridge"):
        assert form is not None  # the linear strategies are affine
    if form is None:
        return
    assert set(form.basis) <= set(host.basis_names) and all(np.isfinite(w) for w in form.basis.values())
    X = host.encode(test)
    np.testing.assert_allclose(form.predict_log(host, X), s.predict_log(host, X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_round_trips_through_a_model_file_exactly(name, joint, target, tmp_path):
    archs, values, test = target
    joint.adapt(f"f-{name}", archs=archs, values=values, strategy=name, overwrite=True)
    before = joint.predict(test, device=f"f-{name}")
    path = joint.save(tmp_path / "m.edgeperf")
    loaded = ep.load(path)
    np.testing.assert_array_equal(loaded.predict(test, device=f"f-{name}"), before)
    meta, arrays = joint.adapters_[f"f-{name}"].get_state()
    meta2, arrays2 = loaded.adapters_[f"f-{name}"].get_state()
    assert json.dumps(meta, sort_keys=True) == json.dumps(meta2, sort_keys=True)
    assert sorted(arrays) == sorted(arrays2)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], arrays2[k])
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("metadata.json"))["adapted"][f"f-{name}"]["state"]["strategy"] == name


@pytest.mark.parametrize("name", STRATEGIES)
def test_set_state_rejects_malformed_states(name, joint, target):
    archs, values, _ = target
    s = _new(name).fit(_host(joint), _data(joint, archs, values))
    meta, arrays = s.get_state()
    json.dumps(meta)  # JSON-ready
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    _new(name).set_state(meta, arrays)  # the untouched state loads
    bad_metas = [
        {**meta, "state_version": adapt.STATE_VERSION + 1},
        {**meta, "strategy": "something-else"},
        {k: v for k, v in meta.items() if k != "n_fit"},
        {**meta, "n_fit": meta["n_fit"] + 1},
        "not a dict",
    ]
    for bad in bad_metas:
        with pytest.raises(ModelFileError):
            _new(name).set_state(bad, arrays)
    for k in arrays:
        for broken in ({**arrays, k: np.full_like(arrays[k], np.nan)},
                       {**arrays, k: np.zeros((2, 2, 2))},
                       {a: v for a, v in arrays.items() if a != k}):
            with pytest.raises(ModelFileError):
                _new(name).set_state(meta, broken).check_host(_host(joint))
    for k, v in meta.items():
        if isinstance(v, float):
            with pytest.raises(ModelFileError):
                _new(name).set_state({**meta, k: "x"}, arrays)


@pytest.mark.parametrize("name", STRATEGIES)
def test_rejects_bad_input_with_edgeperf_errors(name, joint, target):
    archs, values, _ = target
    host = _host(joint)
    with pytest.raises(AdaptationError):
        _data(joint, archs[:2], values[:2])
    bad = values.copy()
    bad[3] = np.nan
    with pytest.raises(AdaptationError):
        _data(joint, archs, bad)
    with pytest.raises(AdaptationError):
        _new(name).fit(host, {"archs": archs})
    from edgeperf.errors import NotFittedError

    with pytest.raises(NotFittedError):
        _new(name).get_state()
    for kwargs in ({"values": values[:5]}, {"values": -values}, {"values": [True] * len(archs)},
                   {"values": np.vstack([values, values])}):
        with pytest.raises(EdgePerfError):
            joint.adapt(f"bad-{name}", archs=archs, **{"strategy": name, **kwargs})
    assert f"bad-{name}" not in joint.devices_


@pytest.mark.parametrize("name", STRATEGIES)
def test_deterministic(name, joint, target):
    archs, values, test = target
    host = _host(joint)
    X = host.encode(test)
    a = _new(name).fit(host, _data(joint, archs, values)).predict_log(host, X)
    b = _new(name).fit(host, _data(joint, archs, values)).predict_log(host, X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", STRATEGIES)
def test_failed_fit_keeps_the_previous_state(name, joint, target):
    archs, values, _ = target
    host = _host(joint)
    s = _new(name).fit(host, _data(joint, archs, values))
    meta, arrays = s.get_state()

    class Failing:
        def __getattr__(self, item):
            if item in ("basis_names", "train_devices", "reference_archs", "n_features", "n_static"):
                return getattr(host, item)
            raise RuntimeError("host failure")

    try:
        s.fit(Failing(), _data(joint, archs, values[::-1].copy()))
    except RuntimeError:
        meta2, arrays2 = s.get_state()
        assert meta2 == meta and all(np.array_equal(arrays[k], arrays2[k]) for k in arrays)


@pytest.mark.parametrize("name", STRATEGIES)
def test_fit_robust_leaves_out_only_a_measurement_unlike_all_others(name, joint, target):
    """A right but unrepresentative measurement (the Pixel 3 folds a cell whose output ignores its
    input into a constant: 0.05 ms instead of ~10) is left out of every strategy's fit, and
    nothing is left out of clean measurements of a real device."""
    archs, values, test = target
    host = _host(joint)
    clean, excluded = adapt.fit_robust(lambda: _new(name), host, _data(joint, archs, values))
    assert excluded == ()
    X = host.encode(test)
    np.testing.assert_array_equal(clean.predict_log(host, X),
                                  _new(name).fit(host, _data(joint, archs, values)).predict_log(host, X))
    odd = values.copy()
    odd[15] /= 300.0
    fitted, excluded = adapt.fit_robust(lambda: _new(name), host, _data(joint, archs, odd))
    assert excluded == (15,)
    rest = [i for i in range(len(archs)) if i != 15]
    without = _new(name).fit(host, _data(joint, [archs[i] for i in rest], values[rest]))
    np.testing.assert_array_equal(fitted.predict_log(host, X), without.predict_log(host, X))
    assert fitted.loo_log_residuals_.shape == (len(rest),)
