"""JointPredictor.fit(table, client=...) on a LocalCluster: xgboost.dask, same model file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from edgeperf import spaces  # noqa: E402
from edgeperf.datasets import DeviceSpec, MeasurementTable, reference_archs  # noqa: E402
from edgeperf.predictors import JointPredictor, load  # noqa: E402

SPACE = "nasbench201"
PARAMS = {"n_estimators": 60, "max_depth": 6, "n_jobs": 1}


def _synthetic_table(n_archs=300, n_devices=6, seed=0, drop_ref=None) -> MeasurementTable:
    """Latency = exp(device scale + device-weighted log MACs/params/memory + noise); ref archs included."""
    sp = spaces.get(SPACE)
    rng = np.random.default_rng(seed)
    archs = list(dict.fromkeys(reference_archs(SPACE) + sp.sample(n_archs, seed=seed)))
    logc = np.log(sp.cost_matrix(archs))
    rows = []
    specs = {}
    for d in range(n_devices):
        w = rng.uniform(0.2, 1.0, logc.shape[1])
        lat = np.exp(rng.normal(0, 1) + logc @ w * 0.3 + rng.normal(0, 0.02, len(archs)))
        name = f"dev{d}"
        specs[name] = DeviceSpec(name=name, cpu_cores=int(2 + d), memory_mb=1024.0 * (d + 1))
        for i, (a, v) in enumerate(zip(archs, lat)):
            if drop_ref is not None and d == 0 and a == reference_archs(SPACE)[drop_ref]:
                continue
            rows.append((SPACE, a, name, "latency_ms", float(v)))
    frame = pd.DataFrame(rows, columns=["space", "arch", "device", "metric", "value"])
    return MeasurementTable(frame, devices_info=specs)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def _meta(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("metadata.json")), sorted(zf.namelist())


def test_dask_fit_matches_single_process_fit_and_file_layout(client, tmp_path):
    table = _synthetic_table(drop_ref=3)
    local = JointPredictor(model_params=PARAMS).fit(table)
    dist = JointPredictor(model_params=PARAMS).fit(table, client=client)
    assert dist.devices_ == local.devices_ and dist.static_fields_ == local.static_fields_
    learned = lambda p: sorted(k for k in vars(p) if k.endswith("_") and not k.startswith("_"))  # noqa: E731
    assert learned(dist) == learned(local)  # the same learned state as a single-process fit
    # uncalibrated (no leave-family-out refits): no robust or shrunk scale, so quantiles keep the RMS rule
    assert set(dist.training_) == set(local.training_) | {"trainer"}
    assert set(dist.uncertainty_) == set(local.uncertainty_) - {"robust_scale", "pooled_scale", "shrink_weight"}
    assert dist.space_log_table_.shape == local.space_log_table_.shape
    for d in local.devices_:
        assert set(dist.device_params_[d]) == set(local.device_params_[d])
        np.testing.assert_allclose(dist.device_params_[d]["static"], local.device_params_[d]["static"])
        assert dist.device_params_[d]["n_train"] == local.device_params_[d]["n_train"]
    assert dist.training_["imputed_reference_values"] == local.training_["imputed_reference_values"] == {"dev0": 1}
    for d in local.devices_:
        np.testing.assert_allclose(dist.device_params_[d]["signature"], local.device_params_[d]["signature"], rtol=1e-6)
    # the Bayes prior is exact algebra on sufficient statistics: the same numbers
    np.testing.assert_allclose(dist.prior_mean_, local.prior_mean_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dist.prior_cov_, local.prior_cov_, rtol=1e-5, atol=1e-8)
    assert dist.prior_noise_var_ == pytest.approx(local.prior_noise_var_, rel=1e-6)
    archs = spaces.get(SPACE).sample(200, seed=99)
    for d in local.devices_:  # distributed histograms differ a little; the model does not
        a, b = np.log(local.predict(archs, device=d)), np.log(dist.predict(archs, device=d))
        assert np.corrcoef(a, b)[0, 1] > 0.98
    p_local, p_dist = local.save(tmp_path / "local.zip"), dist.save(tmp_path / "dist.zip")
    (m_local, names_local), (m_dist, names_dist) = _meta(p_local), _meta(p_dist)
    assert names_local == names_dist and set(m_local) == set(m_dist)
    assert m_dist["training"]["trainer"] == "xgboost.dask"
    again = load(p_dist)
    np.testing.assert_allclose(again.predict(archs, device="dev2"), dist.predict(archs, device="dev2"), rtol=1e-6)
    again.adapt("new", archs=archs[:20], values=dist.predict(archs[:20], device="dev1"))


def test_dask_fit_from_farm_files_glob(client, tmp_path):
    from edgeperf.datasets import Measurement, RowWriter

    table = _synthetic_table(n_archs=120, n_devices=3, seed=1)
    for d in table.devices:
        with RowWriter(tmp_path / f"{d}.csv", devices_info=[table.device_spec(d)]) as w:
            sub = table.frame[table.frame["device"] == d]
            w.append([Measurement(space=SPACE, arch=a, device=d, metric="latency_ms", value=v)
                      for a, v in zip(sub["arch"], sub["value"])])
    p = JointPredictor(model_params=PARAMS).fit(str(tmp_path / "*.csv"), client=client)
    assert p.devices_ == ["dev0", "dev1", "dev2"] and p.training_["n_rows"] == len(table)
    assert p.static_fields_ == ["cpu_cores", "memory_mb"]  # from the .devices.json sidecars
    assert p.predict(table.archs[0], device="dev1") > 0


def test_dask_fit_rejects_what_it_cannot_do(client):
    from edgeperf.errors import DataValidationError, InvalidParameterError

    table = _synthetic_table(n_archs=30, n_devices=2)
    with pytest.raises(InvalidParameterError, match="xgboost"):
        JointPredictor(model="ridge").fit(table, client=client)
    with pytest.raises(DataValidationError, match="energy_mj"):
        JointPredictor(metric="energy_mj").fit(table, client=client)
