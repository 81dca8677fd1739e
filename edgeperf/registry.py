"""One name -> class registry, shared by every plug-in family (spaces, profilers, energy meters,
adaptation strategies, objectives, optimizers, Bespoke donors).

>>> from edgeperf.registry import Registry
>>> shapes = Registry("shape")
>>> @shapes.register("square")
... class Square:
...     pass
>>> shapes.names(), shapes.cls("square").name
(['square'], 'square')
>>> shapes.cls("circle")
Traceback (most recent call last):
...
edgeperf.errors.UnknownNameError: unknown shape 'circle'; expected one of: square

A family keys its classes by one class attribute (``key``, default ``name``): a class that
already carries it registers with a bare ``@registry.register``; ``@registry.register("x")``
sets the attribute. The registry is a mapping name -> class, so tests can ``monkeypatch.setitem``
a fake into it.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from edgeperf.errors import UnknownNameError

__all__ = ["Registry"]


class Registry(MutableMapping):
    """The classes of one plug-in family, by name.

    Parameters
    ----------
    kind:
        What the family is called in error messages ("search space", "profiler", ...).
    key:
        The class attribute that holds a class's registered name.
    base:
        When given, only subclasses of it may register.
    """

    def __init__(self, kind: str, *, key: str = "name", base: type | None = None):
        self.kind = kind
        self.key = key
        self.base = base
        self._classes: dict[str, type] = {}

    def register(self, name_or_cls):
        """Class decorator: ``@register`` (name from the class's ``key`` attribute) or
        ``@register("name")`` (sets that attribute)."""
        if isinstance(name_or_cls, str):
            return lambda cls: self._add(name_or_cls, cls)
        return self._add(getattr(name_or_cls, self.key, None), name_or_cls)

    def _add(self, name, cls):
        if not isinstance(cls, type) or (self.base is not None and not issubclass(cls, self.base)):
            expected = self.base.__name__ if self.base is not None else "a class"
            raise TypeError(f"a {self.kind} must be a subclass of {expected}, got {cls!r}")
        if not name or not isinstance(name, str):
            raise ValueError(f"{cls.__name__} has no {self.key}: cannot register it as a {self.kind}")
        if self._classes.get(name, cls) is not cls:
            raise ValueError(f"{self.kind} {name!r} is already registered by {self._classes[name].__qualname__}")
        setattr(cls, self.key, name)
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)

    def cls(self, name: str) -> type:
        """The class registered as ``name`` (:class:`UnknownNameError` naming the choices otherwise)."""
        if not isinstance(name, str) or name not in self._classes:
            raise UnknownNameError(self.kind, str(name), self._classes)
        return self._classes[name]

    def create(self, name: str, **params):
        """A new instance of the class registered as ``name``, built with ``params``."""
        return self.cls(name)(**params)

    # Mapping protocol: name -> class.
    def __getitem__(self, name: str) -> type:
        return self._classes[name]

    def __setitem__(self, name: str, cls: type) -> None:
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
