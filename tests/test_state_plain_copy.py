"""``plain_copy`` (an actor's constant state, vars, conn_state per new actor) is ``deepcopy``.

Hypothesis builds plain data (and some that is not: tuples, sets, subclasses, shared and cyclic
containers); the copy must equal ``copy.deepcopy``'s in value, types, sharing and independence.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rivetkit import actor
from rivetkit.runtime.plain_copy import plain_copy

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
)
_keys = st.one_of(
    st.text(max_size=4), st.integers(), st.booleans(), st.none(), st.binary(max_size=3)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
        st.tuples(inner, inner),
        st.frozensets(st.integers(), max_size=3),
        st.builds(OrderedDict, st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    ),
    max_leaves=20,
)


def _shape(value: Any, seen: dict[int, int]) -> Any:
    """Value, exact types and sharing structure (which containers are the same object)."""
    kind = type(value)
    if kind in (dict, OrderedDict, list, tuple, frozenset):
        if id(value) in seen:
            return ("shared", seen[id(value)])
        seen[id(value)] = len(seen)
        if kind in (dict, OrderedDict):
            items = [(_shape(k, seen), _shape(v, seen)) for k, v in value.items()]
        elif kind is frozenset:
            items = sorted(value)
        else:
            items = [_shape(v, seen) for v in value]
        return (kind.__name__, items)
    return (kind.__name__, value)


def _containers(value: Any, out: set[int]) -> set[int]:
    if type(value) in (dict, OrderedDict, list):
        out.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            _containers(item, out)
    return out


@given(_values)
def test_plain_copy_is_deepcopy(value: Any) -> None:
    copied = plain_copy(value)
    expected = copy.deepcopy(value)
    assert _shape(copied, {}) == _shape(expected, {})
    # Independent: no mutable container of the original is in the copy.
    assert not _containers(value, set()) & _containers(copied, set())


@given(st.dictionaries(st.text(max_size=4), _scalars, max_size=6))
def test_flat_dict_is_a_new_equal_dict(value: dict[str, Any]) -> None:
    copied = plain_copy(value)
    assert copied == value and copied is not value and type(copied) is dict
    assert list(copied) == list(value)


def test_shared_and_cyclic_containers_keep_deepcopys_sharing() -> None:
    inner: list[Any] = [1]
    shared = {"a": inner, "b": inner}
    copied = plain_copy(shared)
    assert copied["a"] is copied["b"] and copied["a"] is not inner
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    again = plain_copy(cyclic)
    assert again[1] is again and again is not cyclic


def test_deep_nesting_goes_to_deepcopy() -> None:
    value: Any = 0
    for _ in range(100):
        value = [value]
    assert plain_copy(value) == copy.deepcopy(value)


def test_definition_copies_are_independent() -> None:
    definition = actor("plain-copy", state={"items": [], "n": 0}, vars={"cache": {}})
    first, second = definition.new_state_value(), definition.new_state_value()
    first["items"].append(1)
    assert second == {"items": [], "n": 0}
    assert definition.new_state_value() == {"items": [], "n": 0}
    assert definition.new_vars_value() == {"cache": {}}
