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


# ---- format-1 files (written by edgeperf at commit 262efa7; see tests/data/make_model_v1.py) ----------
DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_previous_format_loads_or_says_what_to_do():
    ref = json.loads((DATA / "model_v1.json").read_text())
    p = ep.load(DATA / "model_v1.edgeperf")
    for dev, expected in ref["expected_ms"].items():
        # rtol, not equality: the ridge part's float64 sums differ by 1 ulp across numpy releases.
        np.testing.assert_allclose(p.predict(ref["archs"], device=dev), expected, rtol=1e-12)
    with pytest.raises(ModelFileError, match="drop_adapted=True"):
        ep.load(DATA / "model_v1_adapted.edgeperf")
    q = ep.load(DATA / "model_v1_adapted.edgeperf", drop_adapted=True)
    assert q.devices_ == list(ref["expected_ms"])
    np.testing.assert_allclose(q.predict(ref["archs"], device="pixel3"), ref["expected_ms"]["pixel3"], rtol=1e-12)


# ---- content checks on load ------------------------------------------------------------------------------
def _edit_meta(edit):
    def fn(n, d):
        if n != "metadata.json":
            return d
        m = json.loads(d)
        edit(m)
        return json.dumps(m)

    return fn


def _replace_array(name, value):
    def fn(n, d):
        if n == f"arrays/{name}.npy":
            buf = io.BytesIO()
            np.save(buf, value)
            return buf.getvalue()
        return d

    return fn


def _set_nested(keys, value):
    def edit(m):
        for k in keys[:-1]:
            m = m[k]
        m[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    "label, edit, match",
    [
        ("nan prior", _replace_array("prior_mean", np.full(31, np.nan)), "NaN"),
        ("prior shape", _replace_array("prior_cov", np.eye(5)), "shape"),
        ("prior dtype", _replace_array("prior_mean", np.array(["a"] * 31)), "real array"),
        ("unknown space", _edit_meta(_set_nested(["space"], "resnet_space")), "resnet_space"),
        ("unknown encoding", _edit_meta(_set_nested(["encoding"], "zigzag")), "zigzag"),
        ("n_features", _edit_meta(_set_nested(["n_features"], 7)), "n_features"),
        ("signature length", _edit_meta(_set_nested(["device_params", "pixel3", "signature"], [1.0, 2.0])), "signature"),
        ("signature type", _edit_meta(_set_nested(["device_params", "pixel3", "signature"], "x")), "signature"),
        ("noise", _edit_meta(_set_nested(["prior_noise_var"], -1.0)), "prior_noise_var"),
        ("devices", _edit_meta(_set_nested(["devices"], ["pixel3", "1080ti_1"])), "device"),
        ("params", _edit_meta(_set_nested(["params", "bogus"], 1)), "bogus"),
        ("booster", _replace_array("model/booster_json", np.frombuffer(b"{not json", np.uint8)), "XGBoost"),
        ("static fields", _edit_meta(_set_nested(["static_fields"], ["gpu_count"])), "gpu_count"),
        ("unknown strategy", _edit_meta(_set_nested(["adapted"], {"x": {"key": "a/0", "state": {"strategy": "magic"},
                                                                        "arrays": []}})), "magic"),
    ],
)
def test_inconsistent_content_is_refused(saved, tmp_path, label, edit, match):
    _, path = saved
    bad = tmp_path / "bad.edgeperf"
    _rewrite(path, bad, edit)
    with pytest.raises(ModelFileError, match=match):
        ep.load(bad)


