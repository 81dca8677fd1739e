"""Objectives: the conformance suite every registered objective passes, accuracy tables,
the AnalogNAS-Bench reader (hostile and corrupted pickles refused), proxies."""

from __future__ import annotations

import importlib.util
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import edgeperf as ep
from edgeperf.errors import (
    DataValidationError,
    EdgePerfError,
    InvalidParameterError,
    ObjectiveError,
    ObjectiveUnavailableError,
    UnknownNameError,
)
from edgeperf.optimize import objectives
from edgeperf.optimize.objectives import _analog

from _optimize_support import synthetic_accuracy, write_fake_anb

NB201 = ep.spaces.get("nasbench201")
HAS_ANALOG = importlib.util.find_spec("analognasbench") is not None


@pytest.fixture(scope="module")
def fake_anb(tmp_path_factory):
    return write_fake_anb(tmp_path_factory.mktemp("anb") / "data.anb")


def _factory(name, fake_anb):
    """How the conformance suite builds each registered objective (a new one must be added)."""
    return {
        "accuracy": lambda: objectives.get("accuracy", table=synthetic_accuracy()),
        "nb201-cifar10": lambda: objectives.get("nb201-cifar10", path=fake_anb),
        "nb201-cifar10-int8": lambda: objectives.get("nb201-cifar10-int8", path=fake_anb),
        "naswot": lambda: objectives.get("naswot", batch_size=4),
        "synflow": lambda: objectives.get("synflow"),
        "snip": lambda: objectives.get("snip", batch_size=4),
        "macs": lambda: objectives.get("macs"),
    }[name]


# ---- conformance: every registered objective ---------------------------------------------------
@pytest.mark.parametrize("name", objectives.names())
def test_conformance(name, fake_anb):
    objective = _factory(name, fake_anb)()
    assert isinstance(objective, objectives.Objective)
    assert objective.name == name and objective.kind in ("accuracy", "proxy", "macs") and objective.unit
    assert name in objective.describe()
    archs = NB201.sample(3, seed=4, unique=True)
    scores = objective.score(archs, space=NB201)
    assert scores.dtype == np.float64 and scores.shape == (3,) and np.isfinite(scores).all()
    again = _factory(name, fake_anb)().score(list(reversed(archs)), space="nasbench201")
    np.testing.assert_allclose(again[::-1], scores, rtol=1e-6)  # reproducible, order-independent
    with pytest.raises(ObjectiveError):
        objective.score(["not an arch"], space=NB201)
    covered = objective.spaces()
    for other in ("fbnet", "ofa_mbv3"):
        if covered is not None and other not in covered:
            with pytest.raises(ObjectiveError, match="does not cover"):
                objective.check_space(ep.spaces.get(other))


def test_make_parses_the_cli_specs(tmp_path):
    assert objectives.make("macs").kind == "macs"
    assert objectives.make("proxy:synflow").name == "synflow"
    assert objectives.make({NB201.sample(1, seed=0)[0]: 70.0}).kind == "accuracy"
    path = tmp_path / "acc.csv"
    pd.DataFrame({"arch": NB201.sample(5, seed=1), "cifar10": [60, 70, 80, 90, 91.5]}).to_csv(path, index=False)
    assert len(objectives.make(f"accuracy:{path}").accuracy) == 5
    for bad, err in (("proxy:nope", UnknownNameError), ("accuracy:", InvalidParameterError),
                     ("wat:x", InvalidParameterError), ("nope", UnknownNameError), (3, InvalidParameterError)):
        with pytest.raises(err):
            objectives.make(bad)


# ---- accuracy tables ---------------------------------------------------------------------------
def test_accuracy_from_a_tidy_file(tmp_path):
    archs = NB201.sample(4, seed=2, unique=True)
    path = tmp_path / "acc.csv"
    pd.DataFrame({"space": "nasbench201", "arch": archs, "device": "cifar10", "metric": "accuracy_top1",
                  "value": [71.0, 72.5, 80.0, 93.0]}).to_csv(path, index=False)
    obj = objectives.get("accuracy", table=path)
    np.testing.assert_allclose(obj.score(archs, space=NB201), [71.0, 72.5, 80.0, 93.0])
    assert obj.spaces() == ("nasbench201",)


