"""Torch model of a NAS-Bench-201 cell network (CIFAR), following Dong & Yang's ``TinyNetwork``
with ``InferCell``: stem conv3x3+BN, 3 stages x 5 cells (C = 16, 32, 64) with ResNet basic
reduction blocks between stages, then BN-ReLU-global avgpool-linear. Imported only when a
module is built (torch is heavy)."""

from __future__ import annotations

import torch
from torch import nn

from edgeperf.spaces._nasbench201 import CELLS_PER_STAGE, STAGE_CHANNELS


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: NAS-Bench-201 multiplies by 0 (the edge still runs)."""

    def forward(self, x):
        return x.mul(0.0)


def _op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise KeyError(name)


class InferCell(nn.Module):
    def __init__(self, ops: tuple[str, ...], edges, channels: int):
        super().__init__()
        self.edges = list(edges)
        self.layers = nn.ModuleList(_op(op, channels) for op in ops)

    def forward(self, x):
        nodes = [x]
        for target in (1, 2, 3):
            node = None
            for k, (t, s) in enumerate(self.edges):
                if t == target:
                    out = self.layers[k](nodes[s])
                    node = out if node is None else node + out
            nodes.append(node)
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """Stride-2 reduction between stages (NAS-Bench-201 ``ResNetBasicblock``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, ops: tuple[str, ...], edges, num_classes: int):
        super().__init__()
        c0 = STAGE_CHANNELS[0]
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, padding=1, bias=False), nn.BatchNorm2d(c0))
        cells: list[nn.Module] = []
        for stage, c in enumerate(STAGE_CHANNELS):
            if stage > 0:
                cells.append(ResNetBasicBlock(STAGE_CHANNELS[stage - 1], c))
            cells += [InferCell(ops, edges, c) for _ in range(CELLS_PER_STAGE)]
        self.cells = nn.Sequential(*cells)
        c_last = STAGE_CHANNELS[-1]
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_last), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)

    def forward(self, x):
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.global_pooling(x), 1))
