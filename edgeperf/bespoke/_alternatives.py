"""Alternatives for a teacher block: donor sub-networks (with channel adaptation) and pruned copies.

Shape rules (:func:`compatible`): a donor block can stand in for a teacher block when both map
images to feature maps of the same rank and their spatial sizes agree at the input and at the
output (same feature level, hence the same down-sampling). Channel counts may differ:

- ``select``: where the alternative needs *fewer* channels than it is given, keep the channels of
  largest weight magnitude (a fixed gather): at the input, ranked by the L1 norm of the teacher
  block's first layer's weights on each channel; at the output, by the L1 norm of the donor's last
  conv's filters. Where it must *widen*, a 1x1 conv is the only option and is used.
- ``conv1x1``: a trainable 1x1 conv on each mismatched side, initialised to that same selection.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from edgeperf.bespoke._graph import Block, BlockGraph
from edgeperf.bespoke._prune import prune, prunable_chains
from edgeperf.errors import BespokeError

__all__ = ["Alternative", "ChannelAdapted", "compatible", "donor_alternatives", "pruned_alternatives", "CHANNEL_MODES"]

CHANNEL_MODES = ("select", "conv1x1")
#: Batch-norm momentum while an alternative is distilled: its statistics must move to the teacher's
#: activations within a few hundred steps (EfficientNet's own 0.01 would barely move).
DISTILL_BN_MOMENTUM = 0.1


@dataclass
class Alternative:
    """One candidate replacement of one teacher block; ``module`` maps its input to its output."""

    id: str
    block: str  # teacher block key
    kind: str  # "pruned" | "donor"
    source: str  # teacher or donor name
    source_block: tuple[int, int]  # (start, end) cut indices in the source's BlockGraph
    ratio: float | None = None  # pruned fraction of channels
    channel_mode: str | None = None  # "select" | "conv1x1" for donor blocks
    in_channels: tuple[int, int] | None = None  # (given, needed) at the input, donor blocks
    out_channels: tuple[int, int] | None = None  # (produced, needed) at the output
    params: int = 0
    module: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self.__class__(**{**self.__dict__, "module": None}))
        d.pop("module")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Alternative":
        d = dict(d)
        for k in ("source_block", "in_channels", "out_channels"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


def compatible(teacher_block: Block, donor_block: Block) -> bool:
    """Whether ``donor_block`` can replace ``teacher_block`` (channels aside): same rank, and the
    same spatial size at the input and at the output."""
    t_in, t_out, d_in, d_out = teacher_block.in_shape, teacher_block.out_shape, donor_block.in_shape, donor_block.out_shape
    if len(t_in) != len(d_in) or len(t_out) != len(d_out) or len(t_in) < 2 or len(t_out) < 2:
        return False
    return t_in[1:] == d_in[1:] and t_out[1:] == d_out[1:]


def _conv_nodes(gm) -> list:
    return [n for n in gm.graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.Conv2d)]


def input_channel_magnitude(block_gm) -> torch.Tensor | None:
    """L1 weight magnitude per input channel of the first convs reading the block input."""
    (ph,) = [n for n in block_gm.graph.nodes if n.op == "placeholder"]
    total = None
    for n in _conv_nodes(block_gm):
        if ph not in n.all_input_nodes:
            continue
        w = block_gm.get_submodule(n.target).weight.detach().abs()
        per = w.sum(dim=(0, 2, 3)) if w.shape[1] > 1 else w.flatten(1).sum(1)
        total = per if total is None else total + per
    return total


def output_channel_magnitude(block_gm, channels: int) -> torch.Tensor | None:
    """L1 norm per filter of the last conv with ``channels`` outputs (it writes the block output)."""
    convs = [block_gm.get_submodule(n.target) for n in _conv_nodes(block_gm)]
    convs = [c for c in convs if c.out_channels == channels]
    return convs[-1].weight.detach().abs().flatten(1).sum(1) if convs else None


def _top(magnitude: torch.Tensor | None, total: int, k: int) -> torch.Tensor:
    if magnitude is None or len(magnitude) != total:
        return torch.arange(k)
    return torch.sort(torch.topk(magnitude, k).indices).values


def _selection_conv(cin: int, cout: int, pick: torch.Tensor, *, widen: bool) -> nn.Conv2d:
    """A 1x1 conv initialised to a channel selection: output j copies input pick[j] (narrowing), or
    input i goes to output pick[i] (widening; the other outputs start at zero)."""
    conv = nn.Conv2d(cin, cout, 1, bias=True)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for j, i in enumerate(pick.tolist()):
            if widen:
                conv.weight[i, j, 0, 0] = 1.0
            else:
                conv.weight[j, i, 0, 0] = 1.0
    return conv


class _Gather(nn.Module):
    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.to(torch.long))

    def forward(self, x):
        return x.index_select(1, self.index)


class ChannelAdapted(nn.Module):
    """``out_adapt(body(in_adapt(x)))``: a donor block between a teacher block's channel counts."""

    def __init__(self, body: nn.Module, in_adapt: nn.Module, out_adapt: nn.Module):
        super().__init__()
        self.in_adapt, self.body, self.out_adapt = in_adapt, body, out_adapt

    def forward(self, x):
        return self.out_adapt(self.body(self.in_adapt(x)))


