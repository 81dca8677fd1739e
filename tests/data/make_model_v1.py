"""Build the format-1 model-file fixtures (model_v1*.edgeperf + model_v1.json) with edgeperf at commit 262efa7.

    cd /tmp && python make_model_v1.py <tests/data>   # with that commit installed
"""
import json, sys
import numpy as np, edgeperf as ep
assert ep.predictors.FORMAT_VERSION == 1, ep.__file__
out = sys.argv[1]
t = ep.datasets.load("help-nb201"); w = t.wide()
archs = set(w.index[w["arch_index"] < 200]) | set(ep.predictors.reference_archs("nasbench201"))
p = ep.JointPredictor(model_params={"n_estimators": 8, "max_depth": 4}).fit(t.select(devices=["1080ti_1", "pixel3"], archs=archs))
test = list(w.index[1000:1020])
expected = {d: p.predict(test, device=d).tolist() for d in p.devices_}
p.save(f"{out}/model_v1.edgeperf")
ad = ep.predictors.reference_archs("nasbench201") + list(w.index[300:310])
p.adapt("new-cpu", archs=ad, values=w.loc[ad, "gold_6240"].to_numpy())
p.save(f"{out}/model_v1_adapted.edgeperf")
json.dump({"edgeperf_version": ep.__version__, "archs": test, "expected_ms": expected}, open(f"{out}/model_v1.json", "w"), indent=1)