def test_accuracy_file_without_the_metric_is_refused(tmp_path):
    path = tmp_path / "lat.csv"
    pd.DataFrame({"space": "nasbench201", "arch": NB201.sample(2, seed=0, unique=True), "device": "d",
                  "metric": "latency_ms", "value": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="accuracy_top1"):
        objectives.get("accuracy", table=path)


def test_accuracy_table_that_misses_archs_names_one():
    archs = NB201.sample(3, seed=9, unique=True)
    obj = objectives.get("accuracy", table=pd.Series({archs[0]: 70.0, archs[1]: 75.0}))
    with pytest.raises(ObjectiveError, match="does not cover the space"):
        obj.score(archs, space=NB201)


@pytest.mark.parametrize("bad", [{"x": 1.0}, {}, {"ARCH": float("nan")}, {"ARCH": True}, {"ARCH": "90"}])
def test_accuracy_table_bad_entries(bad):
    arch = NB201.sample(1, seed=0)[0]
    bad = {(arch if k == "ARCH" else k): v for k, v in bad.items()}
    with pytest.raises(EdgePerfError):
        objectives.get("accuracy", table=bad)


def test_accuracy_table_conflicting_duplicates():
    arch = NB201.sample(1, seed=0)[0]
    spaced = " " + arch + " "  # the same cell spelt differently
    with pytest.raises(ObjectiveError, match="twice"):
        objectives.get("accuracy", table={arch: 70.0, spaced: 71.0})


# ---- AnalogNAS-Bench ----------------------------------------------------------------------------
def test_fake_anb_reads_through_the_naslib_mapping(fake_anb):
    obj = objectives.get("nb201-cifar10", path=fake_anb)
    truth = synthetic_accuracy()
    archs = NB201.sample(50, seed=3, unique=True)
    np.testing.assert_allclose(obj.score(archs, space=NB201), [truth[a] for a in archs])
    int8 = objectives.get("nb201-cifar10-int8", path=fake_anb)
    np.testing.assert_allclose(int8.score(archs, space=NB201), [truth[a] - 1 for a in archs])


def test_anb_in_our_string_order_is_refused(tmp_path):
    # A table keyed in NB-201 string order instead of NASLib's edge order: the cut-off cells
    # then land elsewhere and the loader must notice.
    path = write_fake_anb(tmp_path / "data.anb", positions=list(range(6)))
    with pytest.raises(DataValidationError, match="does not match NAS-Bench-201"):
        objectives.get("nb201-cifar10", path=path).score(NB201.sample(2, seed=0), space=NB201)


def test_anb_with_missing_records_is_refused(tmp_path):
    path = write_fake_anb(tmp_path / "data.anb", drop=5)
    with pytest.raises(DataValidationError, match="one record per NAS-Bench-201 cell"):
        objectives.get("nb201-cifar10", path=path).accuracy


def test_hostile_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "data.anb"
    path.write_bytes(pickle.dumps({(0,) * 6: Evil()}))
    with pytest.raises(DataValidationError, match="refused global"):
        objectives.get("nb201-cifar10", path=path).accuracy
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    path = write_fake_anb(tmp_path / "data.anb", hostile=True)
    with pytest.raises(DataValidationError, match="refused global types.SimpleNamespace"):
        objectives.get("nb201-cifar10", path=path).accuracy


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b"not a pickle at all", pickle.dumps([1, 2, 3])])
def test_corrupted_pickles_are_refused(tmp_path, content):
    path = tmp_path / "data.anb"
    path.write_bytes(content)
    with pytest.raises(DataValidationError):
        objectives.get("nb201-cifar10", path=path).accuracy


def test_truncated_real_layout_is_refused(tmp_path, fake_anb):
    path = tmp_path / "data.anb"
    path.write_bytes(fake_anb.read_bytes()[: len(fake_anb.read_bytes()) // 2])
    with pytest.raises(DataValidationError, match="corrupted"):
        objectives.get("nb201-cifar10", path=path).accuracy


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_analog.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ObjectiveUnavailableError, match=r"edgeperf\[analog\]"):
        objectives.get("nb201-cifar10")


@pytest.mark.skipif(not HAS_ANALOG, reason="optional extra analog-nasbench not installed (pip install 'edgeperf[analog]')")
def test_real_analog_nasbench_table():
    obj = objectives.get("nb201-cifar10")
    archs = list(NB201.enumerate())
    acc = obj.score(archs, space=NB201)
    assert len(acc) == 15_625 and 93 < acc.max() < 95
    all_conv3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    all_none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert obj.score([all_conv3], space=NB201)[0] > 90 and obj.score([all_none], space=NB201)[0] == 10.0


# ---- proxies --------------------------------------------------------------------------------------
def test_proxies_score_any_torch_module():
    import torch

    small = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    small(torch.zeros(1, 3, 8, 8))
    wide = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    wide(torch.zeros(1, 3, 8, 8))
    for name in ("naswot", "synflow", "snip"):
        proxy = objectives.get(name, batch_size=4)
        a, b = proxy.score_module(small, (4, 3, 8, 8)), proxy.score_module(wide, (4, 3, 8, 8))
        assert np.isfinite(a) and np.isfinite(b)
        if name == "synflow":
            assert b > a  # more paths carry more synaptic flow


def test_proxies_cover_fbnet_and_ofa():
    for space in ("fbnet", "ofa_mbv3"):
        s = ep.spaces.get(space)
        scores = objectives.get("synflow").score(s.sample(2, seed=0, unique=True), space=s)
        assert np.isfinite(scores).all() and scores[0] != scores[1]


def test_proxy_bad_batch():
    with pytest.raises(InvalidParameterError):
        objectives.get("naswot", batch_size=1)
