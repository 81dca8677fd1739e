"""Issue 11: every bad input a clear error, nothing lost, a CLI that feels finished.

One section per numbered class of the issue; each test fails on the behaviour the issue reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import edgeperf as ep
from edgeperf import datasets, spaces
from edgeperf.cli import app
from edgeperf.datasets import Measurement, RowWriter
from edgeperf.errors import (
    DataValidationError,
    DatasetNotFoundError,
    EdgePerfError,
    FileAccessError,
    FileLockedError,
    InvalidParameterError,
    UnknownDeviceError,
)

ROOT = Path(__file__).resolve().parents[1]
NB = spaces.get("nasbench201")
ARCHS = NB.sample(12, seed=3)
TINY_CLI = ["--warmup", "1", "--repeats", "3", "--max-rounds", "1", "--quiet"]
#: The shipped nb201 model's devices include pixel3.
PIXEL3_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def console(*args, timeout=300):
    """Run the real ``edgeperf`` console script (of the venv running the tests) on this checkout."""
    script = Path(sys.executable).parent / "edgeperf"
    cmd = [str(script), *args] if script.exists() else [sys.executable, "-c", "from edgeperf.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


def _m(arch, value=1.5, device="dev"):
    return Measurement(space="nasbench201", arch=arch, device=device, metric="latency_ms", value=value)


def _tidy(path, rows):
    pd.DataFrame(rows, columns=["space", "arch", "device", "metric", "value"]).to_csv(path, index=False)
    return path


# ---- 1: one writer per profiling file ---------------------------------------------------------
def test_a_second_writer_of_one_file_is_refused_and_the_lock_goes_with_the_first(tmp_path):
    out = tmp_path / "p.csv"
    with RowWriter(out, devices_info=[datasets.DeviceSpec(name="dev")]) as w:
        w.append(_m(ARCHS[0]))
        with pytest.raises(FileLockedError, match=r"p\.csv is being written by process \d+"):
            RowWriter(out)
        assert (tmp_path / "p.csv.lock").exists()
    assert not (tmp_path / "p.csv.lock").exists()
    with RowWriter(out) as w:  # free again
        assert len(w) == 1


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "p.csv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "p.csv.lock").write_text(f"{dead.stdout.strip()} somehost\n")
    with RowWriter(out) as w:
        w.append(_m(ARCHS[0]))
    assert len(datasets.read(out)) == 1


def test_a_second_profile_run_on_one_out_gets_a_clear_error(tmp_path):
    out = tmp_path / "p.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from edgeperf.datasets import RowWriter
            w = RowWriter({str(out)!r}); print("locked", flush=True); sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = console("profile", "-d", "onnxruntime", "-s", "nasbench201", "-o", str(out), "--samples", "1", *TINY_CLI)
        assert res.returncode == 2 and "being written by process" in res.stderr and "Traceback" not in res.stderr
    finally:
        holder.communicate("\n", timeout=60)
    assert len(datasets.read(out)) == 0  # nothing was doubled


# ---- 2: a model --out never replaces measurements ---------------------------------------------
def test_train_and_adapt_refuse_an_out_that_is_an_input_or_not_a_model(tmp_path):
    data = datasets.write(datasets.load("help-nb201").select(devices=["pixel3"], archs=set(ARCHS)), tmp_path / "m.csv")
    before = data.read_bytes()
    r = CliRunner()
    res = r.invoke(app, ["train", str(data), "--out", str(data)])
    assert isinstance(res.exception, InvalidParameterError) and "one of the inputs" in str(res.exception)
    res = r.invoke(app, ["adapt", "help-nb201", "--device", "new", "--measurements", str(data), "--out", str(data)])
    assert isinstance(res.exception, InvalidParameterError) and "one of the inputs" in str(res.exception)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    res = r.invoke(app, ["train", str(data), "--out", str(notes)])
    assert isinstance(res.exception, InvalidParameterError) and "--force" in str(res.exception)
    assert data.read_bytes() == before and notes.read_text() == "my notes"


# ---- 3: rank's target file goes through datasets.read -----------------------------------------
def test_rank_target_device_misspelt_and_bad_target_files(tmp_path):
    from edgeperf.cli._proxy import read_target_measurements

    table = datasets.load("help-nb201").select(devices=["pixel3", "gold_6240"], archs=set(ARCHS))
    tidy = datasets.write(table, tmp_path / "t.csv")
    with pytest.raises(UnknownDeviceError, match="did you mean 'pixel3'"):
        read_target_measurements(tidy, device="pixle3")
    archs, values, _ = read_target_measurements(tidy, device="pixel3")
    assert len(archs) == len(ARCHS) and all(v > 0 for v in values)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("arch,latency_ms\n".encode() + f"{ARCHS[0]},1.5\n".encode() + b"\xe9\xff,2\n")
    dup = _tidy(tmp_path / "dup.csv", [("nasbench201", ARCHS[0], "d", "latency_ms", 1.0),
                                      ("nasbench201", ARCHS[0], "d", "latency_ms", 2.0)])
    for bad, match in ((empty, "empty"), (latin, "UTF-8"), (dup, "duplicate measurement")):
        with pytest.raises(DataValidationError, match=match):
            read_target_measurements(bad)
    cands = tmp_path / "c.txt"
    cands.write_text("\n".join(ARCHS))
    res = console("rank", "help-nb201", "--candidates", str(cands), "--target-measurements", str(tidy),
                  "--target-device", "pixle3")
    assert res.returncode == 2 and "did you mean 'pixel3'" in res.stderr and "Traceback" not in res.stderr


# ---- 4: row integrity is checked, not guessed -------------------------------------------------
def test_a_torn_last_row_is_detected_exactly_and_a_row_without_newline_kept(tmp_path):
    out = tmp_path / "p.csv"
    with RowWriter(out) as w:
        w.append([_m(ARCHS[0], 1.25), _m(ARCHS[1], 10.9)])
    data = out.read_bytes()
    cut = data.rindex(b"10.9") + 3  # "...,1" of 10.9: the torn row would read as 1.0
    out.write_bytes(data[:cut])
    with pytest.warns(UserWarning, match="last row is torn"):
        table = datasets.read(out)
    assert table.archs == [ARCHS[0]]
    with RowWriter(out) as w:
        assert w.repaired_bytes > 0 and len(w) == 1
    out.write_bytes(data[:-1])  # complete, only the newline missing
    assert datasets.read(out).values("dev").loc[ARCHS[1]] == 10.9
    with RowWriter(out) as w:
        assert w.repaired_bytes == 0 and len(w) == 2
        w.append(_m(ARCHS[2]))
    assert len(datasets.read(out)) == 3


# ---- 5: only real numbers pass ----------------------------------------------------------------
@pytest.mark.parametrize("values", [pd.to_datetime(["2024-01-01", "2024-01-02"]),
                                    pd.to_timedelta([1, 2], unit="ms"), [True, False]])
def test_parquet_dates_durations_and_booleans_are_refused(tmp_path, values):
    frame = pd.DataFrame({"space": "nasbench201", "arch": ARCHS[:2], "device": "d", "metric": "latency_ms",
                          "value": values})
    frame.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataValidationError, match="field 'value': expected real numbers"):
        datasets.read(tmp_path / "x.parquet")


# ---- 8: plausibility ----------------------------------------------------------------------------
@pytest.mark.parametrize("values,match", [
    ((0.002, 0.004, 0.003), "every latency_ms value is below 0.01 ms.*seconds"),
    ((1e30, 2.0, 3.0), "outside the plausible"),
    ((1e-30, 2.0, 3.0), "outside the plausible"),
])
def test_implausible_values_warn_naming_file_and_device(tmp_path, values, match):
    rows = [("nasbench201", a, "odd", "latency_ms", v) for a, v in zip(ARCHS, values)]
    rows += [("nasbench201", a, "ok", "latency_ms", 5.0 + i) for i, a in enumerate(ARCHS[:3])]
    path = _tidy(tmp_path / "v.csv", rows)
    with pytest.warns(UserWarning, match=match) as record:
        datasets.read(path)
    message = str(record[0].message)
    assert str(path) in message and "'odd'" in message and "'ok'" not in message


def test_builtin_tables_raise_no_plausibility_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in datasets.builtin_names():
            datasets.read(datasets.data_path(name))


# ---- 9: usage errors: one line and the usage, exit 2 ------------------------------------------
USAGE_ERRORS = [
    [],
    ["profile"],
    ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-o", "x.csv", "--samples", "0"],
    ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-o", "x.csv", "--samples", "1", "--max-cv", "nan"],
    ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-o", "x.csv", "--samples", "1", "--option", "x"],
    ["nosuch"],
    ["train"],
    ["predict", "help-nb201", "--device"],
    ["rank", "help-nb201"],
    ["datasets", "show"],
]


@pytest.mark.slow
def test_usage_errors_print_the_usage_and_one_line_exit_2(tmp_path):
    for args in USAGE_ERRORS:
        res = console(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout, args
        assert "Usage:" in res.stderr + res.stdout, args
        if args:
            errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
            assert len(errors) == 1 and len(res.stderr.splitlines()) <= 6, (args, res.stderr)


# ---- 10: OS errors ----------------------------------------------------------------------------
def test_os_errors_are_clear_edgeperf_errors(tmp_path):
    table = datasets.load("help-nb201").select(devices=["pixel3"], archs=set(ARCHS[:3]))
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(FileAccessError, match="is a directory"):
        datasets.write(table, tmp_path / "folder.csv")
    with pytest.raises(DataValidationError, match="is a directory"):
        datasets.read(tmp_path / "folder.csv")
    with pytest.raises(DataValidationError, match="no such file"):
        datasets.read(tmp_path / "missing" / "x.csv")
    with pytest.raises(FileAccessError):
        datasets.write(table, "/proc/edgeperf-test.csv")
    with pytest.raises(FileAccessError):
        RowWriter(tmp_path / "folder.csv")
    assert not list(tmp_path.glob("**/*.tmp"))
    with pytest.raises(DataValidationError, match="no such file"):  # a path, not "unknown built-in dataset"
        datasets.open_table(str(tmp_path / "nope.csv"))
    with pytest.raises(DatasetNotFoundError, match="help-nb201"):
        datasets.open_table("help-nb2O1")
    res = console("datasets", "show", str(tmp_path / "nope.csv"))
    assert res.returncode == 2 and "no such file" in res.stderr and "built-in" not in res.stderr


def test_onnx_on_a_onehot_model_is_a_clear_error(tmp_path):
    onnx = NB.export_onnx(ARCHS[0], tmp_path / "m.onnx")
    res = CliRunner().invoke(app, ["predict", "help-nb201", "--device", "pixel3", "--onnx", str(onnx)])
    assert isinstance(res.exception, InvalidParameterError) and "--encoding graph" in str(res.exception)


# ---- 12: bad settings are InvalidParameterError -----------------------------------------------
def test_bad_settings_raise_invalid_parameter_error():
    from edgeperf.profilers import get, sample_archs
    from edgeperf.proxy import rank

    with pytest.raises(InvalidParameterError):
        sample_archs("nasbench201", 0, seed=0)
    with pytest.raises(InvalidParameterError):
        datasets.read(datasets.data_path("help-nb201"), metric="latency")
    with pytest.raises(InvalidParameterError):
        rank(ARCHS, proxies=datasets.load("help-nb201"), method="pearson")
    with pytest.raises(InvalidParameterError):
        get("onnxruntime")(threads=0)


# ---- 13: shipped predictors -------------------------------------------------------------------
def test_shipped_models_answer_by_name(tmp_path):
    assert "help-nb201" in ep.pretrained.names()
    p = ep.pretrained.load("help-nb201")
    assert "pixel3" in p.devices_ and p.space_ == "nasbench201"
    direct = ep.predictors.load(ep.pretrained.path("help-nb201"))
    assert p.predict(PIXEL3_ARCH, device="pixel3") == direct.predict(PIXEL3_ARCH, device="pixel3")
    entry = ep.pretrained.manifest()["models"]["help-nb201"]
    assert entry["dataset_sha256"] == ep.pretrained.dataset_sha256("help-nb201")
    res = console("predict", "help-nb201", "--device", "pixel3", "--arch", PIXEL3_ARCH, "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# latency_ms (ms) predicted on pixel3")
    value, arch = res.stdout.splitlines()[1].split("\t")
    assert arch == PIXEL3_ARCH and float(value) == pytest.approx(p.predict(PIXEL3_ARCH, device="pixel3"), rel=1e-5)


@pytest.mark.slow
def test_a_fresh_fit_matches_the_shipped_nb201_model():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_pretrained
    finally:
        sys.path.pop(0)
    fresh = build_pretrained.fit("help-nb201")
    shipped = ep.pretrained.load("help-nb201")
    archs = NB.sample(300, seed=11)
    assert fresh.devices_ == shipped.devices_
    for device in ("pixel3", "gold_6240", "titanx_1"):
        np.testing.assert_allclose(fresh.predict(archs, device=device), shipped.predict(archs, device=device),
                                   rtol=1e-4)


# ---- 14: predict validates first and prints units ---------------------------------------------
def test_predict_checks_device_and_archs_before_predicting(tmp_path):
    bad = tmp_path / "a.txt"
    bad.write_text(f"{ARCHS[0]}\nnot-a-cell\n")
    res = CliRunner().invoke(app, ["predict", "help-nb201", "--device", "pixle3", "--arch", ARCHS[0], "-q"])
    assert isinstance(res.exception, UnknownDeviceError) and "did you mean 'pixel3'" in str(res.exception)
    res = CliRunner().invoke(app, ["predict", "help-nb201", "--device", "pixel3", "--archs", str(bad), "-q"])
    assert isinstance(res.exception, EdgePerfError) and "architecture #1" in str(res.exception)


# ---- 15: eval and adapt say what they did -----------------------------------------------------
def test_eval_marks_in_sample_devices_and_maps_names(tmp_path):
    table = datasets.load("help-nb201").select(devices=["pixel3"], archs=set(NB.sample(40, seed=1)))
    renamed = MeasurementTable_renamed(table, "my-pixel")
    path = datasets.write(renamed, tmp_path / "mine.csv")
    res = CliRunner().invoke(app, ["eval", "help-nb201", str(path), "--device", "my-pixel=pixel3", "--json"])
    assert res.exit_code == 0, res.output
    import json

    out = json.loads(res.output)
    assert out["my-pixel"]["model_device"] == "pixel3" and "in-sample" in out["my-pixel"]["in_training_data"]
    res = CliRunner().invoke(app, ["eval", "help-nb201", str(path)])
    assert isinstance(res.exception, DataValidationError) and "--device FILE_DEVICE=MODEL_DEVICE" in str(res.exception)


def MeasurementTable_renamed(table, name):
    frame = table.frame.copy()
    frame["device"] = name
    return datasets.MeasurementTable(frame)


@pytest.mark.slow
def test_adapt_prints_the_strategy_and_warns_about_missing_reference_archs(tmp_path):
    table = datasets.load("help-nb201").select(devices=["gold_6240"], archs=set(NB.sample(20, seed=2)))
    path = datasets.write(table, tmp_path / "few.csv")
    res = CliRunner().invoke(app, ["adapt", "help-nb201", "--device", "new-cpu", "--file-device", "gold_6240",
                                   "--measurements", str(path), "--out", str(tmp_path / "a.edgeperf")])
    assert res.exit_code == 0, res.output
    assert "strategy " in res.output and res.output.count("reference architectures") == 1  # said once
    assert "new-cpu" in ep.predictors.load(tmp_path / "a.edgeperf").devices_


def test_profile_reference_measures_the_reference_archs(tmp_path):
    out = tmp_path / "ref.csv"
    res = CliRunner().invoke(app, ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-o", str(out),
                                   "--reference", *TINY_CLI])
    assert res.exit_code == 0, res.output
    assert set(datasets.read(out).archs) == set(datasets.reference_archs("nasbench201"))


# ---- 16: rank output without duplicates, short repr -------------------------------------------
def test_rank_has_no_duplicates_and_a_short_repr():
    from edgeperf.proxy import rank

    table = datasets.load("help-nb201")
    cands = NB.sample(300, seed=4)
    r = rank(cands + cands[:50], proxies=table)
    assert len(r.candidates) == len(set(cands)) and len(set(r.to_frame()["arch"])) == len(r.to_frame())
    assert "repeated candidate" in r.reason
    assert len(repr(r)) < 400 and "candidates" in repr(r)


# ---- 17: arbitrary models -----------------------------------------------------------------------
def test_profile_onnx_measures_a_users_model_files(tmp_path):
    files = [NB.export_onnx(a, tmp_path / f"m{i}.onnx") for i, a in enumerate(ARCHS[:2])]
    out = tmp_path / "models.csv"
    args = ["profile", "-d", "onnxruntime", "-o", str(out), *TINY_CLI]
    for f in files:
        args += ["--onnx", str(f)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    assert list(frame["model"]) == [str(f) for f in files] and (frame["latency_ms"] > 0).all()
    res = CliRunner().invoke(app, ["profile", "-d", "onnxruntime", "-o", str(out), "-s", "nasbench201",
                                   "--onnx", str(files[0])])
    assert isinstance(res.exception, InvalidParameterError)


def test_train_encoding_is_checked_and_graph_offered():
    res = CliRunner().invoke(app, ["train", "--help"])
    assert "graph" in res.output
    res = CliRunner().invoke(app, ["train", "help-nb201", "--out", "/tmp/never-written.edgeperf", "--encoding", "grap"])
    assert isinstance(res.exception, InvalidParameterError) and "graph" in str(res.exception)


# ---- 18: help and tables ------------------------------------------------------------------------
def test_every_option_has_help_and_flags_show_as_flags():
    import typer.main

    group = typer.main.get_command(app)
    ctx = group.make_context("edgeperf", ["--help"], resilient_parsing=True)
    commands = dict(group.commands)
    for name, cmd in list(commands.items()):
        if hasattr(cmd, "commands"):
            commands.update({f"{name} {k}": v for k, v in cmd.commands.items()})
    for name, cmd in commands.items():
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"edgeperf {name} {param.opts[0]} has no help"
        text = cmd.get_help(ctx)
        assert "<bool>" not in text, name
    assert "nnls+bayes" in commands["adapt"].get_help(ctx)


def test_similarity_table_shows_full_device_names():
    res = CliRunner().invoke(app, ["similarity", "help-fbnet", "--archs", "200", "--out", "/tmp/edgeperf-sim-test"])
    assert res.exit_code == 0, res.output
    assert "essential_ph_1" in res.output and "samsung_s7" in res.output


# ---- 19: code health -------------------------------------------------------------------------
def test_import_edgeperf_is_light():
    code = ("import sys, edgeperf, edgeperf.errors, edgeperf.cli; "
            "print(sorted(m for m in ('sklearn', 'torch', 'xgboost', 'scipy', 'onnxruntime') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_public_names_and_lazy_energy():
    import sklearn.exceptions

    assert ep.profilers.energy.__name__ == "edgeperf.profilers.energy"
    assert callable(ep.profilers.profile_archs) and callable(ep.profilers.sample_archs)
    assert ep.spaces.COST_COLUMNS == ("macs", "params", "mem_bytes")
    assert issubclass(ep.errors.NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(ep.errors.NotFittedError, EdgePerfError)
    assert "*.orig" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.slow
def test_train_encoding_graph_then_predict_an_onnx_file(tmp_path):
    table = datasets.load("help-nb201").select(devices=["gold_6240"], archs=set(NB.sample(16, seed=6)))
    data = datasets.write(table, tmp_path / "g.csv")
    model = tmp_path / "g.edgeperf"
    res = CliRunner().invoke(app, ["train", str(data), "--out", str(model), "--model", "per-device",
                                   "--encoding", "graph", "-q"])
    assert res.exit_code == 0, res.output
    assert "graph encoding" in res.output
    onnx = NB.export_onnx(ARCHS[0], tmp_path / "mine.onnx")
    res = CliRunner().invoke(app, ["predict", str(model), "--device", "gold_6240", "--onnx", str(onnx), "-q"])
    assert res.exit_code == 0, res.output
    assert float(res.output.splitlines()[-1].split("\t")[0]) > 0
