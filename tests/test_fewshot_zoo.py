"""The built-in runtime zoo (``zoo-nb201``): what the few-shot work may train on."""

from edgeperf import datasets, spaces


def test_zoo_loads_with_runtime_features_and_reference_archs():
    table = datasets.load("zoo-nb201")
    assert table.space == "nasbench201" and table.metrics == ["latency_ms"]
    assert len(table.devices) >= 3
    for d in table.devices:
        spec = table.devices_info[d]
        assert spec.kind == "cpu" and spec.runtime in {"onnxruntime", "torch", "tvm"}
        assert spec.threads >= 1 and spec.batch_size >= 1
    refs = datasets.reference_archs("zoo-nb201")
    assert refs == datasets.reference_archs("nasbench201")
    assert all(table.frame["value"].gt(0))
    # every device has the reference archs; the others are NAS-Bench-201 cells of HELP's training pool [0, 900)
    wide = table.wide()
    assert wide.loc[refs].notna().all().all()
    spaces.get("nasbench201").validate(list(wide.index))
    others = [a for a in wide.index if a not in set(refs)]
    assert wide.loc[others, "arch_index"].lt(900).all()
