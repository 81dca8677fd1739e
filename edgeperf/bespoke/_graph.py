"""Blocks of a torch model: torch.fx tracing, cut points and single-input single-output sub-networks.

A *cut point* is a node every path from the model input to its output passes through. Between two
consecutive cut points lies a *segment*; a *block* is a run of consecutive segments, so it has one
input tensor (the first cut point) and one output tensor (the last one) and can be swapped for any
module mapping the one to the other. Segments are found by a depth-first search forward from each
cut point that stops at the next cut point (the paper's modified DFS); a block is kept when it holds
a convolution or a linear layer.

Cut points inside a layer (between a conv and its batch norm) would give thousands of tiny blocks,
so by default only cut points at *unit* boundaries are kept: a unit is the outermost module of a
node that is not a pure container (an ``nn.Sequential``/``nn.ModuleList`` of composite modules),
e.g. ``features.3`` of a MobileNetV2 or ``_blocks.7`` of an EfficientNet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from edgeperf.errors import BespokeError, UntraceableModelError

__all__ = [
    "Block",
    "BlockGraph",
    "trace",
    "cut_points",
    "enumerate_blocks",
    "tap",
]

#: Default number of consecutive units one block may span.
DEFAULT_MAX_UNITS = 2


def _is_weighted(module) -> bool:
    import torch.nn as nn

    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))


def _tracer_class():
    import torch.fx as fx
    import torch.nn as nn

    class _LeafConvTracer(fx.Tracer):
        """Keeps every Conv/Linear/BatchNorm (and subclasses, e.g. static-"same"-padding convs) one
        node, so pruning can swap the module and shapes are read off one call."""

        def is_leaf_module(self, m, qualname):
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
                return True
            return super().is_leaf_module(m, qualname)

    return _LeafConvTracer


def trace(model, example_input=None):
    """``torch.fx.GraphModule`` of ``model`` (shapes annotated when ``example_input`` is given).

    Raises :class:`UntraceableModelError` for data-dependent control flow, several inputs or
    anything else symbolic tracing cannot follow.
    """
    import torch
    import torch.fx as fx
    from torch.fx.passes.shape_prop import ShapeProp

    if not isinstance(model, torch.nn.Module):
        raise UntraceableModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, fx.GraphModule):
        gm = model
    else:
        try:
            graph = _tracer_class()().trace(model)
        except Exception as exc:  # fx raises TraceError, TypeError, RuntimeError... on dynamic code
            raise UntraceableModelError(
                f"torch.fx could not trace {type(model).__name__}: {type(exc).__name__}: {exc}. Bespoke needs a "
                "model without data-dependent control flow (no `if x.sum() > 0`, no loops over tensor values); "
                "wrap or rewrite that part, or mark the offending submodule as a leaf"
            ) from None
        gm = fx.GraphModule(model, graph, class_name=type(model).__name__ + "Traced")
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UntraceableModelError(
            f"expected a model with exactly one tensor input, {type(model).__name__} has {len(placeholders)} "
            f"({[p.name for p in placeholders]})"
        )
    if example_input is not None:
        was_training = gm.training
        gm.eval()
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(example_input)
        except Exception as exc:
            raise UntraceableModelError(
                f"the traced {type(model).__name__} failed on an input of shape {tuple(example_input.shape)}: {exc}"
            ) from None
        finally:
            gm.train(was_training)
    return gm


def _data_nodes(gm) -> list:
    """Nodes on some input -> output path, in topological order (constants and dead code left out)."""
    nodes = list(gm.graph.nodes)
    (ph,) = [n for n in nodes if n.op == "placeholder"]
    out = next(n for n in nodes if n.op == "output")
    reach = {ph}
    for n in nodes:
        if n is not ph and any(a in reach for a in n.all_input_nodes):
            reach.add(n)
    back = {out}
    for n in reversed(nodes):
        if any(u in back for u in n.users):
            back.add(n)
    return [n for n in nodes if n in reach and n in back and n.op != "output"]


def cut_points(gm) -> list:
    """Every node all input -> output paths pass through, in topological order.

    A sweep over the topological order: node ``v`` is a cut point exactly when no data edge jumps
    over it (from a node before ``v`` to one after it): any path must step on ``v`` to get past it.
    """
    nodes = _data_nodes(gm)
    pos = {n: i for i, n in enumerate(nodes)}
    last = len(nodes)  # the output node's position
    reach_max = -1  # furthest position any edge from an earlier node goes to
    cuts = []
    for i, n in enumerate(nodes):
        if reach_max <= i:
            cuts.append(n)
        far = max((pos[u] if u in pos else last for u in n.users if u in pos or u.op == "output"), default=i)
        reach_max = max(reach_max, far)
    return cuts


def _owner_unit(node, root) -> str:
    """The unit a node belongs to: its outermost non-container module, else the node itself.

    ``root`` is the traced model itself (a ``GraphModule`` keeps only the leaves' types)."""
    import torch.nn as nn

    stack = node.meta.get("nn_module_stack") or {}
    for key, value in stack.items():
        path = value[0] if isinstance(value, tuple) else key
        try:
            module = root.get_submodule(path)
        except AttributeError:
            continue
        children = list(module.children())
        container = isinstance(module, (nn.Sequential, nn.ModuleList)) and children and all(
            list(c.children()) for c in children
        )
        if not container:
            return path
    if node.op == "call_module":
        return str(node.target)
    return node.name


def _segment_dfs(start, stop: set) -> list:
    """Nodes reached forward from ``start`` without passing a node of ``stop`` (stop nodes included)."""
    seen, stack = set(), [start]
    while stack:
        n = stack.pop()
        for u in n.users:
            if u.op == "output" or u in seen:
                continue
            seen.add(u)
            if u not in stop:
                stack.append(u)
    return list(seen)


@dataclass(frozen=True)
class Block:
    """A single-input single-output sub-network of a traced model, between cut points ``start`` and
    ``end`` (indices into :attr:`BlockGraph.cuts`). Shapes are per sample: ``(C, H, W)``."""

    start: int
    end: int
    input_node: str
    output_node: str
    nodes: tuple[str, ...]
    units: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weighted: int  # conv / linear layers inside
    params: int

    @property
    def key(self) -> str:
        return f"b{self.start}-{self.end}"

    @property
    def downsample(self) -> tuple[float, ...]:
        """Spatial down-sampling factor per axis (``H_in / H_out``, ...); empty for flat tensors."""
        return tuple(a / b for a, b in zip(self.in_shape[1:], self.out_shape[1:]))

    def overlaps(self, other: "Block") -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Block":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _shape(node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise BespokeError(f"node {node.name} has no tensor shape: trace with an example input")
    return tuple(int(s) for s in meta.shape[1:])


class BlockGraph:
    """A traced model with its kept cut points and segments; builds :class:`Block`s and sub-modules.

    Parameters
    ----------
    model:
        A torch module (traced here) or a ``GraphModule``.
    example_input:
        One input batch; its shapes annotate every node.
    granularity:
        ``"unit"`` (default): cut points at unit boundaries only; ``"node"``: every cut point.
    """

    def __init__(self, model, example_input, *, granularity: str = "unit"):
        if granularity not in ("unit", "node"):
            raise BespokeError(f"expected granularity 'unit' or 'node', got {granularity!r}")
        self.gm = trace(model, example_input)
        self.root = model
        self.granularity = granularity
        nodes = _data_nodes(self.gm)
        cuts = cut_points(self.gm)
        if granularity == "unit":
            order = {n: i for i, n in enumerate(nodes)}
            kept = []
            for c in cuts:
                i = order[c]
                nxt = nodes[i + 1] if i + 1 < len(nodes) else None
                if c.op == "placeholder" or nxt is None or _owner_unit(c, model) != _owner_unit(nxt, model):
                    kept.append(c)
            cuts = kept
        self.cuts = cuts
        stop = set(cuts)
        self.segments = [_segment_dfs(c, stop) for c in cuts[:-1]]
        order = {n: i for i, n in enumerate(self.gm.graph.nodes)}
        self.segments = [sorted(s, key=order.__getitem__) for s in self.segments]
        self._node_order = order

    @property
    def output_cut(self) -> int:
        return len(self.cuts) - 1

    def block(self, start: int, end: int) -> Block:
        if not 0 <= start < end <= self.output_cut:
            raise BespokeError(f"expected 0 <= start < end <= {self.output_cut}, got {start}, {end}")
        nodes = [n for seg in self.segments[start:end] for n in seg]
        modules = [self.gm.get_submodule(n.target) for n in nodes if n.op == "call_module"]
        units = tuple(dict.fromkeys(_owner_unit(n, self.root) for n in nodes))
        return Block(
            start=start,
            end=end,
            input_node=self.cuts[start].name,
            output_node=self.cuts[end].name,
            nodes=tuple(n.name for n in nodes),
            units=units,
            in_shape=_shape(self.cuts[start]),
            out_shape=_shape(self.cuts[end]),
            weighted=sum(_is_weighted(m) for m in modules),
            params=sum(p.numel() for m in modules for p in m.parameters()),
        )

    def blocks(self, *, max_units: int = DEFAULT_MAX_UNITS, include_head: bool = False) -> list[Block]:
        """Every block of 1..``max_units`` consecutive segments holding a conv or linear layer.

        ``include_head=False`` leaves out blocks ending at the model output (the classifier), whose
        replacement would change what the logits mean.
        """
        if max_units < 1:
            raise BespokeError(f"expected max_units >= 1, got {max_units}")
        found = []
        for start in range(self.output_cut):
            for end in range(start + 1, min(start + max_units, self.output_cut) + 1):
                if end == self.output_cut and not include_head:
                    continue
                b = self.block(start, end)
                if b.weighted:
                    found.append(b)
        return found

    def submodule(self, start: int, end: int):
        """A ``GraphModule`` computing cut ``end`` from cut ``start`` (shares the model's modules)."""
        import torch.fx as fx

        src = self.cuts[start]
        nodes = [n for seg in self.segments[start:end] for n in seg]
        graph = fx.Graph()
        env = {src: graph.placeholder("x")}
        inside = set(nodes)

        def lookup(n):
            if n in env:
                return env[n]
            if n.op == "get_attr":  # a constant of the model: copy it in
                env[n] = graph.node_copy(n, lookup)
                return env[n]
            if n not in inside:
                raise BespokeError(f"node {n.name} feeds the block from outside its input: not a cut point")
            raise BespokeError(f"node {n.name} is used before it is computed")

        for n in nodes:
            env[n] = graph.node_copy(n, lookup)
        graph.output(env[self.cuts[end]])
        return fx.GraphModule(self.gm, graph, class_name=f"Block_{start}_{end}")

    def multi_output(self, cut_indices: Sequence[int]):
        """A ``GraphModule`` returning the activations at ``cut_indices`` (and the logits, last)."""
        import torch.fx as fx

        graph = fx.Graph()
        env: dict = {}
        for n in self.gm.graph.nodes:
            if n.op == "output":
                logits = env[n.args[0]]
                continue
            env[n] = graph.node_copy(n, lambda a: env[a])
        graph.output(tuple(env[self.cuts[i]] for i in cut_indices) + (logits,))
        return fx.GraphModule(self.gm, graph, class_name="CutActivations")

    @staticmethod
    def replaced_target(block: Block) -> str:
        """Name of the submodule that replaces ``block`` in :meth:`replaced`'s result."""
        return f"bespoke_{block.key.replace('-', '_')}"

    def replaced(self, replacements: Sequence[tuple[Block, object]]):
        """A new ``GraphModule``: the model with each block swapped for its module.

        The blocks must not overlap. The result references the model's own modules (deep-copy it
        before training it).
        """
        import torch.fx as fx

        chosen = sorted(replacements, key=lambda r: r[0].start)
        for (a, _), (b, _) in zip(chosen, chosen[1:]):
            if a.overlaps(b):
                raise BespokeError(f"blocks {a.key} and {b.key} overlap: a student replaces disjoint blocks")
        by_output = {b.output_node: (i, b) for i, (b, _) in enumerate(chosen)}
        dropped = {name for b, _ in chosen for name in b.nodes}
        names = {n.name: n for n in self.gm.graph.nodes}
        root: dict = {}
        graph = fx.Graph()
        env: dict = {}
        for n in self.gm.graph.nodes:
            if n.name in by_output:
                i, b = by_output[n.name]
                target = self.replaced_target(b)
                root[target] = chosen[i][1]
                env[n] = graph.call_module(target, (env[names[b.input_node]],))
                continue
            if n.name in dropped:
                continue
            if n.op == "call_module" or n.op == "get_attr":
                root[n.target] = _get_attr(self.gm, n.target)
            env[n] = graph.node_copy(n, lambda a: env[a])
        graph.lint()
        return fx.GraphModule(root, graph, class_name="Student")


def tap(gm, node_names: Sequence[str]):
    """A ``GraphModule`` sharing ``gm``'s modules that returns the outputs of the named nodes and,
    last, ``gm``'s output: intermediate activations for feature distillation."""
    import torch.fx as fx

    graph = fx.Graph()
    env: dict = {}
    named = {}
    for n in gm.graph.nodes:
        if n.op == "output":
            out = env[n.args[0]]
            continue
        env[n] = graph.node_copy(n, lambda a: env[a])
        named[n.name] = env[n]
    missing = [k for k in node_names if k not in named]
    if missing:
        raise BespokeError(f"no node named {missing} in the model")
    graph.output(tuple(named[k] for k in node_names) + (out,))
    return fx.GraphModule(gm, graph, class_name="Tapped")


def _get_attr(module, target: str):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
