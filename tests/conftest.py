import os

import pytest

# Keep BLAS and torch from fighting over the 2 cores when tests run model code.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def nb201():
    """The built-in NAS-Bench-201 table and its wide view, loaded once for every predictor test."""
    import edgeperf as ep

    table = ep.datasets.load("help-nb201")
    return table, table.wide()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EDGEPERF_REAL_PHONE") == "1":
        return
    skip = pytest.mark.skip(reason="needs a real phone: set EDGEPERF_REAL_PHONE=1 and attach one over adb")
    for item in items:
        if "phone" in item.keywords:
            item.add_marker(skip)
