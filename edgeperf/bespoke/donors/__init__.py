"""Donor networks: pretrained models whose blocks a Bespoke house borrows (and teachers).

>>> from edgeperf.bespoke import donors
>>> donors.names()                                   # doctest: +SKIP
['efficientnet-lite0', 'efficientnet-lite1', 'efficientnet-lite2', 'mobilenet-v2']
>>> net = donors.get("mobilenet-v2")().build(resolution=128)   # doctest: +SKIP
"""

from __future__ import annotations

from edgeperf.bespoke.donors._base import Donor
from edgeperf.registry import Registry

__all__ = ["Donor", "register", "get", "names", "available"]

_REGISTRY = Registry("donor", base=Donor)
#: Class decorator: make a donor available under ``cls.name``.
register = _REGISTRY.register
#: Registered donor names.
names = _REGISTRY.names
#: The donor class registered as ``name``.
get = _REGISTRY.cls


def available() -> list[str]:
    """Names of the donors whose weights are installed here."""
    return [n for n in names() if _REGISTRY[n].availability() is None]


# Built-in donors register themselves; torch and the weight packages load on first build().
from edgeperf.bespoke.donors import _efficientnet_lite, _mobilenet_v2  # noqa: E402,F401
