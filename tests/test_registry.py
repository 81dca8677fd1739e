"""The one registry class behind every plug-in family."""

import pytest

import edgeperf as ep
from edgeperf.errors import UnknownNameError
from edgeperf.registry import Registry


class _Base:
    name = ""


def test_bare_decorator_uses_the_class_attribute_and_named_one_sets_it():
    reg = Registry("widget", base=_Base)

    @reg.register
    class A(_Base):
        name = "a"

    @reg.register("b")
    class B(_Base):
        pass

    assert reg.names() == ["a", "b"] and B.name == "b"
    assert reg.cls("a") is A and isinstance(reg.create("b"), B)
    assert "a" in reg and len(reg) == 2 and dict(reg) == {"a": A, "b": B}


def test_refusals_say_what_was_expected():
    reg = Registry("widget", base=_Base)
    with pytest.raises(TypeError, match="subclass of _Base"):
        reg.register("x")(object)
    with pytest.raises(ValueError, match="has no name"):
        reg.register(type("Nameless", (_Base,), {}))
    reg.register(type("First", (_Base,), {"name": "taken"}))
    with pytest.raises(ValueError, match="already registered by First"):
        reg.register(type("Second", (_Base,), {"name": "taken"}))
    with pytest.raises(UnknownNameError, match="unknown widget 'takn'; expected one of: taken"):
        reg.cls("takn")


def test_every_family_uses_it():
    from edgeperf.bespoke import donors
    from edgeperf.optimize import objectives, optimizers
    from edgeperf.predictors import adapt
    from edgeperf.profilers import energy

    families = {
        "search space": ep.spaces.names, "profiler": ep.profilers.names, "energy meter": energy.names,
        "adapt strategy": adapt.names, "objective": objectives.names, "optimizer": optimizers.names,
        "donor": donors.names,
    }
    for kind, names in families.items():
        registry = names.__self__
        assert isinstance(registry, Registry) and registry.kind == kind
        assert names() == sorted(names()) and len(names()) >= 2
