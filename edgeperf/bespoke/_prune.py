"""Structured channel pruning of a traced model (a teacher block, or a whole teacher).

A *prunable chain* is a conv (groups=1) whose output passes only through channel-wise layers (batch
norm, activations, depthwise convs) into exactly one other conv (groups=1): its channels can be cut
without touching anything outside the chain, e.g. the expansion channels of an inverted residual.
Channels are ranked by the L1 norm of the producing conv's filters (largest kept).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeperf.errors import BespokeError

__all__ = ["Chain", "prunable_chains", "prune", "keep_count", "uniform_prune"]

#: Functional activations a chain may pass through.
_CHANNELWISE_FUNCTIONS = {F.relu, F.relu6, F.silu, F.hardswish, F.gelu, torch.relu, torch.sigmoid}


@dataclass(frozen=True)
class Chain:
    producer: str
    passthrough: tuple[str, ...]  # module targets (batch norms, depthwise convs) to slice alike
    consumer: str
    channels: int


def _is_dense_conv(m) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == 1


def _is_depthwise(m) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels and m.groups > 1


def _is_activation(m) -> bool:
    return type(m).__module__ == "torch.nn.modules.activation"


def prunable_chains(gm) -> list[Chain]:
    """Every prunable chain of ``gm`` (a ``torch.fx.GraphModule``), in graph order."""
    chains = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not _is_dense_conv(gm.get_submodule(node.target)):
            continue
        cur, through = node, []
        while True:
            users = list(cur.users)
            if len(users) != 1:
                break
            (u,) = users
            if u.op == "call_module":
                m = gm.get_submodule(u.target)
                if _is_dense_conv(m):
                    chains.append(Chain(node.target, tuple(through), u.target, gm.get_submodule(node.target).out_channels))
                    break
                if isinstance(m, nn.BatchNorm2d) or _is_depthwise(m):
                    through.append(u.target)
                elif not _is_activation(m):
                    break
            elif not (u.op == "call_function" and u.target in _CHANNELWISE_FUNCTIONS):
                break
            cur = u
    return chains


def keep_count(channels: int, ratio: float) -> int:
    """Channels kept when a fraction ``ratio`` of ``channels`` is pruned (at least one)."""
    return max(1, int(round(channels * (1.0 - ratio))))


def _slice_out(m, idx):
    m = copy.deepcopy(m)
    if isinstance(m, nn.BatchNorm2d):
        m.weight = nn.Parameter(m.weight.data[idx].clone())
        m.bias = nn.Parameter(m.bias.data[idx].clone())
        m.running_mean = m.running_mean[idx].clone()
        m.running_var = m.running_var[idx].clone()
        m.num_features = len(idx)
        return m
    m.weight = nn.Parameter(m.weight.data[idx].clone())
    if m.bias is not None:
        m.bias = nn.Parameter(m.bias.data[idx].clone())
    m.out_channels = len(idx)
    if _is_depthwise_shape(m):
        m.in_channels = m.groups = len(idx)
    return m


def _is_depthwise_shape(m) -> bool:
    return m.groups > 1


def _slice_in(m, idx):
    m = copy.deepcopy(m)
    m.weight = nn.Parameter(m.weight.data[:, idx].clone())
    m.in_channels = len(idx)
    return m


def _set_submodule(root, target: str, module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def prune(gm, ratio: float):
    """A deep copy of ``gm`` with every prunable chain cut to ``1 - ratio`` of its channels."""
    if not 0.0 < ratio < 1.0:
        raise BespokeError(f"expected a pruning ratio in (0, 1), got {ratio}")
    chains = prunable_chains(gm)
    if not chains:
        raise BespokeError("the model has no prunable chain (conv -> channel-wise layers -> conv)")
    out = copy.deepcopy(gm)
    for chain in chains:
        producer = out.get_submodule(chain.producer)
        magnitude = producer.weight.detach().abs().flatten(1).sum(1)
        idx = torch.sort(torch.topk(magnitude, keep_count(chain.channels, ratio)).indices).values
        _set_submodule(out, chain.producer, _slice_out(producer, idx))
        for t in chain.passthrough:
            _set_submodule(out, t, _slice_out(out.get_submodule(t), idx))
        _set_submodule(out, chain.consumer, _slice_in(out.get_submodule(chain.consumer), idx))
    out.recompile()
    return out


def uniform_prune(model, ratio: float, example_input):
    """The uniform-pruning baseline: every prunable chain of the whole ``model`` cut by ``ratio``."""
    from edgeperf.bespoke._graph import trace

    return prune(trace(model, example_input), ratio).eval()
