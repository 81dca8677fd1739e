"""Generic ONNX graph features."""

from __future__ import annotations

import numpy as np
import pytest

from edgeperf import features, spaces
from edgeperf.errors import EdgePerfError, ModelFileError

F = features.FEATURE_NAMES
CONV_IN, CONV_OUT, KERNEL, SIZE, N_CLASSES = 3, 8, 3, 8, 10


def _tiny_module():
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(CONV_IN, CONV_OUT, KERNEL, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(CONV_OUT * SIZE * SIZE, N_CLASSES),
    )


def _get(v, name):
    return float(v[F.index(name)])


def test_feature_names_are_unique_and_cover_vocabulary():
    assert len(F) == len(set(F))
    assert len(features.OP_VOCABULARY) >= 30
    for op in (*features.OP_VOCABULARY, features.OTHER):
        for field in features.PER_OP_FIELDS:
            assert f"op:{op}:{field}" in F


def test_torch_features_count_a_known_model():
    v = features.torch_features(_tiny_module(), (1, CONV_IN, SIZE, SIZE))
    assert v.dtype == np.float32 and v.shape == (len(F),)
    conv_macs = CONV_OUT * SIZE * SIZE * CONV_IN * KERNEL * KERNEL
    fc_macs = CONV_OUT * SIZE * SIZE * N_CLASSES
    assert _get(v, "op:Conv:count") == 1 and _get(v, "op:Relu:count") == 1 and _get(v, "op:Gemm:count") == 1
    assert _get(v, "op:Conv:mmacs") == pytest.approx(conv_macs / 1e6)
    assert _get(v, "op:Gemm:mmacs") == pytest.approx(fc_macs / 1e6)
    assert _get(v, "total:mmacs") == pytest.approx((conv_macs + fc_macs) / 1e6)
    params = CONV_OUT * CONV_IN * KERNEL * KERNEL + CONV_OUT + CONV_OUT * SIZE * SIZE * N_CLASSES + N_CLASSES
    assert _get(v, "total:mparams") == pytest.approx(params / 1e6)
    assert _get(v, "op:Relu:act_mbytes") == pytest.approx(CONV_OUT * SIZE * SIZE * 4 / 1e6)
    assert _get(v, "total:input_mbytes") == pytest.approx(CONV_IN * SIZE * SIZE * 4 / 1e6)
    assert _get(v, "total:output_mbytes") == pytest.approx(N_CLASSES * 4 / 1e6)


def test_path_bytes_and_proto_agree(tmp_path):
    import onnx

    from edgeperf.spaces._export import export_module_onnx

    path = export_module_onnx(_tiny_module(), (1, CONV_IN, SIZE, SIZE), tmp_path / "t.onnx")
    a = features.onnx_features(path)
    b = features.onnx_features(str(path))
    c = features.onnx_features(path.read_bytes())
    d = features.onnx_features(onnx.load(str(path)))
    for x in (b, c, d):
        np.testing.assert_array_equal(a, x)


def test_symbolic_batch_needs_input_shape(tmp_path):
    import warnings

    import torch

    path = tmp_path / "dyn.onnx"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _tiny_module(), (torch.zeros(1, CONV_IN, SIZE, SIZE),), str(path), dynamo=False, opset_version=17,
            input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    with pytest.raises(EdgePerfError, match="input_shape"):
        features.onnx_features(path)
    one = features.onnx_features(path, input_shape=(1, CONV_IN, SIZE, SIZE))
    four = features.onnx_features(path, input_shape=(4, CONV_IN, SIZE, SIZE))
    assert _get(four, "op:Conv:mmacs") == pytest.approx(4 * _get(one, "op:Conv:mmacs"))
    assert _get(four, "total:mparams") == _get(one, "total:mparams")  # weights do not scale with batch
    with pytest.raises(EdgePerfError, match="dims"):
        features.onnx_features(path, input_shape=(1, CONV_IN, SIZE))


def test_unknown_ops_land_in_other():
    import torch

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.erf(x).exp()

    v = features.torch_features(Odd(), (1, 4))
    assert _get(v, "op:other:count") == 2
    assert _get(v, "total:nodes") == 2


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        features.onnx_features(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model at all\xff" * 3)
    with pytest.raises(ModelFileError):
        features.onnx_features(bad)
    with pytest.raises(EdgePerfError, match="torch_features"):
        features.onnx_features(12)


@pytest.mark.parametrize("name", ["nasbench201", "fbnet", "ofa_mbv3"])
def test_arch_features_fixed_length_differ_and_agree_with_analytic_macs(name):
    sp = spaces.get(name)
    pool = sp.sample(10, seed=21)
    # two archs of different size (the first later one whose MACs differ from the first)
    archs = [pool[0], next(a for a in pool[1:] if sp.costs(a).macs != sp.costs(pool[0]).macs)]
    x = features.arch_features(name, archs)
    assert x.shape == (2, len(F)) and x.dtype == np.float32 and np.isfinite(x).all()
    assert not np.array_equal(x[0], x[1])
    for arch, row in zip(archs, x):
        # the ONNX graph MACs equal the analytic count (BN folding changes params, not MACs)
        assert _get(row, "total:mmacs") == pytest.approx(sp.costs(arch).macs / 1e6, rel=1e-6)
    one = features.arch_features(sp, archs[0])
    assert one.shape == (len(F),)
    np.testing.assert_allclose(one, x[0], rtol=1e-6)
