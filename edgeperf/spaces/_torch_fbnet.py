"""Torch model of an FBNet-space network, CIFAR-100 variant of HW-NAS-Bench.

Layout from HW-NAS-Bench's FBNet cost model (``fbnet_get_metrics``): stem ConvNorm 3->16
k3 s1 on 32x32, 7 stages with channels (16, 24, 32, 64, 112, 184, 352), layer counts
(1, 4, 4, 4, 4, 4, 1) and strides (1, 1, 2, 2, 1, 2, 1) on the stage's first layer, header
ConvNorm 1x1 352->1504, global average pooling, linear 1504->100.
Blocks follow the same group's ``ConvBlock``/``Skip`` definitions: 1x1 (grouped) expand-BN-ReLU,
channel shuffle when grouped, KxK depthwise-BN-ReLU, 1x1 (grouped) project-BN, residual add
when shapes match; ``skip`` is an identity when shapes match, else a 1x1 conv-BN-ReLU with the
layer's stride (the layer cannot vanish, the shapes must still change).
"""

from __future__ import annotations

from torch import nn

from edgeperf.spaces._fbnet import HEADER_CHANNELS, NUM_CLASSES, STAGE_CHANNELS, STEM_CHANNELS, layer_plan, parse_op, same_padding


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        g = self.groups
        return x.view(n, g, c // g, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int, groups: int):
        super().__init__()
        mid = c_in * expansion
        self.residual = c_in == c_out and stride == 1
        self.expand = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False, groups=groups), nn.BatchNorm2d(mid), nn.ReLU(inplace=True)
        )
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride=stride, padding=same_padding(kernel, stride), groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False, groups=groups), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return out + x if self.residual else out


def skip_layer(c_in: int, c_out: int, stride: int) -> nn.Module:
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FBNetNetwork(nn.Module):
    def __init__(self, ops: tuple[str, ...], num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True)
        )
        blocks = []
        for op, (c_in, c_out, stride) in zip(ops, layer_plan()):
            spec = parse_op(op)
            blocks.append(skip_layer(c_in, c_out, stride) if spec is None else ConvBlock(c_in, c_out, spec[0], spec[1], stride, spec[2]))
        self.blocks = nn.Sequential(*blocks)
        self.header = nn.Sequential(
            nn.Conv2d(STAGE_CHANNELS[-1], HEADER_CHANNELS, 1, bias=False), nn.BatchNorm2d(HEADER_CHANNELS), nn.ReLU(inplace=True)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEADER_CHANNELS, num_classes)

    def forward(self, x):
        x = self.pool(self.header(self.blocks(self.stem(x))))
        return self.classifier(x.flatten(1))
