"""Predictors trained on generic graph features take ONNX files and torch modules."""

import numpy as np
import pytest

import edgeperf as ep
from edgeperf import spaces

N_TRAIN = 16


@pytest.fixture(scope="module")
def graph_predictor():
    table = ep.datasets.load("help-nb201").select(devices=["gold_6240"])
    archs = table.archs[:N_TRAIN]
    small = table.select(archs=archs)
    return ep.predictors.PerDevicePredictor(model="ridge", encoding="graph").fit(small), archs


def test_onnx_file_and_torch_module_predict_like_the_arch_string(graph_predictor, tmp_path):
    p, archs = graph_predictor
    space = spaces.get("nasbench201")
    arch = space.sample(1, seed=123)[0]
    from_string = p.predict(arch, device="gold_6240")
    onnx_path = space.export_onnx(arch, tmp_path / "m.onnx")
    from_onnx = p.predict(str(onnx_path), device="gold_6240")
    from_module = p.predict(space.build_module(arch), device="gold_6240", input_shape=space.input_shape(arch))
    with pytest.raises(ep.errors.InvalidParameterError, match="input_shape"):
        p.predict(space.build_module(arch), device="gold_6240")  # no silent 32x32
    assert isinstance(from_onnx, float) and from_onnx > 0
    assert from_onnx == pytest.approx(from_string, rel=1e-5)
    assert from_module == pytest.approx(from_string, rel=1e-5)


def test_graph_predictor_separates_small_and_large_cells(graph_predictor):
    p, _ = graph_predictor
    light = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    heavy = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert p.predict(heavy, device="gold_6240") > p.predict(light, device="gold_6240")
    assert np.isfinite(p.predict([light, heavy], device="gold_6240")).all()
