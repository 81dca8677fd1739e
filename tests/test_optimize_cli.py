"""``edgeperf optimize``: search, designer training and use, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _optimize_support import small_predictor

ARCH_MARK = "~0|+|"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return small_predictor().save(tmp_path_factory.mktemp("cli") / "nb201.model")


def _run(*args):
    import os

    import edgeperf

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(os.path.dirname(edgeperf.__file__))}
    return subprocess.run([sys.executable, "-c", "from edgeperf.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=env)


def test_search_prints_one_design_per_device(model):
    r = _run("optimize", model, "--device", "pixel3", "--device", "1080ti_1", "--budget-ms", "25", "--budget-ms", "9",
             "--objective", "macs", "--json")
    assert r.returncode == 0, r.stderr
    designs = json.loads(r.stdout)
    assert [d["device"] for d in designs] == ["pixel3", "1080ti_1"]
    assert all(d["feasible"] and d["latency_bound_ms"] <= d["budget_ms"] and ARCH_MARK in d["arch"] for d in designs)


def test_table_output_and_infeasible_warning(model):
    r = _run("optimize", model, "--device", "pixel3", "--budget-ms", "0.001")
    assert r.returncode == 0
    assert "NO: fastest" in r.stdout and "warning: no design found within the budget" in r.stderr
    assert ARCH_MARK in r.stdout  # the whole architecture string is printed


@pytest.mark.parametrize("args, message", [
    (["--device", "nope", "--budget-ms", "5"], "unknown device 'nope'"),
    (["--device", "pixel3", "--budget-ms", "5", "--objective", "proxy:nope"], "unknown zero-cost proxy"),
    (["--device", "pixel3"], "expected --device D and --budget-ms X"),
    (["--device", "pixel3", "--device", "1080ti_1", "--budget-ms", "5", "--budget-ms", "6", "--budget-ms", "7"],
     "one per --device"),
    (["--train-designer"], "needs --out"),
    (["--device", "pixel3", "--budget-ms", "-3"], "budget_ms > 0"),
    (["--device", "pixel3", "--budget-ms", "5", "--tolerance", "wide"], "--tolerance: expected 'auto'"),
    (["--device", "pixel3", "--budget-ms", "5", "--tolerance", "1.5"], "expected tolerance='auto'"),
])
def test_errors_are_one_line_and_exit_2(model, args, message):
    r = _run("optimize", model, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_measurements_file_makes_a_measured_arch_admissible(model, tmp_path):
    import edgeperf as ep

    space = ep.spaces.get("nasbench201")
    archs = list(space.enumerate())
    top = archs[int(space.cost_matrix(archs)[:, 0].argmax())]  # the most MACs: the best by --objective macs
    predicted = float(small_predictor().predict([top], device="pixel3")[0])
    budget = predicted * 1.01  # the prediction fits, the 95% quantile does not
    args = ("optimize", model, "--device", "pixel3", "--budget-ms", budget, "--objective", "macs", "--json")
    plain = json.loads(_run(*args).stdout)[0]
    assert plain["arch"] != top
    file = tmp_path / "pixel3.csv"
    file.write_text(f"arch,pixel3\n{top},{predicted}\n")
    r = _run(*args, "--measurements", file)
    assert r.returncode == 0, r.stderr
    design = json.loads(r.stdout)[0]
    assert design["arch"] == top and design["latency_bound_ms"] == pytest.approx(predicted)
    other = tmp_path / "other.csv"
    other.write_text(f"arch,pixel9\n{top},{predicted}\n")
    r = _run(*args, "--measurements", other)
    assert r.returncode == 2 and "expected rows of a --device (pixel3), got devices pixel9" in r.stderr


def test_train_designer_then_design(model, tmp_path):
    # A small designer through the library, then the CLI uses its file.
    from edgeperf.optimize import Designer

    out = tmp_path / "nb201.designer"
    Designer(synthetic_devices=60, epochs=5, hidden=(32,)).fit(small_predictor(), objective="macs").save(out)
    r = _run("optimize", model, "--designer", out, "--device", "pixel3", "--device", "1080ti_1", "--budget-ms", "30",
             "--top-k", "2", "--json")
    assert r.returncode == 0, r.stderr
    designs = json.loads(r.stdout)
    assert 2 <= len(designs) <= 4 and all(d["latency_bound_ms"] <= 30 for d in designs)
    assert {d["device"] for d in designs} == {"pixel3", "1080ti_1"}  # one batched call for both devices
    bad = tmp_path / "bad.designer"
    bad.write_text("not a designer")
    r = _run("optimize", model, "--designer", bad, "--device", "pixel3", "--budget-ms", "30")
    assert r.returncode == 2 and "not an edgeperf designer file" in r.stderr
