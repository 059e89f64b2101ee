"""The common cases' short roads give what the general code gives: ``parse_query``'s key
within the limits without ``check_key``, its ``QueryTarget`` made without ``__new__``'s
frame, and ``serialize_key``'s one plain segment."""

from __future__ import annotations

import pytest

from rivetkit.errors import RivetError
from rivetkit.protocol.actor_keys import deserialize_key, serialize_key
from rivetkit.server import gateway


def _reference_key(key: list[str]) -> str:
    """RivetKit's serializeActorKey, as the general loop writes it."""
    if not key:
        return "/"
    return "/".join(
        "\\0" if part == "" else part.replace("\\", "\\\\").replace("/", "\\/") for part in key
    )


@pytest.mark.parametrize(
    "key",
    [[], ["a"], [""], ["a/b"], ["a\\b"], ["\\0"], ["é"], ["a", "b"], ["a", ""], ["x" * 300]],
)
def test_serialize_key_matches_the_general_form(key: list[str]) -> None:
    assert serialize_key(key) == _reference_key(key)
    assert deserialize_key(serialize_key(key)) == key


def test_serialize_key_still_refuses_bad_keys() -> None:
    with pytest.raises(TypeError):
        serialize_key("a")
    with pytest.raises(TypeError):
        serialize_key([1])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "raw_key",
    ["a1", "a,b", "a" * 128, ",".join(["abc"] * 32), "é" * 10, "a" * 100 + ",é"],
)
def test_parse_query_key_within_limits(raw_key: str) -> None:
    params = {"rvt-method": "getOrCreate", "rvt-key": raw_key}
    target = gateway.parse_query("many", params)
    assert type(target) is gateway.QueryTarget
    expected = gateway.QueryTarget(
        "many", gateway.check_key(raw_key.split(",")), "getOrCreate", None, "default", None
    )
    assert target == expected
    assert (target.name, target.key, target.method) == ("many", raw_key.split(","), "getOrCreate")
    assert target.namespace == "default" and target.token is None and target.input is None


@pytest.mark.parametrize("raw_key", ["a" * 129, "é" * 65, ",".join(["a" * 100] * 11)])
def test_parse_query_key_over_limits(raw_key: str) -> None:
    with pytest.raises(RivetError) as caught:
        gateway.parse_query("many", {"rvt-method": "get", "rvt-key": raw_key})
    assert caught.value.code == "key_too_large"


def test_parse_query_fields() -> None:
    params = {"rvt-method": "get", "rvt-namespace": "ns", "rvt-token": "t", "rvt-key": ""}
    target = gateway.parse_query("n%C3%A9", params)
    assert target == gateway.QueryTarget("né", [], "get", None, "ns", "t")
    assert target._replace(name="x").name == "x"
