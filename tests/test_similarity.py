"""Device-similarity report: matrix properties, clustering, files written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from edgeperf import spaces
from edgeperf.datasets import MeasurementTable
from edgeperf.errors import UnknownNameError
from edgeperf.proxy import rank_correlation, similarity, topk_overlap

NB = spaces.get("nasbench201")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table(columns, archs):
    rows = [
        {"space": "nasbench201", "arch": a, "device": d, "metric": "latency_ms", "value": float(v)}
        for d, vals in columns.items()
        for a, v in zip(archs, vals)
        if np.isfinite(v)
    ]
    return MeasurementTable(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def families():
    """Two device families: each member a monotone, slightly noisy transform of its family's latency."""
    archs = list(dict.fromkeys(NB.sample(200, seed=0)))[:120]
    rng = np.random.default_rng(0)
    f, g = np.exp(rng.normal(0, 1, len(archs))), np.exp(rng.normal(0, 1, len(archs)))
    cols = {}
    for i in range(3):
        cols[f"gpu{i}"] = (1 + i) * f ** (1 + 0.2 * i) * np.exp(rng.normal(0, 0.05, len(archs)))
        cols[f"phone{i}"] = (2 + i) * g ** (1 + 0.1 * i) * np.exp(rng.normal(0, 0.05, len(archs)))
    order = ["gpu0", "phone0", "gpu1", "phone1", "gpu2", "phone2"]  # interleaved on purpose
    return archs, _table({k: cols[k] for k in order}, archs)


@pytest.mark.parametrize("method", ["spearman", "kendall", "topk"])
def test_matrix_symmetric_unit_diagonal_and_families_cluster(families, method):
    archs, table = families
    res = similarity(table, method=method)
    m = res.matrix.to_numpy()
    assert m.shape == (6, 6)
    assert np.allclose(m, m.T)
    assert np.allclose(np.diag(m), 1.0)
    assert np.all((m >= -1) & (m <= 1))
    assert list(res.matrix.index) == list(res.matrix.columns) == res.order
    pos = [i for i, d in enumerate(res.order) if d.startswith("gpu")]
    assert pos in ([0, 1, 2], [3, 4, 5])  # each family is contiguous in the clustered order
    within = res.matrix.loc["gpu0", "gpu1"]
    across = res.matrix.loc["gpu0", "phone0"]
    assert within > across
    assert (res.n_shared.to_numpy() == len(archs)).all()


def test_pairs_use_only_shared_archs_and_nan_when_none():
    archs = list(dict.fromkeys(NB.sample(60, seed=1)))[:40]
    base = np.exp(np.random.default_rng(1).normal(0, 1, 40))
    a = base.copy()
    b = 3 * base**2
    b[:20] = np.nan  # b measured only on the second half
    c = base.copy()
    c[20:] = np.nan  # c only on the first half: shares nothing with b
    res = similarity(_table({"a": a, "b": b, "c": c}, archs))
    assert res.n_shared.loc["a", "b"] == 20 and res.n_shared.loc["b", "c"] == 0
    assert res.matrix.loc["a", "b"] == pytest.approx(1.0)
    assert np.isnan(res.matrix.loc["b", "c"])
    assert res.notes


def test_report_files(families, tmp_path):
    _, table = families
    res = similarity(table, archs=80, seed=3)
    files = res.write_report(tmp_path / "report")
    assert files["png"].read_bytes()[:8] == PNG_MAGIC and files["png"].stat().st_size > 10_000
    import matplotlib.image

    img = matplotlib.image.imread(files["png"])
    assert img.shape[0] > 500 and img.shape[1] > 500
    back = pd.read_csv(files["csv"], index_col="device")
    assert list(back.index) == res.order
    assert np.allclose(back.to_numpy(), res.matrix.to_numpy(), atol=1e-4)
    data = json.loads(files["json"].read_text())
    assert data["order"] == res.order and data["method"] == "spearman"
    assert data["n_shared"][0][0] == 80
    assert res.central_device() in res.order


class _Pred:
    def __init__(self):
        self.devices_ = ["x", "y", "z"]
        self.space_ = "nasbench201"

    def predict(self, archs, *, device):
        e = NB.encode(archs)
        w = {"x": 1.0, "y": 2.0, "z": -1.0}[device]
        return np.exp(w * (e @ np.linspace(0.0, 1.0, e.shape[1])))


def test_similarity_from_a_predictor():
    res = similarity(_Pred(), archs=300)
    assert res.matrix.loc["x", "y"] == pytest.approx(1.0)
    assert res.matrix.loc["x", "z"] < 0
    assert "sampled" in res.notes[0]


def test_rank_correlation_helpers():
    x = [1, 2, 2, 3, 4]
    assert rank_correlation(x, [10, 20, 20, 30, 40]) == pytest.approx(1.0)  # ties handled
    assert rank_correlation(x, [5, 5, 5, 5, 5]) != rank_correlation(x, [5, 5, 5, 5, 5])  # constant -> NaN
    assert rank_correlation(x, [4, 3, 3, 2, 1], "kendall") == pytest.approx(-1.0)
    assert topk_overlap(np.arange(100), np.arange(100)[::-1], k=10) == 0.0
    assert topk_overlap(np.arange(100), np.arange(100), k=10) == 1.0
    with pytest.raises(UnknownNameError):
        rank_correlation(x, x, "pearson")