def test_adapted_state_checked_on_load(saved, tmp_path):
    p, path = saved
    wide = ep.datasets.load("help-nb201").wide()
    archs = ep.predictors.reference_archs("nasbench201") + list(wide.index[400:410])
    p.adapt("new", archs=archs, values=wide.loc[archs, "gold_6240"].to_numpy(), strategy="nnls+bayes", overwrite=True)
    good = p.save(tmp_path / "adapted.edgeperf")
    assert ep.load(good).devices_[-1] == "new"
    bad = tmp_path / "bad.edgeperf"
    _rewrite(good, bad, _replace_array("adapted/0/weights_", np.ones(2)))
    with pytest.raises(ModelFileError, match="weights"):
        ep.load(bad)
    _rewrite(good, bad, _edit_meta(_set_nested(["adapted", "new", "state", "state_version"], 1)))
    with pytest.raises(ModelFileError, match="adapt"):
        ep.load(bad)
    # the default, stack, nests its candidates' states: a broken candidate array is caught too
    p.adapt("new", archs=archs, values=wide.loc[archs, "gold_6240"].to_numpy(), overwrite=True)
    assert p.adapters_["new"].name == "stack" and p.adapters_["new"].candidates_[0] == "nnls+bayes"
    good = p.save(tmp_path / "adapted.edgeperf")
    _rewrite(good, bad, _replace_array("adapted/0/candidate0/weights_", np.ones(2)))
    with pytest.raises(ModelFileError, match="weights"):
        ep.load(bad)
    _rewrite(good, bad, _edit_meta(_set_nested(["adapted", "new", "state", "candidate_states", 0, "state_version"], 1)))
    with pytest.raises(ModelFileError, match="state version"):
        ep.load(bad)


def test_adaptation_measurements_round_trip_and_are_checked_on_load(saved, tmp_path):
    p, _ = saved
    wide = ep.datasets.load("help-nb201").wide()
    archs = ep.predictors.reference_archs("nasbench201") + list(wide.index[420:430])
    values = wide.loc[archs, "gold_6240"].to_numpy()
    p.adapt("measured", archs=archs, values=values, overwrite=True)
    assert p.adapt_measurements_["measured"] == dict(zip(archs, values.tolist()))
    good = p.save(tmp_path / "adapted.edgeperf")
    assert ep.load(good).adapt_measurements_["measured"] == p.adapt_measurements_["measured"]
    # a file written before the measurements were saved: the device loads, with none
    older = tmp_path / "older.edgeperf"
    _rewrite(good, older, _edit_meta(lambda m: m["adapted"]["measured"].pop("measurements")))
    assert ep.load(older).adapt_measurements_["measured"] == {}
    bad = tmp_path / "bad.edgeperf"
    for broken in ({"archs": archs[:2], "values": [1.0]}, {"archs": archs[:2], "values": [1.0, -2.0]},
                   {"archs": [archs[0]] * 2, "values": [1.0, 2.0]}, {"values": [1.0]}, "x"):
        _rewrite(good, bad, _edit_meta(_set_nested(["adapted", "measured", "measurements"], broken)))
        with pytest.raises(ModelFileError, match="measured.*measurements.*re-adapt"):
            ep.load(bad)


