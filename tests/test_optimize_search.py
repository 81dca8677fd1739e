"""Search for many devices at once: exact on NB-201 (checked against brute force), the
optimizer conformance suite, budgets, margins (C1 via hasattr), energy, Pareto fronts, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import edgeperf as ep
from edgeperf.datasets import MeasurementTable
from edgeperf.errors import InvalidParameterError, ObjectiveError, UnknownDeviceError
from edgeperf.optimize import InfeasibleBudgetWarning, objectives, optimizers, search

from _optimize_support import DEVICES, small_predictor, synthetic_accuracy

NB201 = ep.spaces.get("nasbench201")
ALL = list(NB201.enumerate())


@pytest.fixture(scope="module")
def predictor():
    return small_predictor()


@pytest.fixture(scope="module")
def accuracy():
    return objectives.get("accuracy", table=synthetic_accuracy())


def _brute_force(predictor, acc, device, budget, margin):
    """The best cell by a plain loop over the space: the definition the search must match."""
    lat = predictor.predict(ALL, device=device)
    best, best_key = None, None
    for arch, ms in zip(ALL, lat):
        if ms * (1 + margin) <= budget:
            key = (acc[arch], -ms)
            if best_key is None or key > best_key:
                best, best_key = arch, key
    return best


def test_exact_search_matches_brute_force_on_every_device(predictor, accuracy):
    acc = synthetic_accuracy()
    budgets = {d: float(np.quantile(predictor.predict(ALL, device=d), 0.3)) for d in DEVICES}
    result = search(predictor, objective=accuracy, budget_ms=budgets, margin=0.05, tolerance=0)
    assert result.optimizer == "exhaustive" and result.n_evaluated == NB201.size
    for d in DEVICES:
        design = result[d]
        assert design.arch == _brute_force(predictor, acc, d, budgets[d], 0.05)
        assert design.feasible and design.latency_bound_ms <= budgets[d]
        assert design.latency_bound_ms == pytest.approx(design.latency_ms * 1.05)
        assert design.objective == acc[design.arch]


def test_one_budget_for_all_devices_and_default_devices(predictor, accuracy):
    result = search(predictor, objective=accuracy, budget_ms=1e6)
    assert set(result.designs) == set(predictor.devices_)
    best = max(synthetic_accuracy().values())
    assert all(d.objective == best for d in result)  # nothing binds: the global optimum everywhere


def test_infeasible_budget_says_so_and_returns_the_fastest(predictor, accuracy):
    with pytest.warns(InfeasibleBudgetWarning, match="no design found within the budget"):
        result = search(predictor, objective=accuracy, budget_ms={"pixel3": 1e-4, "1080ti_1": 1e6})
    tiny = result["pixel3"]
    assert not tiny.feasible
    assert tiny.arch == ALL[int(np.argmin(predictor.predict(ALL, device="pixel3")))]
    assert result["1080ti_1"].feasible


def test_unknown_device_is_a_clear_error(predictor, accuracy):
    with pytest.raises(UnknownDeviceError, match="adapt"):
        search(predictor, objective=accuracy, budget_ms=5.0, devices=["pixel3", "no-such-phone"])
    with pytest.raises(UnknownDeviceError):
        search(predictor, objective=accuracy, budget_ms={"nope": 3.0})


def test_objective_that_does_not_cover_the_space(predictor):
    half = dict(list(synthetic_accuracy().items())[::2])
    with pytest.raises(ObjectiveError, match="does not cover the space"):
        search(predictor, objective=half, budget_ms=10.0)
    fbnet = {ep.spaces.get("fbnet").sample(1, seed=0)[0]: 70.0}
    with pytest.raises(ObjectiveError, match="does not cover space 'nasbench201'"):
        search(predictor, objective=fbnet, budget_ms=10.0)


@pytest.mark.parametrize("kwargs", [
    {"budget_ms": -1.0}, {"budget_ms": float("nan")}, {"budget_ms": {"pixel3": 3.0}, "devices": ["pixel3", "1080ti_1"]},
    {"budget_ms": 3.0, "margin": -0.1}, {"budget_ms": 3.0, "n_evaluations": 0, "optimizer": "evolution"},
    {"budget_ms": 3.0, "optimizer": "nope"}, {"budget_ms": 3.0, "devices": []},
    {"budget_ms": 3.0, "energy_budget_mj": 1.0}, {"budget_ms": 3.0, "tolerance": -0.01},
    {"budget_ms": 3.0, "tolerance": 1.0}, {"budget_ms": 3.0, "tolerance": "wide"}, {"budget_ms": 3.0, "tolerance": True},
])
def test_bad_settings(predictor, accuracy, kwargs):
    with pytest.raises((InvalidParameterError, ep.errors.UnknownNameError)):
        search(predictor, objective=accuracy, **kwargs)


class _NoQuantiles:
    """A predictor without predict_quantile."""

    def __init__(self, inner):
        self.inner, self.devices_, self.space_, self.metric_ = inner, inner.devices_, inner.space_, inner.metric_

    def predict(self, archs, *, device):
        return self.inner.predict(archs, device=device)


class _WithQuantiles:
    """A predictor exposing C1's predict_quantile (a fixed share, 30% by default, above the prediction)."""

    def __init__(self, inner, factor=1.3):
        self.inner, self.devices_, self.space_, self.metric_ = inner, inner.devices_, inner.space_, inner.metric_
        self.asked = []
        self.factor = factor

    def predict(self, archs, *, device):
        return self.inner.predict(archs, device=device)

    def predict_quantile(self, archs, *, device, q):
        self.asked.append(q)
        return self.factor * np.asarray(self.inner.predict(archs, device=device))


