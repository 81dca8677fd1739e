"""The built-in runtime zoos (``zoo-nb201``, ``zoo-fbnet``, ``zoo-ofa-mbv3``): what the few-shot work may train on."""

import pytest

from edgeperf import datasets, spaces

#: zoo -> (space, HELP's training range [0, N) of that space, archs measured from its test range
#: [N, N + 1000): zoo-nb201 has the 999 that are not reference archs (ORT 1 thread measured its whole
#: list), zoo-fbnet's list put 100 after 800 of [0, N), zoo-ofa-mbv3's time box ended before any)
ZOOS = {"zoo-nb201": ("nasbench201", 900, 999), "zoo-fbnet": ("fbnet", 4000, 100), "zoo-ofa-mbv3": ("ofa_mbv3", 4000, 0)}


@pytest.mark.parametrize("name", ZOOS)
def test_zoo_loads_with_runtime_features_and_reference_archs(name):
    space, n_train, n_test = ZOOS[name]
    table = datasets.load(name)
    assert table.space == space and table.metrics == ["latency_ms"]
    assert len(table.devices) >= 3
    for d in table.devices:
        spec = table.devices_info[d]
        assert spec.kind == "cpu" and spec.runtime in {"onnxruntime", "torch", "tvm"}
        assert spec.threads >= 1 and spec.batch_size >= 1
    refs = datasets.reference_archs(name)
    assert refs == datasets.reference_archs(space)
    assert all(table.frame["value"].gt(0))
    # every device has the reference archs; the others are of HELP's training pool [0, N) but for
    # the stated number of the test range (which the benchmarks never train on)
    wide = table.wide()
    assert wide.loc[refs].notna().all().all()
    spaces.get(space).validate(list(wide.index))
    others = wide.loc[[a for a in wide.index if a not in set(refs)], "arch_index"]
    assert others.lt(n_train + 1000).all() and int(others.ge(n_train).sum()) == n_test
