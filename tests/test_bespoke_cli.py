"""``edgeperf bespoke`` end to end on tiny registered donors: house, profile, search, baselines, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).parent))
from test_bespoke import RES, _tiny  # noqa: E402

from edgeperf.bespoke import donors  # noqa: E402
from edgeperf.bespoke.donors._base import Donor  # noqa: E402


class _TinyTeacher(Donor):
    name = "tiny-teacher-test"
    licence = "test only"

    def build(self, *, resolution=None):
        return _tiny(0, width=8, classes=1000)


class _TinyDonor(Donor):
    name = "tiny-donor-test"
    licence = "test only"

    def build(self, *, resolution=None):
        return _tiny(1, width=4, classes=1000)


@pytest.fixture
def tiny_registry(monkeypatch):
    monkeypatch.setitem(donors._REGISTRY, _TinyTeacher.name, _TinyTeacher)
    monkeypatch.setitem(donors._REGISTRY, _TinyDonor.name, _TinyDonor)


def _invoke(args):
    from typer.testing import CliRunner

    from edgeperf.cli import app

    return CliRunner().invoke(app, args)


def test_cli_writes_report_plot_students_and_a_reusable_house(tiny_registry, tmp_path):
    out = tmp_path / "report"
    args = ["bespoke", "--teacher", _TinyTeacher.name, "--donor", _TinyDonor.name, "--target", "onnxruntime:t1",
            "--budget-ratio", "1.0", "--out", str(out), "--resolution", str(RES), "--train-images", "16",
            "--held-out-images", "8", "--epochs", "1", "--finetune-epochs", "1", "--prune-ratios", "0.5",
            "--baselines", "--no-progress"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    t = report["targets"]["onnxruntime:t1"]
    (student,) = t["students"]
    # A budget equal to the teacher's latency is always feasible (timings cannot make this test fail).
    assert student["measured_ms"] > 0 and "within_budget" in student and isinstance(student["chosen"], list)
    assert {"uniform_pruning"} <= set(student) and t["donor_networks"][0]["name"] == _TinyDonor.name
    assert (out / "onnxruntime-t1.png").stat().st_size > 1000
    assert (out / "house" / "house.json").is_file() and Path(student["student_state_dict"]).is_file()
    again = _invoke(args)  # the second run reuses the saved house
    assert again.exit_code == 0 and "reusing the house" in again.output


def test_cli_errors_are_one_line(tiny_registry, tmp_path):
    import subprocess

    exe = Path(sys.executable).with_name("edgeperf")
    proc = subprocess.run([str(exe), "bespoke", "--teacher", "nope", "--target", "onnxruntime:t1", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "unknown donor 'nope'" in proc.stderr
    proc = subprocess.run([str(exe), "bespoke", "--teacher", "efficientnet-lite0", "--target", "tpu:t1", "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown target kind 'tpu'" in proc.stderr