def test_margin_comes_from_predict_quantile_when_the_predictor_has_it(predictor, accuracy):
    wrapped = _WithQuantiles(predictor)
    budget = float(np.quantile(predictor.predict(ALL, device="pixel3"), 0.5))
    result = search(wrapped, objective=accuracy, budget_ms=budget, devices=["pixel3"], confidence=0.9, tolerance=0)
    assert set(wrapped.asked) == {0.9} and "90% quantile" in result.bound
    design = result["pixel3"]
    assert design.latency_bound_ms == pytest.approx(1.3 * design.latency_ms) and design.latency_bound_ms <= budget
    assert design.arch == _brute_force(predictor, synthetic_accuracy(), "pixel3", budget, 0.3)
    alone = search(wrapped, objective=accuracy, budget_ms=budget, devices=["pixel3"], margin="quantile")
    assert "quantile within" in alone.bound and alone["pixel3"].latency_bound_ms == pytest.approx(
        1.3 * alone["pixel3"].latency_ms)
    with pytest.raises(InvalidParameterError, match="predict_quantile"):
        search(_NoQuantiles(predictor), objective=accuracy, budget_ms=budget,
               devices=["pixel3"], margin="quantile")


@pytest.mark.parametrize("factor", [1.1, 1.3])
def test_cautious_margin_is_the_larger_of_the_quantile_and_prediction_plus_20_percent(predictor, factor):
    archs = ALL[:50]
    point = np.asarray(predictor.predict(archs, device="pixel3"))
    wrapped = _WithQuantiles(predictor, factor=factor)
    _, cautious = ep.optimize.LatencyBound(wrapped, ["pixel3"], margin="cautious")(archs)
    _, auto = ep.optimize.LatencyBound(wrapped, ["pixel3"])(archs)
    np.testing.assert_allclose(cautious[0], max(factor, 1.2) * point)
    np.testing.assert_allclose(auto[0], factor * point)  # the search's default: the quantile alone
    assert ep.optimize.Designer().margin == "cautious"


