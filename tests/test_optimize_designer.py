"""The NN-based designer: designs that fit, top-k, devices adapted after training, files."""

from __future__ import annotations

import copy
import json
import zipfile

import numpy as np
import pytest

import edgeperf as ep
from edgeperf.errors import DesignerFileError, InvalidParameterError, NotFittedError, UnknownDeviceError
from edgeperf.optimize import Designer, InfeasibleBudgetWarning, load_designer, objectives, search

from _optimize_support import DEVICES, small_predictor, synthetic_accuracy

NB201 = ep.spaces.get("nasbench201")
ALL = list(NB201.enumerate())
FAST = dict(synthetic_devices=120, budgets_per_device=6, epochs=15, hidden=(64, 64))


@pytest.fixture(scope="module")
def predictor():
    return copy.deepcopy(small_predictor())  # this module adapts a device into it


@pytest.fixture(scope="module")
def accuracy():
    return objectives.get("accuracy", table=synthetic_accuracy())


@pytest.fixture(scope="module")
def designer(predictor, accuracy):
    seen = []
    d = Designer(**FAST).fit(predictor, objective=accuracy, progress=lambda done, total, stage: seen.append(stage))
    assert seen[0] == "candidate pool" and seen[-1] == "done"
    return d


def _latency_bound_ms(predictor, arch, device) -> float:
    """What the designer's feasibility check compares with the budget (quantile or margin; the
    measured latency of an arch an adapted device was adapted from)."""
    measured = ep.optimize.resolve_measured(predictor, NB201, "auto")
    return float(ep.optimize.LatencyBound(predictor, [device], measured=measured)([arch])[1][0, 0])


def test_designs_fit_and_are_near_the_search_optimum(designer, predictor, accuracy):
    regrets = []
    for dev in DEVICES:
        lat = predictor.predict(ALL, device=dev) * (1 + ep.optimize.DEFAULT_MARGIN)
        for q in (0.2, 0.5, 0.8):
            budget = float(np.quantile(lat, q))
            arch = designer.design(device=dev, budget_ms=budget)
            assert NB201.canonical(arch) == arch
            assert _latency_bound_ms(predictor, arch, dev) <= budget + 1e-9  # the feasibility check held
            best = search(predictor, objective=accuracy, budget_ms=budget, devices=[dev])[dev].objective
            regrets.append(best - accuracy.score([arch], space=NB201)[0])
    assert min(regrets) >= 0  # the search is exact: nothing beats it
    assert np.mean(regrets) < 5.0  # a learned design, not a random one (random cells: ~15 points)


def test_top_k(designer):
    designs = designer.design(device="pixel3", budget_ms=30.0, k=4)
    assert 1 <= len(designs) <= 4 and len({d.arch for d in designs}) == len(designs)
    assert all(d.feasible and d.latency_bound_ms <= 30.0 and np.isfinite(d.objective) for d in designs)
    assert designs[0].arch == designer.design(device="pixel3", budget_ms=30.0)


def test_device_adapted_after_training(designer, predictor):
    wide = ep.datasets.load("help-nb201").wide()
    refs = ep.datasets.reference_archs("nasbench201")
    extra = list(wide.index[(wide["arch_index"] >= 3000) & (wide["arch_index"] < 3010)])
    archs = refs + extra
    predictor.adapt("gold_6240_new", archs=archs, values=wide.loc[archs, "gold_6240"].to_numpy())
    budget = float(np.quantile(predictor.predict(ALL, device="gold_6240_new"), 0.5)) * (1 + ep.optimize.DEFAULT_MARGIN)
    arch = designer.design(device="gold_6240_new", budget_ms=budget)
    assert _latency_bound_ms(predictor, arch, "gold_6240_new") <= budget


def test_errors(designer, predictor):
    with pytest.raises(UnknownDeviceError):
        designer.design(device="no-such-device", budget_ms=10.0)
    for bad in (0, -1.0, float("inf"), "10"):
        with pytest.raises(InvalidParameterError):
            designer.design(device="pixel3", budget_ms=bad)
    with pytest.raises(InvalidParameterError):
        designer.design(device="pixel3", budget_ms=10.0, k=0)
    with pytest.raises(NotFittedError):
        Designer().design(device="pixel3", budget_ms=10.0, predictor=predictor)
    with pytest.raises(InvalidParameterError):
        Designer(epochs=0).fit(predictor, objective="macs")


