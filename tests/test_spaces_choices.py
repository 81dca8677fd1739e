"""Contract C4: ``space.choices``, ``to_choices``, ``from_choices`` and ``sample(unique=True)``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeperf import spaces
from edgeperf.errors import ArchitectureError, InvalidParameterError

SPACE_NAMES = ("nasbench201", "fbnet", "ofa_mbv3")


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_choices_shape(name):
    space = spaces.get(name)
    decisions = space.choices
    assert isinstance(decisions, tuple) and decisions
    names = [d for d, _ in decisions]
    assert len(set(names)) == len(names)
    for decision, options in decisions:
        assert isinstance(decision, str) and isinstance(options, tuple) and len(options) >= 2
        assert len(set(options)) == len(options)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_round_trip_of_samples(name):
    space = spaces.get(name)
    for arch in space.sample(30, seed=5):
        idx = space.to_choices(arch)
        assert all(isinstance(i, int) for i in idx)
        assert space.from_choices(idx) == arch
        assert space.from_choices(np.array(idx)) == arch  # numpy integers are indices too


@pytest.mark.parametrize("name", SPACE_NAMES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_index_tuple_is_a_valid_architecture(name, data):
    space = spaces.get(name)
    idx = tuple(data.draw(st.integers(0, len(opts) - 1)) for _, opts in space.choices)
    arch = space.from_choices(idx)
    assert space.canonical(arch) == arch
    assert space.to_choices(arch) == idx


def test_nasbench201_choices_follow_the_string_order():
    space = spaces.get("nasbench201")
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    ops = [opts[i] for (_, opts), i in zip(space.choices, space.to_choices(arch))]
    assert ops == ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    assert [d for d, _ in space.choices][:3] == ["edge1<-0", "edge2<-0", "edge2<-1"]


def test_nasbench201_choices_span_the_whole_space():
    space = spaces.get("nasbench201")
    sizes = [len(o) for _, o in space.choices]
    made = {space.from_choices(i) for i in itertools.product(*map(range, sizes))}
    assert made == set(space.enumerate())


def test_ofa_choices_fields():
    space = spaces.get("ofa_mbv3")
    arch = space.sample(1, seed=2)[0]
    d, e, ks, r = space.parse(arch)
    values = [opts[i] for (_, opts), i in zip(space.choices, space.to_choices(arch))]
    assert values == [*d, *e, *ks, r]


@pytest.mark.parametrize("name", SPACE_NAMES)
@pytest.mark.parametrize("bad", [[], "abc", None, 3])
def test_from_choices_wrong_length_or_type(name, bad):
    with pytest.raises(ArchitectureError, match="option indices"):
        spaces.get(name).from_choices(bad)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_from_choices_out_of_range_names_the_decision(name):
    space = spaces.get(name)
    idx = list(space.to_choices(space.sample(1, seed=0)[0]))
    for bad in (len(space.choices[-1][1]), -1, 1.0, True):
        idx[-1] = bad
        with pytest.raises(ArchitectureError, match=space.choices[-1][0]):
            space.from_choices(idx)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sample_unique_never_repeats_and_is_reproducible(name):
    space = spaces.get(name)
    a = space.sample(200, seed=11, unique=True)
    assert len(a) == len(set(a)) == 200
    assert a == space.sample(200, seed=11, unique=True)
    assert space.sample(7, seed=3) == space.sample(7, seed=3, unique=False)


def test_sample_unique_can_take_the_whole_finite_space():
    space = spaces.get("nasbench201")
    every = space.sample(space.size, seed=0, unique=True)
    assert sorted(every) == sorted(space.enumerate())
    with pytest.raises(InvalidParameterError, match="only 15625"):
        space.sample(space.size + 1, seed=0, unique=True)


def test_plain_sample_repeats_in_a_tiny_draw_budget():
    # Without unique=True, 500 draws from 15,625 cells repeat with probability ~0.9997: this
    # shows the test above is not vacuous.
    space = spaces.get("nasbench201")
    draws = [space.sample(500, seed=s) for s in range(3)]
    assert any(len(set(d)) < 500 for d in draws)


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True])
def test_sample_rejects_bad_counts(bad):
    with pytest.raises(InvalidParameterError):
        spaces.get("fbnet").sample(bad, seed=0)
