"""Search spaces: parse, canonicalize, encode, sample and build architectures.

>>> from edgeperf import spaces
>>> nb = spaces.get("nasbench201")
>>> nb.encode(nb.sample(3, seed=0)).shape
(3, 30)
"""

from __future__ import annotations

from edgeperf.registry import Registry
from edgeperf.spaces._base import SearchSpace
from edgeperf.spaces._costs import COST_COLUMNS, MACS_SCALE, MEM_BYTES_SCALE, PARAMS_SCALE
from edgeperf.spaces._export import export_module_onnx

__all__ = ["SearchSpace", "get", "names", "register", "detect", "COST_COLUMNS", "MACS_SCALE", "PARAMS_SCALE",
           "MEM_BYTES_SCALE", "export_module_onnx"]

_REGISTRY = Registry("search space", base=SearchSpace)
_INSTANCES: dict[str, SearchSpace] = {}
#: Class decorator: make a :class:`SearchSpace` subclass available under ``cls.name``.
register = _REGISTRY.register
#: Registered space names.
names = _REGISTRY.names


def get(name: str | SearchSpace) -> SearchSpace:
    """The space registered as ``name`` (a space instance is returned as is)."""
    if isinstance(name, SearchSpace):
        return name
    if name not in _INSTANCES:
        _INSTANCES[name] = _REGISTRY.create(name)
    return _INSTANCES[name]


def detect(archs) -> str:
    """Name of the one space every string of ``archs`` parses in (tries the first few)."""
    from edgeperf.errors import ArchitectureError

    sample = [a for a, _ in zip(archs, range(20))]
    fits = [n for n in names() if sample and all(get(n).is_valid(a) for a in sample)]
    if len(fits) != 1:
        shown = sample[0] if sample else "<no architectures>"
        raise ArchitectureError(
            f"cannot tell the search space of architectures like {shown!r}: "
            f"{'none' if not fits else ' and '.join(fits)} of {names()} accept them; pass space=... explicitly"
        )
    return fits[0]


# Built-in spaces register themselves on import.
from edgeperf.spaces import _nasbench201, _fbnet, _ofa_mbv3  # noqa: E402,F401
