"""The donor extension point: a pretrained network whose blocks can stand in for a teacher's.

A donor says how to build its network with pretrained weights from a local file (never a
download), what resolution it was trained at, and whether it can run here. Every donor module takes
RGB images in ``[0, 1]`` (N, 3, H, W) and normalises them itself, so teacher, donors and students
share one input format; it returns ImageNet logits (N, 1000).
"""

from __future__ import annotations

import abc
from typing import ClassVar

__all__ = ["Donor"]


class Donor(abc.ABC):
    """Abstract base class of every donor (and teacher) network."""

    #: Registry name, e.g. ``"mobilenet-v2"``.
    name: ClassVar[str] = ""
    #: The resolution the weights were trained at (side of a square image, pixels).
    native_resolution: ClassVar[int] = 224
    #: Licence of the weights and of the definition, as their packages state it.
    licence: ClassVar[str] = ""
    #: The pip distribution that ships the weights.
    weights_package: ClassVar[str] = ""

    @classmethod
    def availability(cls) -> str | None:
        """``None`` when the weights can be loaded here, else a sentence saying what to install."""
        return None

    @abc.abstractmethod
    def build(self, *, resolution: int | None = None):
        """The pretrained network in eval mode, for square inputs of ``resolution`` pixels (static
        padding is computed for it; default :attr:`native_resolution`)."""

    def describe(self) -> dict:
        return {
            "name": self.name,
            "native_resolution": self.native_resolution,
            "licence": self.licence,
            "weights_package": self.weights_package,
        }
