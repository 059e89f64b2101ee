"""RivetKit's serialized actor key (``actor/keys.ts``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rivetkit.protocol.actor_keys import EMPTY_KEY, deserialize_key, serialize_key

CASES = [
    ([], "/"),
    (["test"], "test"),
    (["a", "b", "c"], "a/b/c"),
    (["k", "a,b"], "k/a,b"),
    (["a/b"], "a\\/b"),
    (["a\\b"], "a\\\\b"),
    ([""], "\\0"),
    (["", ""], "\\0/\\0"),
    (["a", "", "b"], "a/\\0/b"),
    (["/"], "\\/"),
    (["\\"], "\\\\"),
    (["\\0"], "\\\\0"),
    (["a/b\\c/"], "a\\/b\\\\c\\/"),
    (["ünï", "😀"], "ünï/😀"),
]


@pytest.mark.parametrize(("key", "serialized"), CASES)
def test_serialize(key: list[str], serialized: str) -> None:
    assert serialize_key(key) == serialized
    assert serialize_key(tuple(key)) == serialized


@pytest.mark.parametrize(("key", "serialized"), CASES)
def test_deserialize(key: list[str], serialized: str) -> None:
    assert deserialize_key(serialized) == key


def test_empty_key_constant() -> None:
    assert serialize_key([]) == EMPTY_KEY == "/"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (None, []),
        ("", []),
        ("a/", ["a", ""]),
        ("/a", ["", "a"]),
        ("a\\", ["a\\"]),  # a lone trailing backslash is literal
        ("\\x", ["x"]),  # an unknown escape keeps the character
        ("a\\0b", [""]),  # RivetKit: \0 marks the segment empty, whatever else it holds
    ],
)
def test_deserialize_leniency_matches_rivetkit(text: str | None, key: list[str]) -> None:
    assert deserialize_key(text) == key


@given(st.lists(st.text(alphabet=st.sampled_from("ab/\\0,é "), max_size=6), max_size=5))
def test_round_trip(key: list[str]) -> None:
    serialized = serialize_key(key)
    assert deserialize_key(serialized) == key


@given(
    st.lists(st.text(max_size=4), max_size=4),
    st.lists(st.text(max_size=4), max_size=4),
)
def test_injective(a: list[str], b: list[str]) -> None:
    if a != b:
        assert serialize_key(a) != serialize_key(b)


def test_type_errors() -> None:
    with pytest.raises(TypeError):
        serialize_key("abc")
    with pytest.raises(TypeError):
        serialize_key(["a", 1])  # type: ignore[list-item]