def test_infeasible_budget_warns_and_returns_the_fastest_candidate(designer):
    with pytest.warns(InfeasibleBudgetWarning, match="none of the designer's"):
        arch = designer.design(device="pixel3", budget_ms=1e-4)
    assert NB201.is_valid(arch)


def test_save_load_round_trip(designer, predictor, accuracy, tmp_path):
    path = designer.save(tmp_path / "nb201.designer")
    loaded = load_designer(path)
    for dev, budget in (("pixel3", 25.0), ("1080ti_1", 8.0), ("silver_4114", 20.0)):
        again = loaded.design(device=dev, budget_ms=budget, predictor=predictor, objective=accuracy)
        assert again == designer.design(device=dev, budget_ms=budget)
        feats = ep.optimize.device_features(predictor, dev)
        for a, b in zip(loaded.log_probabilities(feats, budget), designer.log_probabilities(feats, budget)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert loaded.training_["devices"] == designer.training_["devices"]
    with pytest.raises(InvalidParameterError, match="pass predictor"):
        loaded.design(device="pixel3", budget_ms=10.0)
    assert not list(tmp_path.glob("*.tmp"))


def _rewrite(src, dst, *, meta=None, arrays=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "metadata.json" and meta is not None:
                m = json.loads(data)
                meta(m)
                data = json.dumps(m)
            name = info.filename[len("arrays/") : -len(".npy")] if info.filename.startswith("arrays/") else None
            if name is not None and arrays is not None and name in arrays:
                import io

                buf = io.BytesIO()
                np.save(buf, arrays[name])
                data = buf.getvalue()
            zout.writestr(info.filename, data)
    return dst


@pytest.mark.parametrize("corrupt", [
    "truncated", "not-a-zip", "wrong-format", "wrong-version", "other-space-decisions", "nan-weights",
    "wrong-shape", "missing-array", "unknown-space",
])
def test_corrupted_designer_files_are_refused(designer, tmp_path, corrupt):
    good = designer.save(tmp_path / "good.designer")
    bad = tmp_path / "bad.designer"
    if corrupt == "truncated":
        bad.write_bytes(good.read_bytes()[:200])
    elif corrupt == "not-a-zip":
        bad.write_text("hello")
    elif corrupt == "wrong-format":
        _rewrite(good, bad, meta=lambda m: m.update(format="edgeperf-model"))
    elif corrupt == "wrong-version":
        _rewrite(good, bad, meta=lambda m: m.update(format_version=99))
    elif corrupt == "other-space-decisions":
        _rewrite(good, bad, meta=lambda m: m["choices"].pop())
    elif corrupt == "unknown-space":
        _rewrite(good, bad, meta=lambda m: m.update(space="darts"))
    elif corrupt == "nan-weights":
        _rewrite(good, bad, arrays={"w0": np.full_like(designer.weights_[0], np.nan)})
    elif corrupt == "wrong-shape":
        _rewrite(good, bad, arrays={"w1": np.zeros((3, 3), dtype=np.float32)})
    elif corrupt == "missing-array":
        _rewrite(good, bad, meta=lambda m: m.update(n_layers=m["n_layers"] + 1))
    with pytest.raises(DesignerFileError):
        load_designer(bad)


def test_designer_for_fbnet_with_an_evolved_pool():
    table = ep.datasets.load("help-fbnet")
    archs = set(table.archs[:600]) | set(ep.datasets.reference_archs("fbnet"))
    p = ep.JointPredictor(model_params={"n_estimators": 30}).fit(table.select(devices=["pixel3", "1080ti_1", "silver_4114"], archs=archs))
    d = Designer(pool_evaluations=400, **FAST).fit(p, objective="macs")
    assert d.training_["pool_size"] > 400  # the evolved archive plus random diversity
    fb = ep.spaces.get("fbnet")
    budget = float(np.quantile(p.predict(fb.sample(300, seed=1), device="pixel3"), 0.5))
    arch = d.design(device="pixel3", budget_ms=budget)
    assert fb.is_valid(arch) and _latency_bound_ms(p, arch, "pixel3") <= budget


def test_design_many_matches_one_design_per_pair(designer, predictor):
    pairs = []
    for dev in DEVICES:
        lat = predictor.predict(ALL, device=dev)
        pairs += [(dev, float(np.quantile(lat, q))) for q in (0.05, 0.3, 0.7)]
    pairs.append((DEVICES[0], 1e-6))  # nothing fits: the fastest candidate, with a warning
    with pytest.warns(InfeasibleBudgetWarning):
        many = designer.design_many(pairs)
    with pytest.warns(InfeasibleBudgetWarning):
        one = [designer.design(device=d, budget_ms=b) for d, b in pairs]
    assert many == one and len(set(many)) > 3
    tops = designer.design_many(pairs[:4], k=3)
    assert [[x.arch for x in t] for t in tops] == [[x.arch for x in designer.design(device=d, budget_ms=b, k=3)]
                                                    for d, b in pairs[:4]]
    assert designer.design_many([]) == []
    for bad in ([("pixel3",)], ["pixel3"], [("pixel3", -1.0)], [("pixel3", float("nan"))], [("pixel3", True)]):
        with pytest.raises(InvalidParameterError):
            designer.design_many(bad)
    with pytest.raises(UnknownDeviceError):
        designer.design_many([("no-such-device", 3.0)])


def test_a_pair_ignores_the_measurements_of_other_devices_in_its_batch(designer, predictor):
    """A design must not depend on the other pairs of its batch: an arch given as measured on
    1080ti_1 only is no candidate of pixel3's pair. (Ranked by the inverse of the accuracy the
    designer learned, the best fitting arch is one it never proposes.)"""
    inverse = objectives.get("accuracy", table={a: 100.0 - v for a, v in synthetic_accuracy().items()})
    bound = ep.optimize.LatencyBound(predictor, ["pixel3"], margin=designer.margin,
                                     confidence=designer.confidence)(ALL)[1][0]
    scores = np.asarray(inverse.score(ALL, space=NB201))
    budget = float(np.quantile(bound, 0.5))
    best = ALL[int(np.argmax(np.where(bound <= budget, scores, -np.inf)))]
    alone = designer.design(device="pixel3", budget_ms=budget, objective=inverse, measured=None)
    assert alone != best  # else this case checks nothing
    known = {"1080ti_1": {best: 1.0}}
    assert designer.design(device="pixel3", budget_ms=budget, objective=inverse, measured=known) == alone
    pairs = [("pixel3", budget), ("1080ti_1", 5.0)]
    many = designer.design_many(pairs, objective=inverse, measured=known)
    assert many == [alone, designer.design(device="1080ti_1", budget_ms=5.0, objective=inverse, measured=known)]
    ranked = designer.design_many(pairs, k=3, objective=inverse, measured=known)[0]
    assert [d.arch for d in ranked] == [d.arch for d in designer.design(device="pixel3", budget_ms=budget, k=3,
                                                                       objective=inverse, measured=None)]


def test_design_tolerance_trades_a_little_score_for_slack(designer, predictor, accuracy):
    """With a tolerance, the design is the fitting candidate with the smallest bound among
    those within the tolerance of the best fitting one; without, the best fitting one."""
    dev = DEVICES[1]
    budget = float(np.quantile(predictor.predict(ALL, device=dev), 0.5))
    exact = copy.copy(designer).set_params(tolerance=0.0).design(device=dev, budget_ms=budget, k=200)
    fitting = [d for d in exact if d.feasible]
    assert fitting[0].objective == max(d.objective for d in fitting)
    tol = 0.05
    tied = [d for d in fitting if d.objective >= fitting[0].objective - tol * abs(fitting[0].objective)]
    loose = copy.copy(designer).set_params(tolerance=tol).design(device=dev, budget_ms=budget, k=200)
    assert loose[0].arch == min(tied, key=lambda d: d.latency_bound_ms).arch
    assert {d.arch for d in loose} == {d.arch for d in exact}  # same candidates, other order


def test_batched_beam_is_the_beam_of_each_row():
    from edgeperf.optimize._designer import _beam, _unique_rows

    rng = np.random.default_rng(0)
    sizes = [5, 3, 4, 5]
    logp = [np.log(rng.dirichlet(np.ones(s), size=6)) for s in sizes]
    paths, total = _beam(logp, 10)
    assert paths.shape == (6, 10, 4)
    for i in range(6):
        p1, t1 = _beam([lp[i] for lp in logp], 10)
        np.testing.assert_array_equal(p1, paths[i])
        np.testing.assert_allclose(t1, total[i])
        full = sorted((sum(lp[i][c] for lp, c in zip(logp, combo)), combo) for combo in np.ndindex(*sizes))[::-1]
        np.testing.assert_allclose(t1, [v for v, _ in full[:10]])  # exact top-10 (independent decisions)
    rows = paths.reshape(-1, 4)
    unique, inverse = _unique_rows(rows, sizes)
    np.testing.assert_array_equal(unique[inverse], rows)
    assert len(unique) == len({tuple(r) for r in rows})


def test_numpy_forward_equals_the_torch_network(designer, predictor):
    """design() runs the trained network in numpy: the same log-probabilities as the torch
    network rebuilt from the same weights, so the same designs."""
    import torch

    feats = np.vstack([ep.optimize.device_features(predictor, d) for d in DEVICES])
    budgets = np.array([3.0, 8.0, 20.0, 50.0])
    ours = designer.log_probabilities(feats, budgets)
    layers = []
    for i, (w, b) in enumerate(zip(designer.weights_, designer.biases_)):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([torch.nn.ReLU()] if i < len(designer.weights_) - 1 else [])
    from edgeperf.optimize._designer import _inputs

    x = (_inputs(feats, np.log(budgets)) - designer.input_mean_) / designer.input_scale_
    with torch.no_grad():
        logits = torch.nn.Sequential(*layers)(torch.from_numpy(x.astype(np.float32)))
    start = 0
    for lp, (_, options) in zip(ours, designer.choices_):
        ref = torch.log_softmax(logits[:, start : start + len(options)].double(), dim=1).numpy()
        np.testing.assert_allclose(lp, ref, atol=2e-5)
        start += len(options)
    assert start == logits.shape[1]


def test_beam_codes_are_the_beam_paths():
    from edgeperf.optimize._designer import _beam, _beam_codes, _radix

    rng = np.random.default_rng(1)
    sizes = [5, 5, 4, 3, 5, 2]
    logp = [np.log(rng.dirichlet(np.ones(s), size=7)) for s in sizes]
    for width in (1, 3, 10, 64, 5000):
        paths, total = _beam(logp, width)
        codes, total2 = _beam_codes(logp, width)
        np.testing.assert_array_equal(paths @ _radix(sizes), codes)
        np.testing.assert_array_equal(total, total2)
    assert _radix([9] * 22) is None  # FBNet's 9^22 does not fit: the decode keeps index tuples


@pytest.mark.parametrize("tolerance", [0.0, "auto", 0.05])
def test_single_pick_is_the_first_of_the_ranking(designer, predictor, accuracy, tolerance):
    """Without k the pick is computed without sorting; it must be the first of the top-k ranking."""
    d = copy.copy(designer).set_params(tolerance=tolerance)
    pairs = [(dev, float(np.quantile(predictor.predict(ALL, device=dev), q)))
             for dev in DEVICES for q in np.linspace(0.02, 1.0, 12)]
    picks = d.design_many(pairs, objective=accuracy)
    ranked = d.design_many(pairs, k=d.beam // 4, objective=accuracy)  # the same beam width as without k
    assert picks == [r[0].arch for r in ranked]
    by_probability = d.design_many(pairs, objective="naswot")  # not cheap: ranked by probability
    assert by_probability == [r[0].arch for r in d.design_many(pairs, k=d.beam // 4, objective="naswot")]


def test_a_measured_arch_that_fits_is_designed_over_a_margin(designer, predictor, accuracy):
    acc = synthetic_accuracy()
    top = max(ALL, key=lambda a: (acc[a], a))
    predicted = float(predictor.predict([top], device="pixel3")[0])
    budget = predicted * 1.01  # the prediction fits, its bound (quantile or margin) does not
    assert _latency_bound_ms(predictor, top, "pixel3") > budget
    saved = designer.tolerance
    try:
        designer.set_params(tolerance=0.0)
        plain = designer.design(device="pixel3", budget_ms=budget)
        assert plain != top
        known = {"pixel3": {top: predicted}}
        assert designer.design(device="pixel3", budget_ms=budget, measured=known) == top
        designs = designer.design(device="pixel3", budget_ms=budget, k=3, measured=known)
        assert designs[0].arch == top and designs[0].latency_bound_ms == designs[0].latency_ms == predicted
        assert len({d.arch for d in designs}) == len(designs)
        # batched with another device's pair: the measurement is pixel3's only
        with pytest.warns(InfeasibleBudgetWarning, match="1080ti_1"):
            many = designer.design_many([("pixel3", budget), ("1080ti_1", 1e-4)], measured=known)
        assert many[0] == top
    finally:
        designer.set_params(tolerance=saved)
    with pytest.raises(UnknownDeviceError, match="pixel9"):
        designer.design(device="pixel3", budget_ms=budget, measured={"pixel9": {top: predicted}})
