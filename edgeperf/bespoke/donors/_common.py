"""Pieces every donor uses: input normalisation and safe weight loading."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeperf.errors import ModelFileError

__all__ = ["Normalize", "load_state_dict_file"]

#: torchvision's ImageNet statistics (MobileNetV2 was trained on them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict_file(path) -> dict:
    """A state dict from a ``.pth`` file with ``torch.load(weights_only=True)`` (no code executed)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise ModelFileError(f"file {path}: expected a torch state dict of tensors, could not load it ({exc})") from None
    if not isinstance(state, dict):
        raise ModelFileError(f"file {path}: expected a state dict, got {type(state).__name__}")
    return state


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so every network takes [0, 1] RGB images."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std
