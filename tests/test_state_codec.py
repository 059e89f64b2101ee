"""The state codec twins (the snapshot's CBOR): the same bytes and errors as ``cbor_dumps``."""

from __future__ import annotations

from collections import OrderedDict
from enum import IntEnum
from types import ModuleType
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TWIN_IDS, both_twins, twin
from rivetkit.errors import EncodeError
from rivetkit.protocol.values import MAX_DEPTH, cbor_dumps, cbor_loads, encode_json_compat
from rivetkit.runtime import _state_codec_py


@pytest.fixture(params=TWIN_IDS)
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """The state codec twin under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_state_codec", _state_codec_py)


class Level(IntEnum):
    HIGH = 3


class Text(str):
    pass


VALUES: list[Any] = [
    None,
    {"n": 0, "payload": "x" * 64},
    {"big": 1 << 60, "neg": -(1 << 53), "edge": (1 << 53) - 1, "f": 1.5, "b": True},
    {"tag": ["$BigInt", "1"], "not_a_tag": ["$x", 1, 2], "plain": ["a", "$b"]},
    {"bytes": b"\x00\xff", "set": {1, 2}, "tuple": (1, ["$y", 2]), "undef": cbor2.undefined},
    OrderedDict(a=1, b=[Level.HIGH, Text("$t")]),
    [[[["deep"]]]],
    {1: "int keys stay", "nested": {"list": [{"x": [1 << 70]}]}},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_same_bytes_as_cbor_dumps(codec: ModuleType, value: Any) -> None:
    assert codec.encode_json_compat(value) == encode_json_compat(value)
    encoded = codec.encode_state(value)
    assert encoded == cbor_dumps(value)
    assert cbor_loads(encoded) == cbor_loads(cbor_dumps(value))


def test_depth_limit_and_errors(codec: ModuleType) -> None:
    ok: Any = "leaf"
    for _ in range(MAX_DEPTH):
        ok = [ok]
    assert codec.encode_state(ok) == cbor_dumps(ok)
    with pytest.raises(EncodeError):
        codec.encode_state([ok])
    nested: Any = {}
    for _ in range(MAX_DEPTH + 1):
        nested = {"k": nested}
    with pytest.raises(EncodeError):
        codec.encode_state(nested)
    with pytest.raises(EncodeError):
        codec.encode_state({"f": object()})  # not CBOR-serializable
    with pytest.raises(EncodeError):
        codec.encode_state({"huge": 10**5000})  # beyond int-to-str's digit limit


@pytest.mark.parametrize(
    "value",
    [{"s": "\ud800"}, ["$x", "\udfff"], {"deep": [[[{"k": "\ud800"}]]]}],
    ids=["surrogate", "tag-pair", "nested"],
)
def test_cbor2_errors_take_the_full_road(codec: ModuleType, value: Any) -> None:
    """Plain data cbor2 cannot encode (a lone surrogate) fails as ``cbor_dumps`` does."""
    with pytest.raises(EncodeError) as raised:
        codec.encode_state(value)
    with pytest.raises(EncodeError) as expected:
        cbor_dumps(value)
    assert str(raised.value) == str(expected.value)


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=6)
        | st.sampled_from(["$", "$BigInt", "$$x", "$Set"]),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)
        ),
        max_leaves=15,
    )
)
def test_plain_data_same_bytes(value: Any) -> None:
    """Dicts and lists of scalars (the compiled twin's fast road): the bytes of ``cbor_dumps``."""
    expected = cbor_dumps(value)
    for codec in both_twins("_state_codec", _state_codec_py):
        assert codec.encode_state(value) == expected


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(value))
    except EncodeError as exc:
        return ("error", type(exc).__name__)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["$", "$BigInt", "$$x", "$Set"])
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
        | st.frozensets(st.integers(-3, 3), max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=json_like)
def test_twins_agree(value: Any) -> None:
    py, cy = both_twins("_state_codec", _state_codec_py)
    assert _outcome(py.encode_state, value) == _outcome(cy.encode_state, value)
    assert _outcome(py.encode_json_compat, value) == _outcome(cy.encode_json_compat, value)
