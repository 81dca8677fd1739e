"""Search spaces: strings, encodings, sampling, torch models, ONNX export, analytic costs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeperf import spaces
from edgeperf.errors import ArchitectureError, EdgePerfError
from edgeperf.spaces import _fbnet, _nasbench201, _ofa_mbv3

SPACE_NAMES = ("nasbench201", "fbnet", "ofa_mbv3")
#: Architectures per space that must build, run and export (the brief asks for 50).
N_BUILD = 50
BUILD_SEED = 2024
N_COST_CHECK = 4
N_ORT_CHECK = 2
#: Images pushed through in train mode so BN statistics depend on the data (see _calibrate).
CALIBRATION_BATCH = 4


# ---- strategies -------------------------------------------------------------------------------
nb201_parsed = st.tuples(*[st.sampled_from(_nasbench201.OPS)] * len(_nasbench201.EDGES))
fbnet_parsed = st.tuples(*[st.sampled_from(_fbnet.OPS)] * _fbnet.N_LAYERS)
ofa_parsed = st.tuples(
    st.tuples(*[st.sampled_from(_ofa_mbv3.DEPTHS)] * _ofa_mbv3.N_STAGES),
    st.tuples(*[st.sampled_from(_ofa_mbv3.EXPANDS)] * _ofa_mbv3.N_LAYERS),
    st.tuples(*[st.sampled_from(_ofa_mbv3.KERNELS)] * _ofa_mbv3.N_LAYERS),
    st.sampled_from(_ofa_mbv3.RESOLUTIONS),
)
PARSED = {"nasbench201": nb201_parsed, "fbnet": fbnet_parsed, "ofa_mbv3": ofa_parsed}


# ---- strings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACE_NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_parse_canonical_round_trip(name, data):
    sp = spaces.get(name)
    parsed = data.draw(PARSED[name])
    text = sp.to_string(parsed)
    assert sp.parse(text) == parsed
    assert sp.canonical(text) == text
    assert sp.canonical(sp.canonical(text)) == text
    assert sp.is_valid(text)


@settings(max_examples=30, deadline=None)
@given(parsed=ofa_parsed)
def test_ofa_non_canonical_json_spelling_canonicalises(parsed):
    sp = spaces.get("ofa_mbv3")
    d, e, ks, r = parsed
    loose = json.dumps({"r": r, "ks": list(ks), "e": list(e), "d": list(d)}, indent=1)  # other key order, spaces
    assert sp.canonical(loose) == sp.to_string(parsed)


NB201_GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
FBNET_GOOD = "-".join(["k3_e1"] * 11 + ["skip"] * 11)
OFA_GOOD = spaces.get("ofa_mbv3").sample(1, seed=0)[0]


def _ofa_mutate(**changes):
    data = json.loads(OFA_GOOD)
    data.update(changes)
    return json.dumps(data)


BAD_ARCHS = [
    ("nasbench201", NB201_GOOD.replace("nor_conv_3x3~0|+", "conv_5x5~0|+", 1), "conv_5x5"),
    ("nasbench201", NB201_GOOD.replace("|avg_pool_3x3~1|", "|"), "expected 2 edges"),
    ("nasbench201", NB201_GOOD.replace("+", "-"), "'+'"),
    ("nasbench201", NB201_GOOD.replace("~1", ":1"), "op~1"),
    ("nasbench201", NB201_GOOD.replace("skip_connect~2", "skip_connect~1"), "op~2"),
    ("nasbench201", "", "'+'"),
    ("fbnet", FBNET_GOOD.replace("k3_e1", "k7_e1", 1), "k7_e1"),
    ("fbnet", "-".join(["k3_e1"] * 21), "got 21"),
    ("fbnet", FBNET_GOOD.replace("-", ","), "got 1"),
    ("ofa_mbv3", OFA_GOOD[:-1], "expected JSON"),
    ("ofa_mbv3", "not json", "expected JSON"),
    ("ofa_mbv3", _ofa_mutate(r=130), "'r'"),
    ("ofa_mbv3", _ofa_mutate(r=256), "'r'"),
    ("ofa_mbv3", _ofa_mutate(d=[2, 3, 4, 5, 2]), "value 5"),
    ("ofa_mbv3", _ofa_mutate(ks=[3] * 19), "list of 20"),
    ("ofa_mbv3", _ofa_mutate(e=[True] * 20), "value True"),
    ("ofa_mbv3", json.dumps({"d": [2] * 5, "e": [3] * 20, "ks": [3] * 20}), "keys"),
]


@pytest.mark.parametrize("name,arch,needle", BAD_ARCHS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_ARCHS)])
def test_invalid_strings_raise_helpful_architecture_error(name, arch, needle):
    sp = spaces.get(name)
    with pytest.raises(ArchitectureError) as info:
        sp.parse(arch)
    assert needle in str(info.value)
    assert not sp.is_valid(arch)
    with pytest.raises(ArchitectureError, match="#1"):
        sp.validate([sp.sample(1, seed=0)[0], arch])


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_non_string_is_rejected(name):
    with pytest.raises(ArchitectureError, match="got int"):
        spaces.get(name).parse(42)


@settings(max_examples=40, deadline=None)
@given(parsed=nb201_parsed, position=st.integers(0, 5), junk=st.sampled_from(["conv", "zero", "nor_conv_5x5", ""]))
def test_nb201_wrong_op_always_named(parsed, position, junk):
    ops = list(parsed)
    ops[position] = junk
    text = spaces.get("nasbench201").to_string(tuple(ops))
    with pytest.raises(ArchitectureError, match="unknown operation"):
        spaces.get("nasbench201").parse(text)


# ---- encodings and sampling -------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_encoding_has_declared_dims_and_names(name):
    sp = spaces.get(name)
    assert sp.encodings[0] == "onehot" and "structural" in sp.encodings
    archs = sp.sample(7, seed=1)
    for enc in sp.encodings:
        x = sp.encode(archs, enc)
        assert x.dtype == np.float32 and x.shape == (7, sp.encoding_dim(enc))
        assert np.isfinite(x).all()
        names = sp.feature_names(enc)
        assert len(names) == sp.encoding_dim(enc) and len(set(names)) == len(names)
        assert sp.encode(archs[0], enc).shape == (sp.encoding_dim(enc),)
    # the default is onehot, and the two encodings differ in size
    assert sp.encode(archs).shape == (7, sp.encoding_dim("onehot"))
    assert sp.encoding_dim("structural") != sp.encoding_dim("onehot")


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_structural_encoding_tracks_costs(name):
    sp = spaces.get(name)
    archs = sp.sample(20, seed=5)
    x = sp.encode(archs, "structural")
    names = sp.feature_names("structural")
    col = names.index("total:log1p_mmacs")
    macs = np.array([sp.costs(a).macs for a in archs])
    # the total-MACs column is a monotone transform of the analytic MACs
    assert np.array_equal(np.argsort(x[:, col], kind="stable"), np.argsort(np.log1p(macs / 1e6).astype(np.float32), kind="stable"))
    assert len({row.tobytes() for row in x}) > 1


def test_structural_nb201_edges():
    sp = spaces.get("nasbench201")
    names = sp.feature_names("structural")
    conv = sp.encode("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", "structural")
    skip = sp.encode("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "structural")
    edge_cols = [i for i, n in enumerate(names) if n.startswith("edge")]
    assert (skip[edge_cols] == 0).all()  # identity edges cost nothing
    assert (conv[edge_cols] > 0).all()
    assert conv[names.index("total:log1p_mmacs")] > skip[names.index("total:log1p_mmacs")]


def test_structural_ofa_inactive_layers_are_zero():
    sp = spaces.get("ofa_mbv3")
    arch = sp.to_string(((2, 2, 2, 2, 2), (6,) * 20, (7,) * 20, 224))
    v = sp.encode(arch, "structural")
    names = sp.feature_names("structural")
    for i in range(_ofa_mbv3.N_LAYERS):
        cols = [names.index(f"layer{i}:{f}") for f in ("log1p_mmacs", "log1p_kparams", "log1p_kbytes")]
        active = i % _ofa_mbv3.MAX_DEPTH < 2
        assert (v[cols] > 0).all() if active else (v[cols] == 0).all()
    assert v[names.index("resolution")] == 1.0


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sampling_is_reproducible(name):
    sp = spaces.get(name)
    a = sp.sample(25, seed=7)
    assert a == sp.sample(25, seed=7)
    assert a != sp.sample(25, seed=8)
    assert all(sp.is_valid(x) and sp.canonical(x) == x for x in a)


def test_nb201_enumerates_all_15625_unique_cells():
    sp = spaces.get("nasbench201")
    cells = list(sp.enumerate())
    assert len(cells) == 15_625 == sp.size
    assert len(set(cells)) == 15_625
    assert all(sp.canonical(c) == c for c in cells[:: 97])


# ---- models, ONNX, costs ----------------------------------------------------------------------
def _build_cases():
    cases = []
    for name in SPACE_NAMES:
        for i, arch in enumerate(spaces.get(name).sample(N_BUILD, seed=BUILD_SEED)):
            cases.append(pytest.param(name, arch, id=f"{name}-{i}-{arch[:60]}"))
    return cases


def _count(module, shape):
    """MACs of Conv2d/Linear layers (forward hooks) and trainable parameters of ``module``."""
    import torch

    macs = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            macs[0] += out[0].numel() * (mod.in_channels // mod.groups) * k
        else:
            macs[0] += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        module(torch.zeros(shape))
    for h in handles:
        h.remove()
    return macs[0], sum(p.numel() for p in module.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name,arch", _build_cases())
def test_sampled_arch_builds_runs_and_exports(name, arch, tmp_path):
    import onnx
    import torch

    from edgeperf.spaces._export import export_module_onnx

    sp = spaces.get(name)
    module = sp.build_module(arch)
    assert not module.training
    shape = sp.input_shape(arch, batch_size=1)
    with torch.no_grad():
        out = module(torch.randn(shape))
    n_classes = {"nasbench201": 10, "fbnet": 100, "ofa_mbv3": 1000}[name]
    assert out.shape == (1, n_classes) and torch.isfinite(out).all()
    path = export_module_onnx(module, shape, tmp_path / "m.onnx")  # reuse the module: export is the slow part
    assert path.is_file() and not list(tmp_path.glob("*.data"))  # weights embedded, single file
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == shape


def test_space_export_onnx_writes_one_file(tmp_path):
    import onnx

    sp = spaces.get("nasbench201")
    path = sp.export_onnx(NB201_GOOD, tmp_path / "sub" / "nb.onnx", batch_size=2)
    assert path == tmp_path / "sub" / "nb.onnx" and sorted(p.name for p in path.parent.iterdir()) == ["nb.onnx"]
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 32, 32]


def test_input_shapes():
    assert spaces.get("nasbench201").input_shape(NB201_GOOD, batch_size=4) == (4, 3, 32, 32)
    assert spaces.get("fbnet").input_shape(FBNET_GOOD) == (1, 3, 32, 32)
    r = json.loads(OFA_GOOD)["r"]
    assert spaces.get("ofa_mbv3").input_shape(OFA_GOOD, batch_size=2) == (2, 3, r, r)
    with pytest.raises(ArchitectureError):
        spaces.get("fbnet").input_shape("k3_e1")
    with pytest.raises(ArchitectureError):
        spaces.get("ofa_mbv3").build_module("{}")


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_analytic_costs_match_counted_torch_module(name):
    sp = spaces.get(name)
    archs = sp.sample(N_COST_CHECK, seed=11)
    if name == "ofa_mbv3":  # include the extremes: smallest and largest subnet
        archs += [sp.to_string(((2,) * 5, (3,) * 20, (3,) * 20, 128)), sp.to_string(((4,) * 5, (6,) * 20, (7,) * 20, 224))]
    for arch in archs:
        macs, params = _count(sp.build_module(arch), sp.input_shape(arch))
        cost = sp.costs(arch)
        assert cost.macs == pytest.approx(macs, rel=1e-9), arch
        assert cost.params == pytest.approx(params, rel=1e-9), arch
        assert cost.mem_bytes > 0


def test_fbnet_skip_layers_follow_shapes():
    import torch

    sp = spaces.get("fbnet")
    all_skip = "-".join(["skip"] * _fbnet.N_LAYERS)
    module = sp.build_module(all_skip)
    # identity where shapes match, a 1x1 conv where channels or stride change (one per stage but the first)
    convs = [m for m in module.blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    changes = sum(1 for c_in, c_out, s in _fbnet.layer_plan() if c_in != c_out or s != 1)
    assert len(convs) == changes == len(_fbnet.STAGE_CHANNELS) - 1


def _calibrate(module, shape, seed):
    """Give BN layers data-dependent statistics so outputs differ between inputs."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    module.train()
    with torch.no_grad():
        module(torch.randn((CALIBRATION_BATCH, *shape[1:]), generator=g))
    module.eval()


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_onnxruntime_output_matches_torch(name, tmp_path):
    import onnxruntime as ort
    import torch

    from edgeperf.spaces._export import export_module_onnx

    sp = spaces.get(name)
    for k, arch in enumerate(sp.sample(N_ORT_CHECK, seed=3)):
        torch.manual_seed(k)
        module = sp.build_module(arch)
        shape = sp.input_shape(arch)
        _calibrate(module, shape, seed=k)
        path = export_module_onnx(module, shape, tmp_path / f"m{k}.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        outs = []
        for s in range(2):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + s))
            with torch.no_grad():
                ref = module(x).numpy()
            got = sess.run(["output"], {"input": x.numpy()})[0]
            np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max()))
            outs.append(ref)
        assert not np.allclose(outs[0], outs[1])  # the comparison is not trivially constant


def test_export_rejects_bad_shape(tmp_path):
    import torch

    from edgeperf.spaces._export import export_module_onnx

    with pytest.raises(EdgePerfError, match="positive input shape"):
        export_module_onnx(torch.nn.Identity(), (1, 0, 3), tmp_path / "x.onnx")


@pytest.mark.parametrize("name", ["nasbench201", "fbnet", "ofa_mbv3"])
def test_vectorised_costs_of_onehot_rows_equal_the_analytic_costs(name):
    space = spaces.get(name)
    archs = space.sample(40, seed=11)
    from_strings = space.cost_matrix(archs)
    from_onehot = space.cost_matrix(space.encode(archs, "onehot"))
    np.testing.assert_array_equal(from_onehot, from_strings)
    assert from_strings[:, 0].min() > 0 and np.unique(from_strings[:, 0]).size > 1
    with pytest.raises(ArchitectureError):
        space.cost_matrix(np.zeros((2, 3)))
