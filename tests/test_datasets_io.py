"""Readers, writers and validation of measurement files (real files in tmp_path)."""

from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from edgeperf import datasets
from edgeperf.datasets import DeviceSpec, MeasurementTable, read, validate_tidy_frame, write
from edgeperf.errors import DataValidationError, InvalidParameterError, UnknownDeviceError

NB = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]
FORMATS = ["x.csv", "x.csv.gz", "x.parquet"]


def tidy_frame(overrides=None) -> pd.DataFrame:
    rows = [
        {"space": "nasbench201", "arch": NB[0], "device": "cpu_a", "metric": "latency_ms", "value": 1.5},
        {"space": "nasbench201", "arch": NB[1], "device": "cpu_a", "metric": "latency_ms", "value": 2.25},
        {"space": "nasbench201", "arch": NB[0], "device": "cpu_b", "metric": "latency_ms", "value": 3.0},
    ]
    frame = pd.DataFrame(rows)
    for (row, col), v in (overrides or {}).items():
        frame.loc[row, col] = v
    return frame


def write_text(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def nb_subset():
    """400 real NB201 architectures x all 21 devices, with NaN holes (a wide frame)."""
    wide = datasets.load("help-nb201").wide()
    sub = wide.iloc[::39].copy()
    rng = np.random.default_rng(0)
    devices = [c for c in sub.columns if c != "arch_index"]
    holes = rng.random((len(sub), len(devices))) < 0.1
    sub[devices] = sub[devices].mask(holes)
    return sub, int(holes.sum())


# ---- validation: each bad input gives its clear error -------------------------------------------
@pytest.mark.parametrize(
    "overrides, row, field, words",
    [
        ({(1, "value"): -1.0}, 2, "value", "> 0"),
        ({(2, "value"): 0.0}, 3, "value", "> 0"),
        ({(0, "value"): np.nan}, 1, "value", "NaN"),
        ({(1, "value"): np.inf}, 2, "value", "finite"),
        ({(1, "metric"): "latency"}, 2, "metric", "unknown metric"),
        ({(2, "space"): "nasbench101"}, 3, "space", "unknown search space"),
        ({(1, "device"): "  "}, 2, "device", "device name"),
        ({(1, "arch"): "|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|"}, 2, "arch", "bogus"),
        ({(2, "arch"): "not an arch"}, 3, "arch", "malformed"),
        ({(1, "space"): "fbnet"}, 2, "arch", "malformed fbnet architecture"),  # arch of another space
    ],
)
def test_bad_tidy_values_name_file_row_field(tmp_path, overrides, row, field, words):
    path = tmp_path / "bad.csv"
    tidy_frame(overrides).to_csv(path, index=False)
    with pytest.raises(DataValidationError) as err:
        read(path)
    msg = str(err.value)
    assert f"file {path}" in msg and f"row {row}" in msg and f"field '{field}'" in msg, msg
    assert words in msg
    assert (err.value.row, err.value.field) == (row, field)


def test_non_numeric_value_is_named(tmp_path):
    path = write_text(
        tmp_path / "t.csv",
        f"space,arch,device,metric,value\nnasbench201,{NB[0]},a,latency_ms,1.0\nnasbench201,{NB[1]},a,latency_ms,fast\n",
    )
    with pytest.raises(DataValidationError, match=r"row 2, field 'value': expected a number, got 'fast'"):
        read(path)


def test_missing_and_unknown_columns(tmp_path):
    f = tidy_frame().drop(columns="value")
    with pytest.raises(DataValidationError, match=r"missing required column\(s\) \['value'\]"):
        validate_tidy_frame(f, path="mem.csv")
    f = tidy_frame().assign(gpu="x")
    with pytest.raises(DataValidationError) as err:
        validate_tidy_frame(f, path="mem.csv")
    assert "unknown column(s) ['gpu']" in str(err.value) and "arch_index" in str(err.value)  # lists allowed ones
    assert err.value.field == "gpu"


def test_duplicate_names_both_rows(tmp_path):
    f = pd.concat([tidy_frame(), tidy_frame().iloc[[1]]], ignore_index=True)
    # a non-canonical spelling of the same architecture is still a duplicate
    f.loc[3, "arch"] = " " + NB[1] + " "
    path = tmp_path / "dup.csv"
    f.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"rows 2 and 4 both hold") as err:
        read(path)
    assert err.value.row == 4


