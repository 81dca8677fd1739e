"""The name -> class registry shared by the objective and optimizer families."""

from __future__ import annotations

from edgeperf.errors import UnknownNameError

__all__ = ["Registry"]


class Registry:
    """``register(name)`` decorator, ``names()``, ``get(name, **params)`` for one plug-in family."""

    def __init__(self, kind: str):
        self.kind = kind
        self.classes: dict[str, type] = {}

    def register(self, name: str):
        """Class decorator: make a subclass available under ``name`` (sets ``cls.name``)."""

        def deco(cls):
            cls.name = name
            self.classes[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        """Registered names."""
        return sorted(self.classes)

    def get(self, name: str, **params):
        """A new instance of the class registered as ``name``."""
        if name not in self.classes:
            raise UnknownNameError(self.kind, name, self.classes)
        return self.classes[name](**params)
