"""Fuzz every reader and parser: whatever the bytes, only EdgePerfError escapes (issue 11, class 11)."""

from __future__ import annotations

import gzip
import json
import warnings

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeperf import datasets, spaces
from edgeperf.datasets import RowWriter
from edgeperf.errors import EdgePerfError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NB = spaces.get("nasbench201").sample(3, seed=0)
TIDY_HEADER = b"space,arch,device,metric,value\n"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


def _only_edgeperf_errors(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except EdgePerfError:
            pass


@FUZZ
@given(st.sampled_from(spaces.names()),
       st.one_of(st.text(max_size=300), json_values.map(lambda v: json.dumps(v)),
                 st.integers(min_value=0, max_value=6000).map(lambda n: "[" * n + "]" * n),
                 st.integers(min_value=1, max_value=5000).map(lambda n: '{"d":[' + "9" * n + '],"e":[],"ks":[],"r":1}')))
def test_arch_parsers_raise_only_edgeperf_errors(space, text):
    _only_edgeperf_errors(lambda: spaces.get(space).canonical(text))


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["f.csv", "f.csv.gz"]))
def test_csv_bytes_raise_only_edgeperf_errors(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") and data[:1] != b"!" else data)
    _only_edgeperf_errors(lambda: datasets.read(path))


@FUZZ
@given(st.lists(st.lists(st.one_of(st.sampled_from(NB + ["nasbench201", "d", "latency_ms", "-1", "0", "1e308",
                                                         "1e-30", "nan", "inf", "", '"', "True"]),
                                   st.text(max_size=6)), min_size=5, max_size=5), max_size=6))
def test_tidy_csv_cells_raise_only_edgeperf_errors(tmp_path, rows):
    path = tmp_path / "t.csv"
    path.write_bytes(TIDY_HEADER + "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass"))
    _only_edgeperf_errors(lambda: datasets.read(path))


@FUZZ
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_corrupted_gzip_raises_only_edgeperf_errors(tmp_path, position, byte):
    good = gzip.compress(TIDY_HEADER + f"nasbench201,{NB[0]},d,latency_ms,1.5\n".encode())
    bad = bytearray(good)
    bad[position % len(bad)] = byte
    path = tmp_path / "g.csv.gz"
    path.write_bytes(bytes(bad))
    _only_edgeperf_errors(lambda: datasets.read(path))


column_values = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=2),
    st.lists(st.booleans(), min_size=2, max_size=2),
    st.lists(st.integers(min_value=-2**63, max_value=2**63 - 1), min_size=2, max_size=2),
    st.lists(st.datetimes(), min_size=2, max_size=2),
    st.lists(st.timedeltas(), min_size=2, max_size=2),
    st.lists(st.text(max_size=5), min_size=2, max_size=2),
    st.lists(st.none(), min_size=2, max_size=2),
)


@FUZZ
@given(st.fixed_dictionaries({"space": column_values, "arch": st.one_of(st.just(NB[:2]), column_values),
                              "device": column_values, "metric": st.one_of(st.just(["latency_ms"] * 2), column_values),
                              "value": column_values}),
       st.booleans())
def test_parquet_columns_raise_only_edgeperf_errors(tmp_path, columns, wide):
    frame = pd.DataFrame(columns)
    if wide:
        frame = frame.rename(columns={"space": "dev_a", "device": "dev_b", "metric": "dev_c", "value": "dev_d"})
    path = tmp_path / "p.parquet"
    try:
        frame.to_parquet(path)
    except Exception:  # noqa: BLE001  a frame pyarrow itself cannot store is no test of ours
        return
    _only_edgeperf_errors(lambda: datasets.read(path))


@FUZZ
@given(st.binary(max_size=300))
def test_parquet_bytes_raise_only_edgeperf_errors(tmp_path, data):
    path = tmp_path / "b.parquet"
    path.write_bytes(data)
    _only_edgeperf_errors(lambda: datasets.read(path))


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.text(max_size=5), st.dictionaries(
                     st.sampled_from(["kind", "cpu_cores", "memory_mb", "batch_size", "extra", "name", "zzz"]),
                     json_values, max_size=3), max_size=3).map(lambda v: json.dumps(v).encode())))
def test_sidecar_raises_only_edgeperf_errors(tmp_path, data):
    path = tmp_path / "x.csv.devices.json"
    path.write_bytes(data)
    _only_edgeperf_errors(lambda: datasets.read_devices_json(path))


@FUZZ
@given(st.binary(max_size=300))
def test_rowwriter_files_raise_only_edgeperf_errors(tmp_path, data):
    path = tmp_path / "r.csv"
    path.write_bytes(data)

    def open_and_close():
        RowWriter(path).close()
    _only_edgeperf_errors(open_and_close)
    _only_edgeperf_errors(lambda: datasets.read(path))


def test_deeply_nested_ofa_json_is_an_architecture_error():
    from edgeperf.errors import ArchitectureError

    with pytest.raises(ArchitectureError):
        spaces.get("ofa_mbv3").parse("[" * 2000 + "]" * 2000)
    with pytest.raises(ArchitectureError):
        spaces.get("ofa_mbv3").parse('{"d":[' + "9" * 4400 + '],"e":[],"ks":[],"r":224}')
