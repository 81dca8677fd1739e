"""Shared by the fast-path tests: a small joint model of FBNet or OFA with adapted devices."""

import edgeperf as ep

# Small enough to fit in seconds, deep enough that trees split on many decisions.
SMALL_TREES = {"n_estimators": 30, "max_depth": 6}
N_TRAIN_ARCHS = 300  # per device, plus the reference set
N_TRAIN_DEVICES = 5
N_EXTRA_ADAPT = 10  # adaptation measurements beyond the reference set (HELP's 10 + 10)
TARGET_COLUMN = N_TRAIN_DEVICES + 1  # the device the adapted ones copy: one not trained on


def small_joint_with_adapted(space_name: str, adaptations: dict) -> "ep.JointPredictor":
    """A joint model on the first devices of the space's HELP table, with one adapted device per
    ``{name: strategy}`` entry (strategy None: the default), all adapted to the same held-out
    device's 20 measurements."""
    table = ep.datasets.load({"fbnet": "help-fbnet", "ofa_mbv3": "help-ofa-mbv3"}[space_name])
    wide = table.wide()
    devices = [c for c in wide.columns if c != "arch_index"]
    refs = ep.predictors.reference_archs(space_name)
    archs = set(wide.index[wide["arch_index"] < N_TRAIN_ARCHS]) | set(refs)
    p = ep.JointPredictor(model_params=SMALL_TREES).fit(
        table.select(devices=devices[:N_TRAIN_DEVICES], archs=archs)
    )
    measured = refs + list(wide.index[wide["arch_index"] >= N_TRAIN_ARCHS][:N_EXTRA_ADAPT])
    values = wide.loc[measured, devices[TARGET_COLUMN]].to_numpy()
    for name, strategy in adaptations.items():
        p.adapt(name, archs=measured, values=values, strategy=strategy)
    return p
