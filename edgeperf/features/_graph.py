"""Fixed-length features of any ONNX graph: per op type counts, MACs, parameters and output
activation memory, plus whole-graph totals. Shapes come from ``onnx.shape_inference``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeperf.errors import EdgePerfError, ModelFileError

#: Op types with their own columns; everything else is pooled into ``other``.
OP_VOCABULARY = (
    "Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization",
    "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax",
    "Add", "Sub", "Mul", "Div",
    "Concat", "Split", "Slice", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
    "AveragePool", "MaxPool", "GlobalAveragePool", "ReduceMean",
    "Pad", "Resize", "Gather", "Shape", "Identity",
)
OTHER = "other"
#: Per op type columns (units in the names).
PER_OP_FIELDS = ("count", "mmacs", "mparams", "act_mbytes")
TOTAL_FIELDS = (
    "total:nodes", "total:mmacs", "total:mflops", "total:mparams", "total:param_mbytes", "total:act_mbytes",
    "total:peak_act_mbytes", "total:input_mbytes", "total:output_mbytes",
    "total:depthwise_conv_count", "total:depthwise_mmacs", "total:pointwise_conv_count", "total:pointwise_mmacs",
)
FEATURE_NAMES: list[str] = [
    f"op:{op}:{field}" for op in (*OP_VOCABULARY, OTHER) for field in PER_OP_FIELDS
] + list(TOTAL_FIELDS)

MEGA = 1e6
#: ONNX ops that hold no computation: left out of counts (they are data).
_DATA_OPS = {"Constant"}
#: Ops whose MACs we count (everything else: 1 FLOP per output element, 0 MACs).
_MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def _load(model):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(model))
        except Exception as exc:  # protobuf raises its own DecodeError
            raise ModelFileError(f"expected serialised ONNX model bytes, could not decode them ({exc})") from None
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ModelFileError(f"expected an ONNX file, {path} does not exist")
        try:
            return onnx.load(str(path))
        except Exception as exc:
            raise ModelFileError(f"file {path}: expected an ONNX model, could not parse it ({exc}); re-export it") from None
    raise EdgePerfError(
        f"expected an ONNX path, bytes or onnx.ModelProto, got {type(model).__name__}; "
        "use torch_features() for a torch module"
    )


def _dims(type_proto) -> list[int] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return dims


def _itemsize(elem_type: int) -> int:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except Exception:  # undefined/unusual element types: count as float32
        return 4


def onnx_features(model, input_shape=None) -> np.ndarray:
    """Feature vector (float32, ``len(FEATURE_NAMES)``) of an ONNX model.

    ``model``: a path, serialised bytes or an ``onnx.ModelProto``. ``input_shape`` fixes the
    shape of the (first, non-initializer) graph input when it has symbolic dimensions.
    MACs are counted for Conv, ConvTranspose, Gemm and MatMul; other ops count one FLOP per
    output element; parameters are the elements of float initializers (and float Constant
    tensors) the node consumes, each counted once; activation memory is output tensor bytes.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    proto = onnx.ModelProto()
    proto.CopyFrom(_load(model))
    graph = proto.graph
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if input_shape is not None:
        if not inputs:
            raise EdgePerfError("input_shape was given but the ONNX graph has no runtime input")
        dims = inputs[0].type.tensor_type.shape.dim
        shape = [int(s) for s in input_shape]
        if len(dims) != len(shape):
            raise EdgePerfError(
                f"input_shape {tuple(shape)} has {len(shape)} dims but graph input {inputs[0].name!r} has {len(dims)}"
            )
        for d, s in zip(dims, shape):
            d.Clear()
            d.dim_value = s
    try:
        proto = shape_inference.infer_shapes(proto)
    except Exception as exc:
        raise ModelFileError(f"ONNX shape inference failed on this model ({exc}); check the model with onnx.checker") from None
    graph = proto.graph

    shapes: dict[str, list[int] | None] = {}
    itemsize: dict[str, int] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shapes[vi.name] = _dims(vi.type)
        itemsize[vi.name] = _itemsize(vi.type.tensor_type.elem_type)
    weights: dict[str, tuple[int, int]] = {}  # name -> (elements, bytes) of float tensors
    for t in graph.initializer:
        shapes[t.name] = list(t.dims)
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16):
            n = int(np.prod(t.dims)) if t.dims else 1
            weights[t.name] = (n, n * _itemsize(t.data_type))
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == onnx.TensorProto.FLOAT:
                    arr = numpy_helper.to_array(attr.t)
                    shapes[node.output[0]] = list(arr.shape)
                    weights[node.output[0]] = (arr.size, arr.nbytes)

    for i in inputs:
        if shapes.get(i.name) is None:
            raise EdgePerfError(
                f"graph input {i.name!r} has symbolic dimensions; pass input_shape=(N, C, H, W) to fix them"
            )

    def elements(name: str) -> int:
        s = shapes.get(name)
        return int(np.prod(s)) if s is not None else 0

    slot = {op: k for k, op in enumerate((*OP_VOCABULARY, OTHER))}
    per_op = np.zeros((len(slot), len(PER_OP_FIELDS)), dtype=np.float64)
    seen_weights: set[str] = set()
    flops = peak = dw_count = dw_macs = pw_count = pw_macs = 0.0
    n_nodes = 0
    for node in graph.node:
        if node.op_type in _DATA_OPS:
            continue
        n_nodes += 1
        out_elems = sum(elements(o) for o in node.output)
        out_bytes = sum(elements(o) * itemsize.get(o, 4) for o in node.output)
        macs = 0
        if node.op_type in _MAC_OPS and len(node.input) >= 2:
            w = shapes.get(node.input[1])
            a = shapes.get(node.input[0])
            if node.op_type == "Conv" and w is not None:
                macs = out_elems * int(np.prod(w[1:]))
                group = next((at.i for at in node.attribute if at.name == "group"), 1)
                if group > 1 and group == w[0] and w[1] == 1:
                    dw_count, dw_macs = dw_count + 1, dw_macs + macs
                elif all(k == 1 for k in w[2:]):
                    pw_count, pw_macs = pw_count + 1, pw_macs + macs
            elif node.op_type == "ConvTranspose" and w is not None and a is not None:
                macs = int(np.prod(a)) * int(np.prod(w[1:]))
            elif node.op_type == "Gemm" and a is not None:
                trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
                macs = out_elems * (a[0] if trans_a else a[-1])
            elif node.op_type == "MatMul" and a is not None:
                macs = out_elems * a[-1]
        params = param_bytes = 0
        for name in node.input:
            if name in weights and name not in seen_weights:
                seen_weights.add(name)
                params += weights[name][0]
                param_bytes += weights[name][1]
        k = slot.get(node.op_type, slot[OTHER])
        per_op[k] += (1, macs / MEGA, params / MEGA, out_bytes / MEGA)
        flops += 2 * macs if macs else out_elems
        peak = max(peak, out_bytes)

    total_params = sum(w[0] for w in weights.values())
    total_param_bytes = sum(w[1] for w in weights.values())
    input_bytes = sum(elements(i.name) * itemsize.get(i.name, 4) for i in inputs)
    output_bytes = sum(elements(o.name) * itemsize.get(o.name, 4) for o in graph.output)
    totals = [
        n_nodes, per_op[:, 1].sum(), flops / MEGA, total_params / MEGA, total_param_bytes / MEGA, per_op[:, 3].sum(),
        peak / MEGA, input_bytes / MEGA, output_bytes / MEGA, dw_count, dw_macs / MEGA, pw_count, pw_macs / MEGA,
    ]
    return np.concatenate([per_op.ravel(), np.asarray(totals, dtype=np.float64)]).astype(np.float32)


def torch_features(module, input_shape) -> np.ndarray:
    """Features of a torch module: exported to ONNX (legacy exporter) in a temporary folder first."""
    from edgeperf.spaces import export_module_onnx

    with tempfile.TemporaryDirectory(prefix="edgeperf-features-") as tmp:
        path = export_module_onnx(module, input_shape, Path(tmp) / "model.onnx")
        return onnx_features(path)


def arch_features(space, archs, *, batch_size: int = 1) -> np.ndarray:
    """Graph features ``(n, len(FEATURE_NAMES))`` of architectures of ``space`` (a name or a
    :class:`~edgeperf.spaces.SearchSpace`). Slow: each architecture is built in torch and
    exported to ONNX (about 0.2-0.7 s each on one CPU core)."""
    from edgeperf import spaces

    sp = spaces.get(space)
    canonical = sp.validate([archs] if isinstance(archs, str) else archs)
    rows = np.empty((len(canonical), len(FEATURE_NAMES)), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="edgeperf-features-") as tmp:
        for i, arch in enumerate(canonical):
            path = sp.export_onnx(arch, Path(tmp) / "model.onnx", batch_size=batch_size)
            rows[i] = onnx_features(path)
    return rows[0] if isinstance(archs, str) else rows
