"""``edgeperf rank`` and ``edgeperf similarity`` end to end, with files written in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from edgeperf import spaces
from edgeperf.cli import app

NB = spaces.get("nasbench201")
N_TARGET = 10


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("proxycli")
    archs = list(dict.fromkeys(NB.sample(120, seed=5)))[:60]
    rng = np.random.default_rng(5)
    truth = np.exp(NB.encode(archs) @ rng.uniform(0.05, 0.5, NB.encoding_dim()))
    wide = pd.DataFrame({
        "arch": archs,
        "mono": 1.5 * truth**1.2,
        "noisy": truth * np.exp(rng.normal(0, 0.7, len(archs))),
        "other": np.exp(rng.normal(1, 0.5, len(archs))),
    })
    wide.to_csv(d / "proxies.csv", index=False)
    (d / "cands.txt").write_text("# candidates\n" + "\n".join(archs[N_TARGET:]) + "\n")
    pd.DataFrame({"arch": archs[N_TARGET:], "score": rng.uniform(0, 1, len(archs) - N_TARGET)}).to_csv(
        d / "cands.csv", index=False)
    pd.DataFrame({"arch": archs[:N_TARGET], "latency_ms": truth[:N_TARGET]}).to_csv(d / "target.csv", index=False)
    return d, archs, truth


def test_rank_command(files):
    d, archs, truth = files
    budget = float(np.median(truth[N_TARGET:]))
    out = d / "ranking.json"
    res = CliRunner().invoke(app, ["rank", str(d / "proxies.csv"), "--candidates", str(d / "cands.txt"),
                                   "--target-measurements", str(d / "target.csv"), "--budget-ms", str(budget),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "proxy: mono" in res.output
    assert "path: proxy" in res.output and "agreement: spearman 1.000" in res.output
    assert f"budget {budget:g} ms:" in res.output
    data = json.loads(out.read_text())
    ranked = [row["arch"] for row in data["ranking"]]
    cands = archs[N_TARGET:]
    assert ranked == [cands[i] for i in np.argsort(truth[N_TARGET:])]
    assert len(data["meets_budget"]) == int((truth[N_TARGET:] <= budget * (1 + 1e-9)).sum())


def test_rank_command_csv_candidates_with_scores_and_csv_out(files):
    d, archs, truth = files
    out = d / "ranking.csv"
    res = CliRunner().invoke(app, ["rank", str(d / "proxies.csv"), "--candidates", str(d / "cands.csv"),
                                   "--target-measurements", str(d / "target.csv"), "--budget-ms", "1e9",
                                   "--exclude", "mono", "--out", str(out), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "proxy: mono" not in res.output
    frame = pd.read_csv(out)
    assert {"arch", "latency_ms", "score", "meets_budget"} <= set(frame.columns)
    assert frame["meets_budget"].all()


def test_rank_without_target_measurements_uses_prior(files):
    d, _, _ = files
    res = CliRunner().invoke(app, ["rank", str(d / "proxies.csv"), "--candidates", str(d / "cands.txt")])
    assert res.exit_code == 0, res.output
    assert "path: prior" in res.output and "no target measurements" in res.output


def test_similarity_command(files, tmp_path):
    d, _, _ = files
    res = CliRunner().invoke(app, ["similarity", str(d / "proxies.csv"), "--out", str(tmp_path / "rep"),
                                   "--method", "kendall"])
    assert res.exit_code == 0, res.output
    for name in ("similarity.csv", "similarity.json", "similarity.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert json.loads((tmp_path / "rep" / "similarity.json").read_text())["method"] == "kendall"
    assert "most central device" in res.output


def test_bad_target_file_is_a_clean_error(files, tmp_path):
    d, archs, _ = files
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"arch": archs[:5], "latency_ms": [1.0, 2.0, -3.0, 4.0, 5.0]}).to_csv(bad, index=False)
    proc = subprocess.run(
        [sys.executable, "-c", "from edgeperf.cli import main; main()", "rank", str(d / "proxies.csv"),
         "--candidates", str(d / "cands.txt"), "--target-measurements", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and "row 3, field 'latency_ms'" in proc.stderr and "Traceback" not in proc.stderr
