"""Shared fixtures of the optimize tests: a small fast predictor, a synthetic accuracy table,
and fake AnalogNAS-Bench pickles written the way the real package writes them."""

from __future__ import annotations

import functools
import itertools
import pickle
import sys
import types

import numpy as np

import edgeperf as ep
from edgeperf.optimize.objectives import _analog

DEVICES = ["1080ti_1", "pixel3", "silver_4114", "titanx_32"]
N_ARCHS = 1500


@functools.lru_cache(maxsize=1)
def small_predictor():
    """A JointPredictor on 4 public devices and 1,500 NB-201 archs (a few seconds)."""
    table = ep.datasets.load("help-nb201")
    wide = table.wide()
    archs = set(wide.index[wide["arch_index"] < N_ARCHS]) | set(ep.datasets.reference_archs("nasbench201"))
    return ep.JointPredictor(model_params={"n_estimators": 60}).fit(table.select(devices=DEVICES, archs=archs))


def cut_off(ops) -> bool:
    space = ep.spaces.get("nasbench201")
    return _analog._cut_off(space, ops)


@functools.lru_cache(maxsize=1)
def synthetic_accuracy() -> dict[str, float]:
    """Accuracy-like numbers for every NB-201 cell: chance when the output is cut off, else
    growing with compute, plus a fixed pseudo-random part (so it is not MACs itself)."""
    space = ep.spaces.get("nasbench201")
    archs = list(space.enumerate())
    macs = space.cost_matrix(archs)[:, 0]
    noise = np.random.default_rng(0).normal(0, 1.5, len(archs))
    acc = 50 + 40 * (np.log(macs) - np.log(macs).min()) / np.ptp(np.log(macs)) + noise
    return {a: (10.0 if cut_off(space.parse(a)) else float(min(acc[i], 95.0))) for i, a in enumerate(archs)}


def write_fake_anb(path, *, positions=None, drop=0, hostile=False):
    """A pickle laid out like analog-nasbench's data.anb, from :func:`synthetic_accuracy`.

    ``positions`` maps our edge order to tuple positions (default: NASLib's, the real one);
    ``drop`` leaves out that many records; ``hostile`` adds a global that runs code.
    """
    space = ep.spaces.get("nasbench201")
    acc = synthetic_accuracy()
    position = {(t - 1, s - 1): k for k, (s, t) in enumerate(_analog.NASLIB_EDGES)}
    if positions is None:
        positions = [position[(t, s)] for t, s in space.edges]
    module = types.ModuleType("analognasbench.data")

    class Architecture:
        pass

    class DriftMeasurement:
        pass

    for cls in (Architecture, DriftMeasurement):
        cls.__module__, cls.__qualname__ = "analognasbench.data", cls.__name__
        setattr(module, cls.__name__, cls)
    parent = types.ModuleType("analognasbench")
    parent.__path__, parent.data = [], module
    names = ("analognasbench", "analognasbench.data")
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update(zip(names, (parent, module)))
    try:
        data = {}
        for key in itertools.product(range(5), repeat=6):
            ops = tuple(_analog.NASLIB_OPS[key[positions[e]]] for e in range(6))
            rec = Architecture()
            value = acc[space.to_string(ops)]
            drift = DriftMeasurement()
            drift.value, drift.uncertainty = 1.0, 0.0
            rec.__dict__.update(architecture=key, baseline_accuracy=value, ptq_accuracy=value - 1,
                                qat_accuracy=value - 2, baseline_drift_60=drift)
            data[key] = rec
        for key in list(data)[:drop]:
            del data[key]
        if hostile:
            data["evil"] = types.SimpleNamespace  # pickled as a global outside the two admitted classes
        path.write_bytes(pickle.dumps(data, protocol=4))
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return path