def test_provenance_types_checked():
    f = tidy_frame().assign(threads=[1, 2, 0])
    with pytest.raises(DataValidationError, match=r"row 3, field 'threads': expected a positive integer"):
        validate_tidy_frame(f)
    f = tidy_frame().assign(std=[0.1, -0.2, 0.0])
    with pytest.raises(DataValidationError, match=r"row 2, field 'std'"):
        validate_tidy_frame(f)
    ok = validate_tidy_frame(tidy_frame().assign(threads=[1, None, 4], runtime=["ort", None, "tvm"]))
    assert str(ok["threads"].dtype) == "Int64" and ok["threads"].isna().tolist() == [False, True, False]


def test_canonicalises_arch_strings():
    f = tidy_frame({(0, "arch"): "  " + NB[0]})
    out = validate_tidy_frame(f)
    assert out["arch"].iloc[0] == NB[0]
    assert list(out.columns) == ["space", "arch", "device", "metric", "value"]


def test_tidy_file_without_space_column_detects_it(tmp_path):
    path = tmp_path / "nospace.csv"
    tidy_frame().drop(columns="space").to_csv(path, index=False)
    assert read(path).spaces == ["nasbench201"]


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match="unsupported file type"):
        read(tmp_path / "x.xlsx")
    with pytest.raises(DataValidationError, match="no such file"):
        read(tmp_path / "absent.csv")
    with pytest.raises(DataValidationError, match="cannot tell the layout"):
        read(write_text(tmp_path / "odd.csv", "a,b\n1,2\n"))


# ---- wide tables: the -1 / 0 / empty policy --------------------------------------------------------
def test_wide_sentinels_become_missing_with_warning(tmp_path):
    path = write_text(
        tmp_path / "pub.csv",
        "arch_index,arch,dev_a,dev_b\n"
        f"0,{NB[0]},1.5,-1\n"
        f"1,{NB[1]},,2.0\n"
        f"2,{NB[2]},0,0.5\n",
    )
    with pytest.warns(UserWarning) as rec:
        table = read(path)
    msg = str(rec[0].message)
    assert str(path) in msg and "2 cells" in msg and "dev_a (1)" in msg and "dev_b (1)" in msg
    w = table.wide()
    assert w.loc[NB[0], "dev_a"] == 1.5 and np.isnan(w.loc[NB[0], "dev_b"])
    assert np.isnan(w.loc[NB[1], "dev_a"]) and np.isnan(w.loc[NB[2], "dev_a"])
    assert len(table) == 3  # 6 cells - 1 empty - 2 sentinels
    assert table.frame["arch_index"].tolist() == [0, 1, 2]  # file order kept


def test_wide_other_negative_and_inf_are_errors(tmp_path):
    path = write_text(tmp_path / "w.csv", f"arch,dev_a\n{NB[0]},1.0\n{NB[1]},-3.5\n")
    with pytest.raises(DataValidationError, match=r"row 2, field 'dev_a'.*-3.5"):
        read(path)
    path = write_text(tmp_path / "w2.csv", f"arch,dev_a\n{NB[0]},inf\n")
    with pytest.raises(DataValidationError, match=r"row 1, field 'dev_a'.*finite"):
        read(path)
    path = write_text(tmp_path / "w3.csv", f"arch,dev_a\n{NB[0]},1\n{NB[1]},abc\n")
    with pytest.raises(DataValidationError, match=r"row 2, field 'dev_a': expected a number, got 'abc'"):
        read(path)


