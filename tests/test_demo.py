"""The README's main job, end to end at a small size, with real ONNX Runtime runs."""

import json

import pytest

from edgeperf import datasets
from edgeperf.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path):
    config = DemoConfig(
        candidates=60, check_samples=6, extra_adapt_samples=5, budget_checks=3,
        warmup=1, repeats=5, out_dir=str(tmp_path), device_name="this-vm", train_archs=1000,
    )
    report = run_demo(config)

    assert (tmp_path / "predicted_vs_measured.png").stat().st_size > 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["device"] == "this-vm" and saved["adaptation_measurements"] == 15
    for key in ("joint_adapted", "proxy_reuse"):
        assert -1.0 <= saved["check_set"][key]["spearman"] <= 1.0
        assert saved["check_set"][key]["mape_percent"] > 0
    assert saved["budget"]["picked"] <= 3
    measured = datasets.read(tmp_path / "measurements.csv")
    n_rows = len(measured)
    assert n_rows >= 15 + 6  # adaptation + check set (+ picks not already measured)

    # a second run finds every architecture in the file and measures nothing new
    again = run_demo(config)
    assert len(datasets.read(tmp_path / "measurements.csv")) == n_rows
    assert again["check_set"] == report["check_set"]
    assert again["designs"] == report["designs"]
    assert len(report["designs"]) == 2 and all(d["measured_ms"] > 0 for d in report["designs"])
    assert report["designs"][0]["budget_ms"] < report["designs"][1]["budget_ms"]
