"""The registry of adaptation strategies (name -> class)."""

from __future__ import annotations

from edgeperf.errors import UnknownNameError

__all__ = ["register", "get", "names"]

_STRATEGIES: dict = {}


def register(name: str):
    """Class decorator: register an :class:`AdaptStrategy` subclass under ``name``."""

    def deco(cls):
        from edgeperf.predictors.adapt._base import AdaptStrategy

        if not (isinstance(cls, type) and issubclass(cls, AdaptStrategy)):
            raise TypeError(f"register({name!r}) expects an AdaptStrategy subclass, got {cls!r}")
        if name in _STRATEGIES and _STRATEGIES[name] is not cls:
            raise ValueError(f"adapt strategy {name!r} is already registered by {_STRATEGIES[name].__qualname__}")
        cls.name = name
        _STRATEGIES[name] = cls
        return cls

    return deco


def get(name: str):
    """The strategy class registered as ``name`` (:class:`UnknownNameError` otherwise)."""
    if not isinstance(name, str) or name not in _STRATEGIES:
        raise UnknownNameError("adapt strategy", str(name), _STRATEGIES)
    return _STRATEGIES[name]


def names() -> tuple[str, ...]:
    """Registered strategy names, in registration order."""
    return tuple(_STRATEGIES)
