"""HELP's evaluation protocol (Lee et al., NeurIPS 2021), shared by the benchmarks.

Architectures with ``arch_index`` in [0, N) may be measured on any device; the test set is
[N, N + TEST_SIZE) with the fastest and slowest TRIM_FRACTION of the target's latencies removed.
"""

#: N per search space.
N_TRAIN = {"nasbench201": 900, "fbnet": 4000, "ofa_mbv3": 4000}
TEST_SIZE = 1000
TRIM_FRACTION = 0.10
#: HELP's training devices (those a table has are used).
HELP_TRAIN_DEVICES = ["1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50",
                      "pixel3", "essential_ph_1", "samsung_s7"]


def protocol_rows(table):
    """``(wide, archs, devices, refs, pool_rows, test_rows)`` of a table under HELP's protocol: the
    wide frame, its architectures (object array), device columns, the reference architectures,
    and the row positions of the training pool [0, N) and of the test range [N, N + TEST_SIZE)."""
    import numpy as np

    import edgeperf as ep

    n = N_TRAIN[table.space]
    wide = table.wide()
    idx = wide["arch_index"].to_numpy()
    archs = np.array(wide.index, dtype=object)
    devices = [c for c in wide.columns if c != "arch_index"]
    refs = ep.predictors.reference_archs(table.space)
    return wide, archs, devices, refs, np.flatnonzero(idx < n), np.flatnonzero((idx >= n) & (idx < n + TEST_SIZE))


def joint_model_params(trees):
    """``model_params`` of the benchmarks' joint models for ``--trees N`` (one XGBoost thread, so
    runs side by side do not contend), or None for the library's defaults."""
    return {"n_estimators": trees, "n_jobs": 1} if trees else None


def fitted_joint(sub, model_params, cache):
    """The joint model of one split; with ``cache`` (a folder), saved there and reused on the next run."""
    import hashlib
    import json
    from pathlib import Path

    import edgeperf as ep

    if cache is None:
        return ep.JointPredictor(model_params=model_params).fit(sub)
    import pandas as pd

    # The measurements themselves, not the device and architecture names: a table re-measured under
    # the same names (a rebuilt runtime zoo) must not reuse the model of the old values.
    rows = sub.frame.sort_values(["device", "arch"])[["device", "arch", "value"]]
    values = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
    key = json.dumps([sub.space, values, model_params], sort_keys=True)
    path = Path(cache) / f"joint-{hashlib.sha256(key.encode()).hexdigest()[:16]}.edgeperf"
    if path.exists():
        return ep.load(path)
    p = ep.JointPredictor(model_params=model_params).fit(sub)
    path.parent.mkdir(parents=True, exist_ok=True)
    p.save(path)
    return p