def test_wide_bad_arch_duplicate_arch_and_empty_device(tmp_path):
    path = write_text(tmp_path / "w.csv", f"arch,dev_a\n{NB[0]},1.0\n|x~0|,2.0\n")
    with pytest.raises(DataValidationError, match=r"row 2, field 'arch'"):
        read(path, space="nasbench201")
    path = write_text(tmp_path / "w.csv", f"arch,dev_a\n{NB[0]},1.0\n{NB[1]},2.0\n{NB[0]},3.0\n")
    with pytest.raises(DataValidationError, match=r"rows 1 and 3"):
        read(path)
    path = write_text(tmp_path / "w.csv", f"arch,dev_a,\n{NB[0]},1.0,2.0\n")
    with pytest.raises(DataValidationError, match=r"no name"):
        read(path)
    path = write_text(tmp_path / "w.csv", f"arch,dev_a,dev_a\n{NB[0]},1.0,2.0\n")
    with pytest.raises(DataValidationError, match=r"more than once"):
        read(path)


def test_wide_metric_space_and_device_arguments(tmp_path):
    path = write_text(tmp_path / "e.csv", f"arch,dev_a,dev_b\n{NB[0]},1.0,2.0\n{NB[1]},3.0,4.0\n")
    t = read(path, metric="energy_mj", device="dev_b")
    assert t.metrics == ["energy_mj"] and t.devices == ["dev_b"] and t.values("dev_b", "energy_mj").tolist() == [2.0, 4.0]
    with pytest.raises(UnknownDeviceError, match="dev_c"):
        read(path, device=["dev_c"])
    with pytest.raises(InvalidParameterError, match="unknown metric 'latency'"):
        read(path, metric="latency")


# ---- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FORMATS)
def test_wide_tidy_round_trip_real_data_with_holes(tmp_path, nb_subset, name):
    sub, n_holes = nb_subset
    src = tmp_path / ("src_" + name)
    frame = sub.reset_index(names="arch")
    if name.endswith(".parquet"):
        frame.to_parquet(src, index=False)
    else:
        frame.to_csv(src, index=False)
    table = read(src)
    n_devices = sub.shape[1] - 1
    assert len(table) == len(sub) * n_devices - n_holes
    assert table.space == "nasbench201"

    tidy_path, wide_path = tmp_path / ("tidy_" + name), tmp_path / ("wide_" + name)
    write(table, tidy_path)
    write(table, wide_path, layout="wide")
    back_tidy, back_wide = read(tidy_path), read(wide_path)
    for back in (back_tidy, back_wide):
        w = back.wide()
        assert list(w.index) == list(sub.index)
        assert w["arch_index"].tolist() == sub["arch_index"].tolist()
        a = w[sub.columns[1:]].to_numpy()
        b = sub[sub.columns[1:]].to_numpy()
        assert np.array_equal(a, b, equal_nan=True)  # exact, bit for bit, holes in place
    pd.testing.assert_frame_equal(back_tidy.frame, table.frame, check_dtype=False)


@pytest.mark.parametrize("name", FORMATS)
def test_tidy_round_trip_with_provenance_and_sidecar(tmp_path, name):
    f = tidy_frame().assign(runtime=["onnxruntime", "onnxruntime", "tvm"], threads=[1, 2, None],
                            std=[0.1, 0.2, np.nan], value=[1 / 3, 2.0 / 7, 1e-7])
    spec = DeviceSpec(name="cpu_a", kind="cpu", cpu_cores=2, cpu_max_freq_mhz=(2400.0, 2400.0), extra={"k": [1]})
    table = MeasurementTable(f, devices_info={"cpu_a": spec})
    path = tmp_path / name
    write(table, path)
    side = datasets.sidecar_path(path)
    assert side.name == name + ".devices.json" and json.loads(side.read_text())["cpu_a"]["cpu_cores"] == 2
    back = read(path)
    assert back.devices_info == {"cpu_a": spec}
    pd.testing.assert_frame_equal(back.frame, table.frame, check_dtype=False)
    assert back.frame["value"].tolist() == [1 / 3, 2.0 / 7, 1e-7]
    # rewriting without device info removes the stale sidecar
    write(MeasurementTable(f), path)
    assert not side.exists() and read(path).devices_info == {}


