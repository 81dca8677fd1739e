"""Synthetic hardware (edgeperf.datasets.synthetic)."""

import numpy as np
import pytest

from edgeperf import spaces
from edgeperf.datasets.synthetic import SYNTHETIC_KIND, layer_costs, synthetic_devices, synthetic_table
from edgeperf.errors import ArchitectureError


@pytest.mark.parametrize("space", ["nasbench201", "fbnet", "ofa_mbv3"])
def test_devices_are_reproducible_positive_and_diverse(space):
    archs = spaces.get(space).sample(40, seed=1)
    devs = synthetic_devices(space, 12, seed=5)
    again = synthetic_devices(space, 12, seed=5)
    assert devs == again and devs != synthetic_devices(space, 12, seed=6)
    Y = np.array([d.latency_ms(archs) for d in devs])
    assert np.isfinite(Y).all() and (Y > 0).all()
    assert np.allclose(Y[0], again[0].latency_ms(archs))
    from scipy.stats import spearmanr

    rho = spearmanr(Y.T).statistic[np.triu_indices(len(devs), 1)]
    assert rho.min() < 0.9  # devices rank architectures differently
    assert len({d.name for d in devs}) == len(devs)


def test_costs_decode_the_structural_encoding():
    sp = spaces.get("fbnet")
    archs = sp.sample(5, seed=0)
    c = layer_costs("fbnet", archs)
    total = sp.cost_matrix(archs)
    assert c.macs.shape == (5, 23)  # 22 searchable layers + the fixed ones
    assert np.allclose(c.macs.sum(axis=1), total[:, 0], rtol=1e-3)
    assert np.allclose(c.mem_bytes.sum(axis=1), total[:, 2], rtol=1e-3)


def test_compute_bound_device_follows_macs():
    sp = spaces.get("fbnet")
    archs = sp.sample(60, seed=2)
    dev = synthetic_devices("fbnet", 1, seed=0)[0]
    import dataclasses

    compute_only = dataclasses.replace(dev, bandwidth_bytes_per_s=1e30, wave_macs=1.0, launch_ms=0.0, fixed_ms=0.0,
                                       quirk_sigma=0.0, precision="fp32", batch_size=1)
    y = compute_only.latency_ms(archs)
    macs = sp.cost_matrix(archs)[:, 0]
    assert np.allclose(y, macs / compute_only.peak_macs_per_s * 1e3, rtol=1e-3)
    # batch size scales compute time linearly
    y8 = dataclasses.replace(compute_only, batch_size=8).latency_ms(archs)
    assert np.allclose(y8, 8 * y, rtol=1e-6)


def test_table_marks_devices_synthetic():
    archs = spaces.get("nasbench201").sample(10, seed=0)
    t = synthetic_table("nasbench201", archs, 3, seed=0)
    assert len(t.devices) == 3 and len(t) == 30
    assert all(t.devices_info[d].kind == SYNTHETIC_KIND for d in t.devices)
    assert synthetic_devices("nasbench201", 1)[0].latency_ms(archs[0]) > 0  # one string -> float


def test_bad_count_is_a_clear_error():
    with pytest.raises(ArchitectureError, match="n >= 1"):
        synthetic_devices("fbnet", 0)
