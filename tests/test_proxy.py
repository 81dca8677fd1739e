"""Proxy reuse: proxy choice, weak-agreement fallback, calibration, degenerate targets, budgets."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

import edgeperf as ep
from edgeperf import spaces
from edgeperf.datasets import MeasurementTable
from edgeperf.errors import AdaptationError, ArchitectureError
from edgeperf.proxy import MonotoneCalibrator, correlation_interval, rank, select_within_budget
from edgeperf.proxy._calibrate import MIN_ISOTONIC_POINTS

NB = spaces.get("nasbench201")
N_ARCHS = 80
N_TARGET = 12


def _archs(n=N_ARCHS, seed=0):
    return list(dict.fromkeys(NB.sample(3 * n, seed=seed)))[:n]


def _table(columns: dict[str, np.ndarray], archs) -> MeasurementTable:
    rows = [
        {"space": "nasbench201", "arch": a, "device": d, "metric": "latency_ms", "value": float(v)}
        for d, vals in columns.items()
        for a, v in zip(archs, vals)
    ]
    return MeasurementTable(pd.DataFrame(rows))


def _truth(archs, seed=1):
    """A target latency with real structure: a positive linear function of the encoding, exponentiated."""
    w = np.random.default_rng(seed).uniform(0.05, 0.5, NB.encoding_dim())
    return np.exp(NB.encode(archs) @ w)


@pytest.fixture(scope="module")
def world():
    archs = _archs()
    truth = _truth(archs)
    rng = np.random.default_rng(7)
    proxies = {
        "mono": 2.0 * truth**1.3,  # a monotone transform of the target
        "noisy_a": truth * np.exp(rng.normal(0, 0.6, len(archs))),
        "noisy_b": truth * np.exp(rng.normal(0, 0.6, len(archs))),
        "unrelated": np.exp(rng.normal(1.0, 0.5, len(archs))),
    }
    return archs, truth, _table(proxies, archs)


def test_monotone_proxy_is_chosen_and_ranks_exactly(world):
    archs, truth, table = world
    cands, t_idx = archs[N_TARGET:], np.arange(N_TARGET)
    r = rank(cands, target_archs=[archs[i] for i in t_idx], target_values=truth[t_idx], proxies=table)
    assert r.proxy == ["mono"]
    assert r.path == "proxy"
    assert r.source_kind == "measured"
    assert r.agreement.value == pytest.approx(1.0)
    assert r.agreement.low > 0.9 and r.agreement.n == N_TARGET
    true_c = truth[N_TARGET:]
    assert list(r.order) == list(np.argsort(true_c))
    assert spearmanr(r.latency_ms, true_c).statistic == pytest.approx(1.0)
    # affine-in-log calibration recovers a power law exactly (truth = (mono / 2) ** (1 / 1.3))
    assert r.latency_ms == pytest.approx(true_c, rel=1e-6)
    assert "mono" in r.reason


def test_ties_in_target_values_still_pick_the_monotone_proxy(world):
    archs, truth, table = world
    whole_ms = np.maximum(np.round(truth[:20]), 1.0)  # phones report whole milliseconds: many ties
    r = rank(archs[20:], target_archs=archs[:20], target_values=whole_ms, proxies=table)
    assert r.proxy[0] == "mono"
    assert r.agreement.value > 0.9


def test_weak_agreement_takes_the_adapted_path_and_says_why(world):
    archs, truth, table = world
    weak = table.select(devices=["noisy_a", "noisy_b", "unrelated"])
    t_archs, t_vals = archs[:N_TARGET], truth[:N_TARGET]
    r = rank(archs[N_TARGET:], target_archs=t_archs, target_values=t_vals, proxies=weak, agreement_threshold=0.9)
    assert r.path == "adapted"
    assert "agreement_threshold 0.9" in r.reason and "lower bound" in r.reason
    assert r.agreement.low < 0.9
    assert r.calibration == "adapted"
    # the adapted ranking is ordered by its own predicted latency
    assert np.all(np.diff(r.latency_ms[r.order]) >= 0)
    # same data, a threshold the proxies clear: the plain proxy path
    r2 = rank(archs[N_TARGET:], target_archs=t_archs, target_values=t_vals, proxies=weak, agreement_threshold=-1.0)
    assert r2.path == "proxy"


def test_adapted_path_beats_a_useless_proxy_when_the_target_is_learnable():
    archs = _archs(200, seed=3)
    truth = _truth(archs, seed=4)
    rng = np.random.default_rng(0)
    table = _table({"unrelated": np.exp(rng.normal(1.0, 0.5, len(archs))), "other": np.exp(rng.normal(1.0, 0.5, len(archs)))}, archs)
    n_t = 50
    r = rank(archs[n_t:], target_archs=archs[:n_t], target_values=truth[:n_t], proxies=table)
    assert r.path == "adapted"
    proxy_rho = abs(spearmanr(table.values("unrelated").loc[archs[n_t:]], truth[n_t:]).statistic)
    adapted_rho = spearmanr(r.latency_ms, truth[n_t:]).statistic
    assert adapted_rho > 0.8 > proxy_rho


def test_no_target_measurements_use_the_central_prior(world):
    archs, truth, table = world
    r = rank(archs, proxies=table)
    assert r.path == "prior"
    assert "no target measurements" in r.reason and "central" in r.reason
    central = ep.proxy.similarity(table).central_device()
    assert r.proxy == [central]
    assert r.calibration == "identity"
    assert r.latency_ms == pytest.approx(table.values(central).loc[archs].to_numpy())
    assert np.isnan(r.agreement.value) and (r.agreement.low, r.agreement.high) == (-1.0, 1.0)


def test_one_measurement_scales_the_prior(world):
    archs, truth, table = world
    r = rank(archs, target_archs=[archs[5]], target_values=[3.25], proxies=table)
    assert r.path == "prior-calibrated"
    assert r.calibration == "shift"
    assert r.latency_ms[5] == pytest.approx(3.25)
    ratio = r.latency_ms / table.values(r.proxy[0]).loc[archs].to_numpy()
    assert np.ptp(ratio) == pytest.approx(0.0, abs=1e-9)


def test_all_equal_target_values_carry_no_rank_information(world):
    archs, truth, table = world
    r = rank(archs, target_archs=archs[:6], target_values=[4.0] * 6, proxies=table)
    assert r.path == "prior-calibrated"
    assert "all target values are equal" in r.reason
    assert r.calibration == "shift"
    assert len(np.unique(np.round(r.latency_ms, 9))) > 1  # ranking survives


@pytest.mark.parametrize("bad", [np.nan, -1.0, 0.0, np.inf, "n/a"])
def test_bad_target_values_raise_naming_the_position(world, bad):
    archs, truth, table = world
    values = list(truth[:5])
    values[2] = bad
    with pytest.raises(AdaptationError, match="#2"):
        rank(archs, target_archs=archs[:5], target_values=values, proxies=table)


def test_length_mismatch_and_foreign_space(world):
    archs, truth, table = world
    with pytest.raises(AdaptationError, match="5 architectures and 4 values"):
        rank(archs, target_archs=archs[:5], target_values=truth[:4], proxies=table)
    fbnet = spaces.get("fbnet").sample(1, seed=0)
    with pytest.raises(ArchitectureError, match="target_archs"):
        rank(archs, target_archs=fbnet, target_values=[1.0], proxies=table)
    with pytest.raises(ArchitectureError, match="candidates"):
        rank(fbnet, proxies=table)
    with pytest.raises(AdaptationError, match="at least one candidate"):
        rank([], proxies=table)
    with pytest.raises(AdaptationError, match="no proxy device left"):
        rank(archs, proxies=table, exclude_devices=table.devices)


def test_repeated_target_archs_are_averaged(world):
    archs, truth, table = world
    t_archs = archs[:6] + [archs[0]]
    t_vals = list(truth[:6]) + [truth[0] * 4.0]
    r = rank(archs, target_archs=t_archs, target_values=t_vals, proxies=table)
    assert "repeated target architecture" in r.reason
    assert r.agreement.n == 6


def test_budget_selection(world):
    archs, truth, table = world
    budget = float(np.median(truth))
    scores = np.random.default_rng(3).uniform(0, 1, len(archs))
    r = rank(archs, target_archs=archs[:N_TARGET], target_values=truth[:N_TARGET], proxies=table,
             budget_ms=budget, scores=scores)
    hits = r.meets_budget
    assert set(hits) == set(np.flatnonzero(r.latency_ms <= budget))
    assert np.all(np.diff(scores[hits]) <= 0)  # best score first
    r.scores = None  # without scores: fastest first
    fastest = r.within_budget(budget)
    assert set(fastest) == set(hits) and np.all(np.diff(r.latency_ms[fastest]) >= 0)
    # with a margin: fewer, and every one has the headroom
    tight = r.within_budget(budget, margin=0.2)
    assert set(tight) <= set(fastest) and np.all(r.latency_ms[tight] * 1.2 <= budget)
    # mono proxy is exact, so the predicted hits truly meet the budget
    assert np.all(truth[hits] <= budget * (1 + 1e-9))
    frame = select_within_budget(archs, budget, proxies=table, target_archs=archs[:N_TARGET],
                                 target_values=truth[:N_TARGET])
    assert list(frame["index"]) == list(fastest)
    assert np.all(np.diff(frame["latency_ms"]) >= 0)
    assert r.within_budget(budget, margin="auto").size <= fastest.size
    with pytest.raises(AdaptationError):
        r.within_budget(-1.0)
    with pytest.raises(AdaptationError):
        r.within_budget(budget, margin=-0.1)
    with pytest.raises(AdaptationError, match="one score per candidate"):
        r.within_budget(budget, scores=[1.0, 2.0])


def test_value_of_next_measurement(world):
    archs, truth, table = world
    r = rank(archs[10:], target_archs=archs[:6], target_values=truth[:6] * np.exp(np.linspace(0, 0.3, 6)),
             proxies=table)
    v = r.value_of_next_measurement
    assert v.interval_width_next < v.interval_width_now and v.narrowing > 0
    assert v.suggested_arch is not None and v.suggested_arch not in archs[:6]
    r0 = rank(archs, proxies=table)
    assert "more distinct target measurement" in r0.value_of_next_measurement.note


def test_result_frame_and_dict(world):
    archs, truth, table = world
    r = rank(archs[10:], target_archs=archs[:10], target_values=truth[:10], proxies=table, budget_ms=5.0)
    frame = r.to_frame()
    assert list(frame["rank"]) == list(range(1, len(frame) + 1))
    assert list(frame["index"]) == list(r.order)
    d = r.to_dict()
    assert d["proxy"] == r.proxy and d["path"] == r.path and len(d["ranking"]) == len(archs) - 10


class _FakeJoint:
    """The predictor interface proxy reuse relies on (devices_, space_, predict, adapt)."""

    def __init__(self, table):
        self.devices_ = table.devices
        self.space_ = "nasbench201"
        self._w = {d: table.values(d) for d in table.devices}
        self.adapted = {}

    def predict(self, archs, *, device):
        if device in self.adapted:
            return np.array([self.adapted[device] for _ in archs])
        return self._w[device].loc[list(archs)].to_numpy()

    def adapt(self, device, *, archs, values):
        self.adapted[device] = float(np.mean(values))
        self.devices_ = self.devices_ + [device]
        return self


def test_predictor_as_proxy_source_and_predictor_adapt(world):
    archs, truth, table = world
    fake = _FakeJoint(table)
    r = rank(archs[N_TARGET:], target_archs=archs[:N_TARGET], target_values=truth[:N_TARGET], proxies=fake)
    assert r.source_kind == "predictor" and r.proxy == ["mono"]
    weak = _FakeJoint(table.select(devices=["unrelated"]))
    before = copy.deepcopy(weak.devices_)
    r2 = rank(archs[N_TARGET:], target_archs=archs[:N_TARGET], target_values=truth[:N_TARGET], proxies=weak,
              adapt="predictor")
    assert r2.path == "adapted" and "adapt()" in r2.reason
    assert r2.latency_ms == pytest.approx(np.mean(truth[:N_TARGET]))
    assert weak.devices_ == before  # the caller's predictor is not modified
    with pytest.raises(AdaptationError, match="fitted predictor"):
        rank(archs, proxies=object())


# ---- calibration --------------------------------------------------------------------------------
positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(positive, positive), min_size=0, max_size=30),
    queries=st.lists(positive, min_size=1, max_size=50),
    method=st.sampled_from(["auto", "affine", "isotonic", "shift"]),
)
# nearly equal proxy values fit a power law of exponent ~100, once extrapolated to 0 ms
@example(pairs=[(7134.0, 1.0), (7183.0, 2.0)], queries=[1.0], method="auto")
def test_calibration_is_monotone(pairs, queries, method):
    x = [p for p, _ in pairs]
    y = [t for _, t in pairs]
    cal = MonotoneCalibrator(method=method).fit(x, y)
    q = np.sort(np.asarray(queries))
    out = cal.predict(q)
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    assert np.all(np.diff(out) >= -1e-9 * np.abs(out[1:]))


def test_calibration_paths():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
    assert MonotoneCalibrator().fit([], []).kind_ == "identity"
    assert MonotoneCalibrator().fit([2.0], [6.0]).predict([4.0]) == pytest.approx([12.0])
    aff = MonotoneCalibrator().fit(x[:4], 3 * x[:4] ** 0.5)
    assert aff.kind_ == "affine" and aff.predict([100.0]) == pytest.approx([30.0])
    assert MonotoneCalibrator().fit(x, 3 * x**0.5).kind_ == "affine"  # too few points for isotonic
    many = np.geomspace(1.0, 256.0, MIN_ISOTONIC_POINTS)
    iso = MonotoneCalibrator().fit(many, 3 * many**0.5)
    assert iso.kind_ == "isotonic"
    # linear extrapolation beyond the measured range keeps distinct, ordered values
    far = iso.predict([0.01, 0.1, 1000.0, 10000.0])
    assert np.all(np.diff(far) > 0)
    anti = MonotoneCalibrator().fit(x[:4], 1.0 / x[:4])
    assert np.ptp(anti.predict(x)) == pytest.approx(0.0)  # anti-monotone points -> flat, never reversed
    with pytest.raises(AdaptationError):
        MonotoneCalibrator().fit([1.0, -2.0], [1.0, 2.0])


def test_correlation_interval_bonett_wright():
    lo, hi = correlation_interval(0.5, 20)  # se = sqrt((1 + 0.125) / 17) = 0.25725
    assert lo == pytest.approx(np.tanh(np.arctanh(0.5) - 1.959964 * 0.25725), abs=1e-4)
    assert hi == pytest.approx(np.tanh(np.arctanh(0.5) + 1.959964 * 0.25725), abs=1e-4)
    assert correlation_interval(0.9, 3) == (-1.0, 1.0)
    widths = [np.subtract(*correlation_interval(0.8, n)[::-1]) for n in (5, 10, 20, 50)]
    assert np.all(np.diff(widths) < 0)
    k_lo, k_hi = correlation_interval(0.5, 20, "kendall")
    assert k_lo < 0.5 < k_hi


def test_table_without_candidate_measurements_fits_per_device_predictors(world):
    archs, truth, table = world
    unseen = [a for a in dict.fromkeys(NB.sample(400, seed=11)) if a not in set(archs)][:30]
    t_archs = archs[:N_TARGET + 20]
    r = rank(unseen, target_archs=t_archs, target_values=_truth(t_archs), proxies=table)
    assert r.source_kind == "fitted"
    assert r.proxy[0] == "mono"  # the fitted models keep mono's perfect agreement on the measured archs
    assert spearmanr(r.latency_ms, _truth(unseen)).statistic > 0.5


def test_failing_predictor_adapt_falls_back_to_features(world):
    archs, truth, table = world

    class Refuses(_FakeJoint):
        def adapt(self, device, *, archs, values):
            raise AdaptationError("needs the reference architectures")

    r = rank(archs[N_TARGET:], target_archs=archs[:N_TARGET], target_values=truth[:N_TARGET],
             proxies=Refuses(table.select(devices=["unrelated"])), adapt="predictor")
    assert r.path == "adapted"
    assert "adapt() failed: needs the reference architectures" in r.reason and "ridge" in r.reason


def test_adapted_devices_of_a_predictor_are_not_proxies():
    """A device the predictor learned from the target samples themselves would agree with them
    in-sample; only devices with their own training data may serve as proxies."""
    import edgeperf as ep

    table = ep.datasets.load("help-nb201")
    refs = ep.datasets.reference_archs("help-nb201")
    train_archs = set(table.archs[:300]) | set(refs)
    p = ep.JointPredictor(model_params={"n_estimators": 50}).fit(
        table.select(devices=["1080ti_1", "pixel3", "silver_4114"], archs=train_archs)
    )
    truth = table.values("gold_6240")
    archs = refs + [a for a in table.archs[300:310]]
    p.adapt("target", archs=archs, values=truth[archs].to_numpy())
    r = rank(table.archs[1000:1100], target_archs=archs, target_values=truth[archs].to_numpy(), proxies=p)
    assert "target" not in r.proxy and "target" not in r.proxy_agreements.index
    assert set(r.proxy) <= {"1080ti_1", "pixel3", "silver_4114", "@macs", "@params", "@mem_bytes"}
