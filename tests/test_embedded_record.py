"""The embedded driver's actor records: keys read back without the JSON decoder, exactly as
``json.loads`` reads them; one id and one name string shared by a live actor's records."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivetkit.drivers.embedded import tables
from rivetkit.drivers.embedded.tables import _key_json, key_from_json


@given(st.lists(st.text()))
def test_key_from_json_reads_what_the_driver_writes(key: list[str]) -> None:
    text = _key_json(key)
    assert key_from_json(text) == json.loads(text) == key


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        return type(exc)


def _fast(text: str) -> object:
    try:
        return key_from_json(text)
    except ValueError as exc:
        return type(exc)


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(['"', "[", "]", ",", "\\", " ", "a", "\n", "\x7f", "é"])))
def test_key_from_json_is_json_loads_on_any_text(text: str) -> None:
    assert _fast(text) == _loads(text)


@settings(max_examples=300)
@given(st.lists(st.text()).map(lambda key: _key_json(key)), st.sampled_from([" ", "\n", "\\u0041"]))
def test_key_from_json_is_json_loads_on_altered_text(text: str, extra: str) -> None:
    for i in range(len(text) + 1):
        altered = text[:i] + extra + text[i:]
        assert _fast(altered) == _loads(altered)


@pytest.mark.parametrize(
    "text", ['[""]', '["",""]', '["a","b"]', '["a\\"b"]', '["]', '[ "a"]', '["a" ,"b"]', "[]"]
)
def test_key_from_json_edges(text: str) -> None:
    assert _fast(text) == _loads(text)


def test_records_share_the_callers_id_and_one_name() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tables.init_schema(conn)
    created, _ = tables.get_or_create_actor(conn, "many", ["k", "x/y"], "k/x\\/y", None, 5)
    actor_id = "".join(list(created.actor_id))  # equal, not the same object
    assert actor_id is not created.actor_id
    record = tables.begin_generation(conn, actor_id)
    assert record.actor_id is actor_id
    assert record.key == ["k", "x/y"]
    assert record == created._replace(generation=1)
    again = tables.get_actor(conn, actor_id)
    assert again is not None and again.name is record.name
    (found,) = tables.list_actors(conn, "many")
    assert found == again


def test_the_common_shape_skips_the_json_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> object:
        raise AssertionError(f"json.loads({text!r})")

    monkeypatch.setattr(tables.json, "loads", refuse)
    for key in ([], ["a"], ["a", "b", ""], ["é/ß", "x y", "'"]):
        assert key_from_json(_key_json(key)) == key