def _adapter(given: int, needed: int, mode: str, magnitude) -> nn.Module:
    if given == needed:
        return nn.Identity()
    if given > needed:  # narrowing: keep the `needed` channels of largest magnitude
        pick = _top(magnitude, given, needed)
        return _Gather(pick) if mode == "select" else _selection_conv(given, needed, pick, widen=False)
    pick = torch.arange(given)  # widening: the given channels start as the first ones
    return _selection_conv(given, needed, pick, widen=True)


def _set_bn_momentum(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = DISTILL_BN_MOMENTUM
    return module


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def donor_alternative(teacher: BlockGraph, block: Block, donor_name: str, donor: BlockGraph, donor_block: Block,
                      mode: str) -> Alternative:
    """The donor block adapted to the teacher block's channels (a fresh, trainable copy)."""
    if mode not in CHANNEL_MODES:
        raise BespokeError(f"expected a channel mode in {CHANNEL_MODES}, got {mode!r}")
    body = copy.deepcopy(donor.submodule(donor_block.start, donor_block.end))
    t_in, t_out, d_in, d_out = block.in_shape[0], block.out_shape[0], donor_block.in_shape[0], donor_block.out_shape[0]
    in_mag = input_channel_magnitude(teacher.submodule(block.start, block.end))
    out_mag = output_channel_magnitude(body, d_out)
    module = _set_bn_momentum(ChannelAdapted(body, _adapter(t_in, d_in, mode, in_mag), _adapter(d_out, t_out, mode, out_mag)))
    exact = t_in == d_in and t_out == d_out
    return Alternative(
        id=f"{block.key}/{donor_name}:{donor_block.key}" + ("" if exact else f"/{mode}"),
        block=block.key,
        kind="donor",
        source=donor_name,
        source_block=(donor_block.start, donor_block.end),
        channel_mode=None if exact else mode,
        in_channels=(t_in, d_in),
        out_channels=(d_out, t_out),
        params=_params(module),
        module=module,
    )


def donor_alternatives(teacher: BlockGraph, blocks: list[Block], donor_name: str, donor: BlockGraph, *,
                       max_units: int, per_block: int, modes=("select",)) -> list[Alternative]:
    """For each teacher block, up to ``per_block`` compatible donor blocks -- the lightest one (often
    shallower than the teacher block: a depth cut), then those closest in number of units -- in each
    channel mode."""
    donor_blocks = donor.blocks(max_units=max_units)
    out = []
    for b in blocks:
        fits = sorted((d for d in donor_blocks if compatible(b, d)), key=lambda d: d.params)
        picked = fits[:1] + sorted(fits[1:], key=lambda d: (abs(len(d.units) - len(b.units)), d.params))
        for d in picked[:per_block]:
            exact = d.in_shape[0] == b.in_shape[0] and d.out_shape[0] == b.out_shape[0]
            for mode in (modes[:1] if exact else modes):
                out.append(donor_alternative(teacher, b, donor_name, donor, d, mode))
    return out


def pruned_alternative(teacher: BlockGraph, block: Block, teacher_name: str, ratio: float) -> Alternative:
    module = _set_bn_momentum(prune(copy.deepcopy(teacher.submodule(block.start, block.end)), ratio))
    return Alternative(
        id=f"{block.key}/prune{ratio:.2f}",
        block=block.key,
        kind="pruned",
        source=teacher_name,
        source_block=(block.start, block.end),
        ratio=float(ratio),
        params=_params(module),
        module=module,
    )


def pruned_alternatives(teacher: BlockGraph, blocks: list[Block], teacher_name: str, ratios) -> list[Alternative]:
    """Channel-pruned copies of every teacher block that has a prunable chain, at each ratio."""
    out = []
    for b in blocks:
        if prunable_chains(teacher.submodule(b.start, b.end)):
            out.extend(pruned_alternative(teacher, b, teacher_name, r) for r in ratios)
    return out