def test_pareto_front_is_non_dominated_and_sorted(predictor, accuracy):
    budget = float(np.quantile(predictor.predict(ALL, device="silver_4114"), 0.5))
    result = search(predictor, objective=accuracy, budget_ms=budget, devices=["silver_4114"], pareto=True)
    front = result.pareto["silver_4114"]
    lat = np.array([d.latency_bound_ms for d in front])
    obj = np.array([d.objective for d in front])
    assert len(front) > 3 and (np.diff(lat) >= 0).all() and (np.diff(obj) > 0).all()
    # No cell of the space beats a front member on both axes.
    bound = predictor.predict(ALL, device="silver_4114") * (1 + ep.optimize.DEFAULT_MARGIN)
    scores = accuracy.score(ALL, space=NB201)
    for d in front[:: max(1, len(front) // 5)]:
        assert not ((bound < d.latency_bound_ms) & (scores > d.objective)).any()


def test_energy_constraint(predictor, accuracy):
    # A synthetic energy_mj table: energy = latency x a device power that grows with MACs.
    table = ep.datasets.load("help-nb201").select(devices=["pixel3", "1080ti_1"], archs=set(ALL[:1200]) | set(
        ep.datasets.reference_archs("nasbench201")))
    frame = table.frame[["space", "arch", "device", "metric", "value"]].copy()
    macs = pd.Series(NB201.cost_matrix(list(frame["arch"]))[:, 0], index=frame.index)
    frame["value"] = frame["value"] * (1 + macs / macs.max()) * 2.0
    frame["metric"] = "energy_mj"
    energy = ep.JointPredictor(metric="energy_mj", model_params={"n_estimators": 40}).fit(MeasurementTable(frame))
    free = search(predictor, objective=accuracy, budget_ms=1e6, devices=["pixel3"])
    cap = 0.5 * free["pixel3"].latency_ms  # well below the unconstrained design's energy
    e_free = float(energy.predict(free["pixel3"].arch, device="pixel3"))
    result = search(predictor, objective=accuracy, budget_ms=1e6, devices=["pixel3"], energy_predictor=energy,
                    energy_budget_mj=min(cap, 0.5 * e_free))
    d = result["pixel3"]
    cap = min(cap, 0.5 * e_free)
    assert d.feasible and d.energy_mj is not None and d.energy_mj * (1 + ep.optimize.DEFAULT_MARGIN) <= cap + 1e-9
    assert d.objective < free["pixel3"].objective
    with pytest.raises(InvalidParameterError, match="energy_mj predictor"):
        search(predictor, objective=accuracy, budget_ms=5.0, energy_predictor=predictor, energy_budget_mj=1.0)


# ---- conformance: every registered optimizer ------------------------------------------------------
@pytest.mark.parametrize("name", optimizers.names())
def test_optimizer_conformance(name, predictor, accuracy):
    budgets = {d: float(np.quantile(predictor.predict(ALL, device=d), 0.4)) for d in DEVICES[:2]}
    runs = [search(predictor, objective=accuracy, budget_ms=budgets, optimizer=name, n_evaluations=400, seed=1)
            for _ in range(2)]
    first = runs[0]
    assert first.optimizer == name
    assert first.n_evaluated == (NB201.size if name == "exhaustive" else 400)
    assert {d: x.arch for d, x in first.designs.items()} == {d: x.arch for d, x in runs[1].designs.items()}
    for d, design in first.designs.items():
        assert NB201.canonical(design.arch) == design.arch
        assert design.feasible and design.latency_bound_ms <= budgets[d]


def test_evolution_beats_random_search_at_equal_cost(predictor, accuracy):
    budgets = {d: float(np.quantile(predictor.predict(ALL, device=d), 0.3)) for d in DEVICES}
    gaps = []
    for seed in range(3):
        evo = search(predictor, objective=accuracy, budget_ms=budgets, optimizer="evolution", n_evaluations=600, seed=seed)
        rnd = search(predictor, objective=accuracy, budget_ms=budgets, optimizer="random", n_evaluations=600, seed=seed)
        gaps += [evo[d].objective - rnd[d].objective for d in DEVICES]
    assert np.mean(gaps) > 0


def test_evolution_searches_fbnet_for_several_devices():
    table = ep.datasets.load("help-fbnet")
    archs = set(table.archs[:800]) | set(ep.datasets.reference_archs("fbnet"))
    p = ep.JointPredictor(model_params={"n_estimators": 40}).fit(table.select(devices=["pixel3", "1080ti_1"], archs=archs))
    fb = ep.spaces.get("fbnet")
    sample = fb.sample(200, seed=0)
    # (1 + margin) x the median: half the random sample fits under the default margin
    grow = 1 + ep.optimize.DEFAULT_MARGIN
    budgets = {d: grow * float(np.quantile(p.predict(sample, device=d), 0.5)) for d in ("pixel3", "1080ti_1")}
    result = search(p, objective="macs", budget_ms=budgets, n_evaluations=500)
    assert result.optimizer == "evolution"
    macs = objectives.get("macs").score(sample, space=fb)
    for d, budget in budgets.items():
        fits = p.predict(sample, device=d) * (1 + ep.optimize.DEFAULT_MARGIN) <= budget
        assert result[d].feasible and result[d].objective >= macs[fits].max()  # beats 200 random draws


def test_with_warnings_as_errors_a_feasible_search_is_silent(predictor, accuracy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        search(predictor, objective=accuracy, budget_ms=1e6, devices=["pixel3"])


def test_demo_designs_fall_back_to_macs_without_analog_nasbench(predictor, monkeypatch):
    from edgeperf import demo
    from edgeperf.optimize.objectives import _analog

    monkeypatch.setattr(_analog.importlib.util, "find_spec", lambda name: None)
    lat = predictor.predict(ALL, device="pixel3")
    designs, label = demo._design(predictor, NB201, "pixel3", lat, (0.25, 0.75))
    assert "stand-in" in label and len(designs) == 2
    assert designs[0].budget_ms < designs[1].budget_ms and all(d.feasible for d in designs)


def test_tolerance_picks_the_most_slack_among_near_best_designs(predictor, accuracy):
    """Risk-aware choice: designs within ``tolerance`` of the best feasible score tie, and the
    tied one with the smallest bound wins (a plain loop is the definition)."""
    acc = synthetic_accuracy()
    tol = 0.01
    for d in DEVICES:
        lat = predictor.predict(ALL, device=d)
        budget = float(np.quantile(lat, 0.4))
        fits = [(a, ms) for a, ms in zip(ALL, lat) if ms * 1.05 <= budget]
        top = max(acc[a] for a, _ in fits)
        want = min((ms, a) for a, ms in fits if acc[a] >= top - tol * abs(top))[1]
        design = search(predictor, objective=accuracy, budget_ms=budget, devices=[d], margin=0.05, tolerance=tol)[d]
        exact = search(predictor, objective=accuracy, budget_ms=budget, devices=[d], margin=0.05, tolerance=0)[d]
        assert design.arch == want
        assert design.latency_ms <= exact.latency_ms and design.objective >= top - tol * abs(top)


def test_tolerance_defaults_by_objective_kind(accuracy):
    from edgeperf.optimize import DEFAULT_TOLERANCE, resolve_tolerance

    assert resolve_tolerance("auto", accuracy) == DEFAULT_TOLERANCE > 0
    assert resolve_tolerance("auto", objectives.get("macs")) == 0.0  # no natural scale: exact
    assert resolve_tolerance(0.05, objectives.get("macs")) == 0.05


def test_repeated_exhaustive_search_equals_a_fresh_one():
    """The whole-space scores are remembered per objective (keyed by the enumeration tuple):
    a second search, and one over the same candidates as a list, give the same designs."""
    p = small_predictor()
    obj = objectives.get("accuracy", table=synthetic_accuracy())
    budgets = {d: float(np.quantile(p.predict(ALL, device=d), 0.4)) for d in DEVICES}
    first = search(p, objective=obj, budget_ms=budgets)
    again = search(p, objective=obj, budget_ms=budgets)
    listed = search(p, objective=objectives.get("accuracy", table=synthetic_accuracy()), budget_ms=budgets,
                    candidates=list(ALL))
    assert [d.arch for d in first] == [d.arch for d in again] == [d.arch for d in listed]
    whole = tuple(ALL)
    s1 = obj.score(whole, space="nasbench201")
    s1[:] = -1.0  # the caller owns its copy
    np.testing.assert_array_equal(obj.score(whole, space="nasbench201"), obj.score(list(ALL), space="nasbench201"))


def _measured_case(predictor, device="pixel3", margin=0.5):
    """The most accurate cell and a budget its prediction meets but its margin does not."""
    acc = synthetic_accuracy()
    top = max(ALL, key=lambda a: (acc[a], a))
    predicted = float(predictor.predict([top], device=device)[0])
    budget = predicted * (1 + margin / 2)  # point fits, point x (1 + margin) does not
    return top, predicted, budget


@pytest.mark.parametrize("optimizer", ["exhaustive", "evolution"])
def test_a_measured_arch_that_fits_is_chosen_over_a_margin(predictor, accuracy, optimizer):
    top, predicted, budget = _measured_case(predictor)
    kwargs = dict(objective=accuracy, budget_ms=budget, devices=["pixel3"], margin=0.5, tolerance=0,
                  optimizer=optimizer, n_evaluations=60)
    plain = search(predictor, **kwargs)["pixel3"]
    assert plain.arch != top and plain.latency_bound_ms <= budget  # its margin makes the top cell infeasible
    result = search(predictor, measured={"pixel3": {top: predicted * 1.1}}, **kwargs)
    design = result["pixel3"]
    assert design.arch == top and design.feasible and design.objective > plain.objective
    assert design.latency_ms == design.latency_bound_ms == pytest.approx(predicted * 1.1)  # known: no margin
    assert "1 measured archs exact" in result.bound


def test_an_adapted_devices_own_measurements_are_checked_as_measured_by_default(predictor, accuracy, tmp_path):
    p = ep.load(predictor.save(tmp_path / "model.edgeperf"))  # a copy: the module's predictor stays as it is
    acc = synthetic_accuracy()
    top = max(ALL, key=lambda a: (acc[a], a))
    archs = list(p.reference_archs_) + [top] + ALL[100:109]
    values = 1.3 * p.predict(archs, device="silver_4114")
    p.adapt("new-cpu", archs=archs, values=values)
    measured_top = float(values[archs.index(top)])
    budget = 1.05 * max(measured_top, float(p.predict([top], device="new-cpu")[0]))
    kwargs = dict(objective=accuracy, budget_ms=budget, devices=["new-cpu"], margin=0.5, tolerance=0)
    without = search(p, measured=None, **kwargs)["new-cpu"]
    assert without.arch != top  # its predicted latency + 50 % does not fit
    result = search(p, **kwargs)
    assert result["new-cpu"].arch == top and result["new-cpu"].latency_ms == pytest.approx(measured_top)
    assert f"{len(archs)} measured archs exact" in result.bound
    assert search(ep.load(p.save(tmp_path / "adapted.edgeperf")), **kwargs)["new-cpu"].arch == top
    # an explicit mapping replaces them
    assert search(p, measured={"new-cpu": {}}, **kwargs)["new-cpu"].arch == without.arch


def test_a_measured_latency_over_the_budget_excludes_the_arch(predictor, accuracy):
    budget = float(np.quantile(predictor.predict(ALL, device="pixel3"), 0.5))
    plain = search(predictor, objective=accuracy, budget_ms=budget, devices=["pixel3"], tolerance=0)["pixel3"]
    slow = search(predictor, objective=accuracy, budget_ms=budget, devices=["pixel3"], tolerance=0,
                  measured={"pixel3": {plain.arch: 2 * budget}, "1080ti_1": {plain.arch: 1.0}})["pixel3"]
    assert slow.arch != plain.arch and slow.feasible and slow.objective <= plain.objective


def test_measured_errors_name_what_is_wrong(predictor, accuracy):
    top, predicted, budget = _measured_case(predictor)
    kwargs = dict(objective=accuracy, budget_ms=budget, devices=["pixel3"])
    with pytest.raises(UnknownDeviceError, match="pixel9") as info:
        search(predictor, measured={"pixel9": {top: predicted}}, **kwargs)
    assert "adapt the predictor" in str(info.value)
    with pytest.raises(InvalidParameterError, match="latency_ms > 0"):
        search(predictor, measured={"pixel3": {top: float("nan")}}, **kwargs)
    with pytest.raises(InvalidParameterError, match="arch: latency_ms"):
        search(predictor, measured={"pixel3": [predicted]}, **kwargs)
    with pytest.raises(ep.errors.ArchitectureError):
        search(predictor, measured={"pixel3": {"not-a-cell": predicted}}, **kwargs)
