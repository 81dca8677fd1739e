"""``nnls+synthetic`` finds hardware unlike the training devices (beyond the conformance suite)."""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf import metrics
from edgeperf.datasets.synthetic import synthetic_device
from edgeperf.predictors.adapt._synthetic import BANK_SEED, affine_loo_errors


@pytest.fixture(scope="module")
def phones_only():
    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    archs = set(wide.index[wide["arch_index"] < 300]) | set(ep.predictors.reference_archs("nasbench201"))
    sub = table.select(devices=["pixel3", "samsung_a50"], archs=archs)
    return ep.JointPredictor(model_params={"n_estimators": 30}).fit(sub), wide


def test_a_device_in_the_bank_is_found_and_ranked_almost_exactly(phones_only):
    p, wide = phones_only
    target = synthetic_device(f"syn-nasbench201-{BANK_SEED}-17")  # a bank member: the strategy can find it
    refs = ep.predictors.reference_archs("nasbench201")
    archs = refs + list(wide.index[(wide["arch_index"] >= 300) & (wide["arch_index"] < 310)])
    test = list(wide.index[(wide["arch_index"] >= 1000) & (wide["arch_index"] < 1400)])
    truth = target.latency_ms(test)
    scores = {}
    for s in ("nnls", "nnls+synthetic"):
        p.adapt(f"t-{s}", archs=archs, values=target.latency_ms(archs), strategy=s, overwrite=True)
        scores[s] = metrics.spearman(truth, p.predict(test, device=f"t-{s}"))
    assert target.name in p.adapters_["t-nnls+synthetic"].synthetic_
    assert scores["nnls+synthetic"] > 0.99
    assert scores["nnls+synthetic"] > scores["nnls"] + 0.02


def test_affine_loo_error_prefers_the_generating_column():
    rng = np.random.default_rng(0)
    z = rng.normal(size=20)
    Z = np.column_stack([rng.normal(size=20), z, -z])
    err = affine_loo_errors(Z, 1.5 + 2.0 * z + 0.01 * rng.normal(size=20))
    assert np.argmin(err) == 1 and err[1] < 1e-3
    assert np.isinf(err[2])  # a device that orders the target backwards is never chosen
