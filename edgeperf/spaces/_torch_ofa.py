"""Torch model of an Once-for-All MobileNetV3 subnet (``ofa_mbv3_d234_e346_k357_w1.0``), built
directly as the static network OFA's ``get_active_subnet`` would return: first conv 3->16 s2
h-swish, MBConv 16->16 (k3, e1, relu, residual), 5 stages (widths 24/40/80/112/160, strides
2/2/2/1/2, relu/relu/h-swish x3, SE in stages 1, 3, 4 0-based) keeping the first ``d[i]`` of 4
layers, final 1x1 160->960 h-swish, global pooling, 1x1 960->1280 h-swish (no BN), classifier."""

from __future__ import annotations

from torch import nn

from edgeperf.spaces._ofa_mbv3 import (
    FEATURE_MIX_CHANNELS, FINAL_EXPAND_CHANNELS, FIRST_BLOCK_KERNEL, FIRST_CONV_CHANNELS, FIRST_CONV_STRIDE,
    SE_REDUCTION, STAGE_WIDTHS, layer_plan, make_divisible,
)


def _act(name: str) -> nn.Module:
    return nn.Hardswish() if name == "h_swish" else nn.ReLU(inplace=True)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        mid = make_divisible(channels // SE_REDUCTION)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=True), nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1, bias=True), nn.Hardsigmoid()
        )

    def forward(self, x):
        return x * self.fc(x.mean(3, keepdim=True).mean(2, keepdim=True))


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, expand: int, stride: int, act: str, se: bool):
        super().__init__()
        mid = make_divisible(round(c_in * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), _act(act)]
        layers += [nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), _act(act)]
        if se:
            layers.append(SqueezeExcite(mid))
        layers += [nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.conv(x)
        return out + x if self.residual else out


class OFAMobileNetV3Network(nn.Module):
    def __init__(self, parsed, num_classes: int):
        super().__init__()
        c0 = FIRST_CONV_CHANNELS
        self.first_conv = nn.Sequential(
            nn.Conv2d(3, c0, 3, stride=FIRST_CONV_STRIDE, padding=1, bias=False), nn.BatchNorm2d(c0), nn.Hardswish()
        )
        blocks = [MBConv(c0, c0, FIRST_BLOCK_KERNEL, 1, 1, "relu", False)]
        for spec in layer_plan(parsed):
            if spec["active"]:
                blocks.append(MBConv(spec["c_in"], spec["c_out"], spec["kernel"], spec["expand"], spec["stride"], spec["act"], spec["se"]))
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = nn.Sequential(
            nn.Conv2d(STAGE_WIDTHS[-1], FINAL_EXPAND_CHANNELS, 1, bias=False), nn.BatchNorm2d(FINAL_EXPAND_CHANNELS), nn.Hardswish()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix = nn.Sequential(nn.Conv2d(FINAL_EXPAND_CHANNELS, FEATURE_MIX_CHANNELS, 1, bias=False), nn.Hardswish())
        self.classifier = nn.Linear(FEATURE_MIX_CHANNELS, num_classes)

    def forward(self, x):
        x = self.feature_mix(self.pool(self.final_expand(self.blocks(self.first_conv(x)))))
        return self.classifier(x.flatten(1))
