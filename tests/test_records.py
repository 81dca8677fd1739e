"""Measurement and DeviceSpec value objects: validation and JSON round trips."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeperf.datasets import DeviceSpec, Measurement, MeasurementTable
from edgeperf.errors import DataValidationError

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(lambda s: s.strip())
pos_int = st.integers(min_value=1, max_value=4096)
freq = st.floats(min_value=1.0, max_value=5000.0, allow_nan=False)
json_val = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(
    name=names,
    kind=st.sampled_from([None, "cpu", "gpu", "phone"]),
    cores=st.none() | pos_int,
    freqs=st.none() | st.lists(freq, min_size=1, max_size=8).map(tuple),
    memory=st.none() | st.floats(min_value=1.0, max_value=1e6),
    batch=st.none() | pos_int,
    extra=st.dictionaries(st.text(max_size=8), json_val, max_size=3),
)
def test_device_spec_json_round_trip(name, kind, cores, freqs, memory, batch, extra):
    spec = DeviceSpec(name=name, kind=kind, cpu_cores=cores, cpu_max_freq_mhz=freqs, memory_mb=memory,
                      batch_size=batch, extra=extra)
    assert DeviceSpec.from_json(spec.to_json()) == spec
    assert DeviceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": " "}, "name"),
        ({"name": "d", "cpu_cores": 0}, "cpu_cores"),
        ({"name": "d", "batch_size": 2.5}, "batch_size"),
        ({"name": "d", "memory_mb": -1}, "memory_mb"),
        ({"name": "d", "cpu_max_freq_mhz": (2000, 0)}, "cpu_max_freq_mhz"),
        ({"name": "d", "extra": {"x": object()}}, "extra"),
    ],
)
def test_device_spec_rejects_bad_fields(kwargs, field):
    with pytest.raises(DataValidationError) as err:
        DeviceSpec(**kwargs)
    assert err.value.field == field and f"field {field!r}" in str(err.value)


def test_device_spec_from_bad_json():
    with pytest.raises(DataValidationError, match="unknown device fields"):
        DeviceSpec.from_dict({"name": "d", "gpu_model": "x"})
    with pytest.raises(DataValidationError, match="missing the device name"):
        DeviceSpec.from_dict({"kind": "cpu"})
    with pytest.raises(DataValidationError, match="expected a JSON object"):
        DeviceSpec.from_json("[1, 2]")
    with pytest.raises(DataValidationError, match="expected a JSON object"):
        DeviceSpec.from_json("{not json")


@settings(max_examples=60, deadline=None)
@given(
    value=st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False),
    device=names,
    threads=st.none() | pos_int,
    std=st.none() | st.floats(min_value=0, max_value=1e3),
)
def test_measurement_round_trip_through_dict_and_table(value, device, threads, std):
    m = Measurement("nasbench201", ARCH, device, "latency_ms", value, runtime="onnxruntime", threads=threads, std=std)
    assert Measurement(**json.loads(json.dumps(m.to_dict()))) == m
    back = MeasurementTable.from_records([m]).to_records()
    assert back == [m]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"value": -1}, "value"),
        ({"value": 0}, "value"),
        ({"value": math.nan}, "value"),
        ({"value": math.inf}, "value"),
        ({"value": "fast"}, "value"),
        ({"metric": "latency"}, "metric"),
        ({"device": ""}, "device"),
        ({"threads": 0}, "threads"),
        ({"std": -0.5}, "std"),
    ],
)
def test_measurement_rejects_bad_fields(kwargs, field):
    base = dict(space="nasbench201", arch=ARCH, device="d", metric="latency_ms", value=1.0)
    with pytest.raises(DataValidationError) as err:
        Measurement(**{**base, **kwargs})
    assert err.value.field == field