def test_csv_gz_is_gzip_and_reproducible(tmp_path):
    table = MeasurementTable(tidy_frame())
    a, b = write(table, tmp_path / "a.csv.gz"), write(table, tmp_path / "b.csv.gz")
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()).startswith(b"space,arch,device,metric,value\n")


def test_write_rejects_bad_arguments(tmp_path):
    table = MeasurementTable(pd.concat([tidy_frame(), tidy_frame().assign(metric="energy_mj")]))
    with pytest.raises(DataValidationError, match="pass metric"):
        write(table, tmp_path / "w.csv", layout="wide")
    write(table, tmp_path / "w.csv", layout="wide", metric="energy_mj")
    assert read(tmp_path / "w.csv", metric="energy_mj").metrics == ["energy_mj"]
    with pytest.raises(InvalidParameterError, match="unknown layout"):
        write(table, tmp_path / "w.csv", layout="long")


def test_bad_sidecar_is_reported(tmp_path):
    path = tmp_path / "t.csv"
    write(MeasurementTable(tidy_frame()), path)
    datasets.sidecar_path(path).write_text(json.dumps({"cpu_a": {"cpu_cores": 0}}))
    with pytest.raises(DataValidationError, match=r"devices.json.*cpu_cores"):
        read(path)
    datasets.sidecar_path(path).write_text(json.dumps({"cpu_a": {"name": "cpu_b"}}))
    with pytest.raises(DataValidationError, match="must agree"):
        read(path)


def test_no_warning_for_clean_wide_file(tmp_path):
    path = write_text(tmp_path / "w.csv", f"arch,dev_a\n{NB[0]},1.0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read(path)


def test_reads_rowwriter_files_with_sidecar(tmp_path):
    from edgeperf.datasets import Measurement, RowWriter

    spec = DeviceSpec(name="cpu_a", kind="cpu", threads=1, runtime="onnxruntime")
    path = tmp_path / "prof.csv"
    with RowWriter(path, devices_info={"cpu_a": spec}) as w:
        w.append([
            Measurement("nasbench201", NB[0], "cpu_a", "latency_ms", 0.1 + 0.2, runtime="onnxruntime",
                        threads=1, runs=200, std=0.01, timestamp="2026-11-27T10:00:00"),
            Measurement("nasbench201", NB[1], "cpu_a", "latency_ms", 2.5),  # no provenance at all
        ])
    table = read(path)
    assert table.devices_info == {"cpu_a": spec}
    assert table.values("cpu_a").tolist() == [0.1 + 0.2, 2.5]
    assert table.frame["runs"].tolist()[0] == 200 and table.frame["runs"].isna().tolist() == [False, True]
    assert table.frame["runtime"].tolist() == ["onnxruntime", None]
    assert table.to_records()[0].timestamp == "2026-11-27T10:00:00"


def test_written_files_get_the_permissions_of_any_new_file(tmp_path):
    """The atomic write must not leave its temporary file's private 0o600 mode on a table or its
    devices sidecar: a teammate reads shared measurement files (the umask decides, as for open())."""
    import os

    table = MeasurementTable(tidy_frame(), devices_info={"cpu_a": DeviceSpec(name="cpu_a", kind="cpu")})
    path = write(table, tmp_path / "shared.csv")
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    want = os.stat(plain).st_mode & 0o777
    assert os.stat(path).st_mode & 0o777 == want
    sidecar = datasets.sidecar_path(path)
    assert sidecar.exists() and os.stat(sidecar).st_mode & 0o777 == want
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