# ---- the container -----------------------------------------------------------------------------------------
def test_container_limits(saved, tmp_path, monkeypatch):
    _, path = saved
    bomb = tmp_path / "bomb.edgeperf"
    _rewrite(path, bomb, lambda n, d: d)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("arrays/padding.npy", b"\0" * (8 * 2**20))  # 8 MiB of zeros -> ~8 KiB
    with pytest.raises(ModelFileError, match="zip bomb"):
        ep.load(bomb)

    from edgeperf.predictors import _io

    monkeypatch.setattr(_io, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(ModelFileError, match="limit"):
        ep.load(path)
    monkeypatch.undo()

    deep = tmp_path / "deep.edgeperf"
    _rewrite(path, deep, _edit_meta(_set_nested(["training", "x"], json.loads("[" * 40 + "]" * 40))))
    with pytest.raises(ModelFileError, match="nested"):
        ep.load(deep)
    deeper = tmp_path / "deeper.edgeperf"
    _rewrite(path, deeper, lambda n, d: ('{"format": "edgeperf-model", "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
             if n == "metadata.json" else d)
    with pytest.raises(ModelFileError, match="nested|JSON"):
        ep.load(deeper)

    nan = tmp_path / "nan.edgeperf"
    _rewrite(path, nan, lambda n, d: d.replace(b'"prior_noise_var": ', b'"prior_noise_var": NaN, "was": ') if n == "metadata.json" else d)
    with pytest.raises(ModelFileError, match="NaN"):
        ep.load(nan)

    for label, offset, value in (("encrypted", 8, 0x1), ("compression", 10, 99)):
        f = tmp_path / f"{label}.edgeperf"
        f.write_bytes(_patch_central_header(path.read_bytes(), b"arrays/prior_mean.npy", offset, value))
        with pytest.raises(ModelFileError, match=label):
            ep.load(f)

    extra = tmp_path / "extra.edgeperf"
    _rewrite(path, extra, lambda n, d: d)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("run_me.py", "print('no')")
    with pytest.raises(ModelFileError, match="unexpected member"):
        ep.load(extra)


def _patch_central_header(raw: bytes, name: bytes, offset: int, value: int) -> bytes:
    """Set a 2-byte field of ``name``'s central-directory entry (8: flags, 10: compression method)."""
    import struct

    raw = bytearray(raw)
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        n_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if bytes(raw[pos + 46 : pos + 46 + n_len]) == name:
            old = struct.unpack_from("<H", raw, pos + offset)[0]
            struct.pack_into("<H", raw, pos + offset, old | value if offset == 8 else value)
            return bytes(raw)
        pos = raw.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name!r} not in the zip")


def test_saves_leave_nothing_behind(saved, tmp_path, monkeypatch):
    p, _ = saved
    target = tmp_path / "keep.edgeperf"
    target.write_bytes(b"old model")
    with pytest.raises(ModelFileError, match="writable"):
        p.save(tmp_path / "no-such-folder" / "m.edgeperf")
    with pytest.raises(ModelFileError, match="directory"):
        p.save(tmp_path)

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken)
    with pytest.raises(ModelFileError, match="No space left"):
        p.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == b"old model"  # the previous file is intact
    assert not list(tmp_path.rglob("*.tmp"))
    p.save(target)
    assert ep.load(target).devices_ == p.devices_ and not list(tmp_path.rglob("*.tmp"))


# ---- fuzzing: only EdgePerfError escapes edgeperf.load ------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SMALL = DATA / "model_v1.edgeperf"


@pytest.fixture(scope="module")
def small_v2(tmp_path_factory):
    """A tiny current-format file with an adapted device (every section of the format present)."""
    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    archs = set(wide.index[wide["arch_index"] < 120]) | set(ep.predictors.reference_archs("nasbench201"))
    p = JointPredictor(model_params={"n_estimators": 4, "max_depth": 3}).fit(
        table.select(devices=["1080ti_1", "pixel3"], archs=archs))
    ad = ep.predictors.reference_archs("nasbench201") + list(wide.index[300:305])
    p.adapt("new", archs=ad, values=wide.loc[ad, "gold_6240"].to_numpy())
    p.adapt("sig", archs=ad, values=wide.loc[ad, "gold_6240"].to_numpy(), strategy="signature+calibration")
    return p.save(tmp_path_factory.mktemp("fz") / "small.edgeperf")
_FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_only_edgeperf_errors(tmp_path, data: bytes):
    f = tmp_path / "fuzz.edgeperf"
    f.write_bytes(data)
    try:
        ep.load(f)
    except ep.EdgePerfError:
        pass


@pytest.mark.parametrize("which", ["v1", "v2"])
@_FUZZ
@given(cut=st.integers(0, 20_000), flips=st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 255)), max_size=8))
def test_fuzz_mutated_and_truncated_bytes(tmp_path, small_v2, which, cut, flips):
    raw = bytearray((SMALL if which == "v1" else small_v2).read_bytes())
    for pos, x in flips:
        raw[pos % len(raw)] ^= x
    _load_only_edgeperf_errors(tmp_path, bytes(raw[: max(1, cut % (len(raw) + 1))]))


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, prefix + (i,))


@pytest.mark.parametrize("which", ["v1", "v2"])
@_FUZZ
@given(data=st.data())
def test_fuzz_metadata_values(tmp_path, small_v2, which, data):
    with zipfile.ZipFile(SMALL if which == "v1" else small_v2) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["metadata.json"])
    paths = [p for p in _paths(meta) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(_JSON)
    node = meta
    for k in path[:-1]:
        node = node[k]
    if data.draw(st.booleans()) and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for n, d in members.items():
            zout.writestr(n, json.dumps(meta) if n == "metadata.json" else d)
    _load_only_edgeperf_errors(tmp_path, buf.getvalue())
