"""Built-in public tables, reference architectures, device features and the `datasets` CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeperf import datasets, spaces
from edgeperf.cli import app
from edgeperf.errors import DatasetNotFoundError, UnknownNameError

EXPECTED = {  # name: (space, n archs, n devices)
    "help-nb201": ("nasbench201", 15_625, 21),
    "help-fbnet": ("fbnet", 5_000, 24),
    "help-ofa-mbv3": ("ofa_mbv3", 5_000, 11),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_loads_full_tables(name):
    space, n_archs, n_devices = EXPECTED[name]
    table = datasets.load(name)
    assert table.space == space and table.metrics == ["latency_ms"]
    assert len(table.archs) == n_archs and len(table.devices) == n_devices
    assert len(table) == n_archs * n_devices  # the public tables have no holes
    counts = table.frame.groupby("device").size()
    assert (counts == n_archs).all()
    assert "arch_index" in table.frame.columns
    assert table.frame["arch_index"].nunique() == n_archs
    # every device has static features, with the kind the name implies
    assert set(table.devices_info) == set(table.devices)
    for d, spec in table.devices_info.items():
        assert spec.name == d and spec.kind in {"gpu", "cpu", "phone"}
    assert table.source.endswith(datasets.info(name)["file"])
    # the summary (header + row count) agrees with the parsed table
    summary = next(s for s in datasets.list_builtin() if s["name"] == name)
    assert (summary["space"], summary["n_archs"], summary["n_devices"]) == (space, n_archs, n_devices)
    assert summary["devices"] == table.devices


def test_device_features_are_the_known_facts():
    info = datasets.load("help-nb201").devices_info
    assert info["1080ti_32"].gpu == "NVIDIA GeForce GTX 1080 Ti" and info["1080ti_32"].batch_size == 32
    assert info["pixel3"].soc == "Qualcomm Snapdragon 845" and info["pixel3"].kind == "phone"
    assert info["samsung_a50"].soc == "Samsung Exynos 9610"
    assert info["essential_ph_1"].batch_size is None  # "_1" is the phone model, not a batch size
    assert info["gold_6240"].cpu_model == "Intel Xeon Gold 6240"
    assert "Exynos 8890 or Snapdragon 820" in info["samsung_s7"].extra["soc_note"]


def test_load_returns_tables_callers_cannot_corrupt():
    a = datasets.load("help-ofa-mbv3")
    first = a.frame["value"].iloc[0]
    a.frame.loc[0, "value"] = -5.0
    a.devices_info.clear()
    b = datasets.load("help-ofa-mbv3")
    assert b.frame["value"].iloc[0] == first and b.devices_info


def test_values_match_the_packaged_file_exactly():
    import pandas as pd

    raw = pd.read_csv(datasets.data_path("help-fbnet"))
    wide = datasets.load("help-fbnet").wide()
    assert wide["arch_index"].tolist() == raw["arch_index"].tolist()
    devices = [c for c in raw.columns if c not in ("arch", "arch_index")]
    assert np.array_equal(wide[devices].to_numpy(), raw[devices].to_numpy())


def test_unknown_name_lists_known_ones():
    with pytest.raises(DatasetNotFoundError, match="help-fbnet, help-nb201, help-ofa-mbv3"):
        datasets.load("help-nb101")
    with pytest.raises(DatasetNotFoundError):
        datasets.info("nope")


@pytest.mark.parametrize(
    "key, first_index",
    [("help-nb201", 11982), ("nasbench201", 11982), ("fbnet", 3328), ("ofa_mbv3", 1316), ("ofa", 1316)],
)
def test_reference_archs(key, first_index):
    refs = datasets.reference_archs(key)
    assert len(refs) == 10 and len(set(refs)) == 10
    table = datasets.load(datasets.reference_archs.__globals__["_ALIASES"].get(key, key))
    frame = table.frame.drop_duplicates("arch_index").set_index("arch_index")["arch"]
    assert refs[0] == frame.loc[first_index]
    sp = spaces.get(table.space)
    assert sp.validate(refs) == refs  # canonical strings of the right space
    with pytest.raises(UnknownNameError):
        datasets.reference_archs(key, version="brp")


def test_cli_list_and_show():
    runner = CliRunner()
    res = runner.invoke(app, ["datasets", "list"])
    assert res.exit_code == 0, res.output
    for name in EXPECTED:
        assert name in res.output
    assert "15,625" in res.output
    res = runner.invoke(app, ["datasets", "show", "help-nb201"])
    assert res.exit_code == 0, res.output
    table = datasets.load("help-nb201")
    lines = [ln for ln in res.output.splitlines() if "15,625" in ln and "latency_ms" in ln]
    assert len(lines) == 21
    for d in table.devices:
        assert any(f" {d} " in ln for ln in lines), d


def test_cli_show_file_and_unknown(tmp_path):
    path = tmp_path / "ofa.parquet"
    datasets.write(datasets.load("help-ofa-mbv3").select(devices=["v100_1", "v100_32"]), path)
    res = CliRunner().invoke(app, ["datasets", "show", str(path)])
    assert res.exit_code == 0, res.output
    assert "v100_32" in res.output and "5,000" in res.output and "2080ti_1" not in res.output
    # the real console script: an unknown name is a one-line error, exit code 2
    proc = subprocess.run(
        [sys.executable, "-c", "from edgeperf.cli import main; main()", "datasets", "show", "help-nope"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "help-nb201" in proc.stderr and "Traceback" not in proc.stderr


def test_hardware_family_groups_batch_variants_only():
    from edgeperf.datasets import hardware_family

    assert hardware_family("titanxp_32") == hardware_family("titanxp_1") == "titanxp"
    assert hardware_family("titan_rtx_64") == "titan_rtx"
    assert hardware_family("essential_ph_1") == "essential_ph_1"  # "_1" is the phone's model name
    assert hardware_family("gold_6240") != hardware_family("gold_6226")
    assert hardware_family("my-phone") == "my-phone"  # not a public device: its own family


@pytest.mark.parametrize("name", ["help-nb201", "help-fbnet", "help-ofa-mbv3"])
def test_versioned_reference_set_matches_the_tables_reference_indices(name):
    """Predictors embed HELP's reference architectures as strings (reference set help-v1) so a
    model file never depends on a data file; they must be the archs at HELP's indices."""
    from edgeperf.predictors import reference_archs as versioned

    table = datasets.load(name)
    assert versioned(table.space, "help-v1") == datasets.reference_archs(name)
