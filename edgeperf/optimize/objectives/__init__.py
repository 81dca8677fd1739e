"""Objectives: accuracy tables, the built-in NAS-Bench-201 CIFAR-10 accuracies, zero-cost
proxies and plain MACs (the last resort).

>>> from edgeperf.optimize import objectives
>>> objectives.names()
['accuracy', 'macs', 'naswot', 'nb201-cifar10', 'nb201-cifar10-int8', 'snip', 'synflow']
>>> objectives.make("macs").kind
'macs'
"""

from __future__ import annotations

from edgeperf.errors import InvalidParameterError, UnknownNameError
from edgeperf.registry import Registry
from edgeperf.optimize.objectives._base import Objective

__all__ = ["Objective", "register", "get", "names", "make", "SPEC_HELP"]

_REGISTRY = Registry("objective", base=Objective)
#: Class decorator: make an :class:`Objective` subclass available under ``name``.
register = _REGISTRY.register
names = _REGISTRY.names
#: A new instance of the class registered as ``name``, built with ``params``.
get = _REGISTRY.create

#: What ``make`` (and the CLI's ``--objective``) accepts.
SPEC_HELP = "accuracy:FILE | nb201-cifar10 | nb201-cifar10-int8 | proxy:naswot|synflow|snip | macs"


def make(spec) -> Objective:
    """An objective from an instance, a mapping/Series arch -> accuracy, or a spec string
    (:data:`SPEC_HELP`)."""
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        if hasattr(spec, "items"):  # dict or pandas Series
            return get("accuracy", table=spec)
        raise InvalidParameterError(f"expected an objective ({SPEC_HELP}), got {type(spec).__name__}")
    kind, sep, arg = spec.partition(":")
    if kind == "accuracy":
        if not arg:
            raise InvalidParameterError(f"expected accuracy:FILE (a tidy file with metric accuracy_top1), got {spec!r}")
        return get("accuracy", table=arg)
    if kind == "proxy":
        proxies = [n for n, c in _REGISTRY.items() if c.kind == "proxy"]
        if arg not in proxies:
            raise UnknownNameError("zero-cost proxy", arg, proxies)
        return get(arg)
    if sep:
        raise InvalidParameterError(f"expected an objective like {SPEC_HELP}, got {spec!r}")
    return get(spec)


# Built-in objectives register themselves on import (torch and the data load lazily).
from edgeperf.optimize.objectives import _analog, _macs, _proxies, _table  # noqa: E402,F401
