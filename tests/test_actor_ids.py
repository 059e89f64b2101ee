"""New actor ids drawn from a pool of ``os.urandom`` bytes
(rivetkit/drivers/embedded/tables.py, ``new_actor_id``): the engine's shape, the creation
time first (later ids sort later), every random digit used evenly, never twice (a forked
child included), and the key's JSON as json.dumps writes it."""

from __future__ import annotations

import collections
import itertools
import json
import os
import string
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rivetkit.drivers.embedded import tables

_BASE36 = set(string.digits + string.ascii_lowercase)


def test_ids_have_the_engine_shape_and_never_repeat() -> None:
    ids = [tables.new_actor_id() for _ in range(20_000)]
    assert all(len(i) == 30 and set(i) <= _BASE36 for i in ids)
    assert len(set(ids)) == len(ids)


def test_every_digit_is_drawn_evenly_at_every_random_place() -> None:
    ids = [tables.new_actor_id() for _ in range(7_200)]
    for place in (8, 15, 29):  # the random places (the first 8 are the time)
        counts = collections.Counter(i[place] for i in ids)
        assert set(counts) == _BASE36
        # 200 expected per digit; a deviation past 5 standard deviations (~70) means a bias.
        assert all(130 < n < 270 for n in counts.values()), counts


def test_ids_drawn_later_sort_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first 8 characters are the clock in ms: the rows of new actors go to the end of
    the id-keyed B-trees instead of random pages."""
    now = [1_796_580_825.871]
    monkeypatch.setattr(tables, "time", types.SimpleNamespace(time=lambda: now[0]))
    ids = []
    for step in [0.0, 0.0, 0.001, 0.5, 3600.0, 0.001]:
        now[0] += step
        ids.append(tables.new_actor_id())
    assert int(ids[0][:8], 36) == 1_796_580_825_871
    assert ids[0][:8] == ids[1][:8]  # the same millisecond
    assert all(a[:8] < b[:8] for a, b in itertools.pairwise(ids[1:]))
    assert sorted(ids[1:]) == ids[1:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_draws_other_ids() -> None:
    tables.new_actor_id()  # the pool holds ids now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, tables.new_actor_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 30
    assert child != tables.new_actor_id()


@given(st.lists(st.text(), max_size=4))
def test_the_key_json_is_what_json_dumps_writes(key: list[str]) -> None:
    assert tables._key_json(key) == json.dumps(key, ensure_ascii=False, separators=(",", ":"))


_AWKWARD = st.text(
    alphabet=st.sampled_from(['"', "\\", ",", "[", "a", " ", "\n", "\x7f", "é", "\u2028"])
)


@given(st.lists(_AWKWARD, max_size=5))
def test_the_key_json_is_what_json_dumps_writes_for_awkward_text(key: list[str]) -> None:
    assert tables._key_json(key) == json.dumps(key, ensure_ascii=False, separators=(",", ":"))


def test_the_key_json_of_plain_text_skips_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(key: object) -> str:
        raise AssertionError(f"encoder called for {key!r}")

    monkeypatch.setattr(tables, "_json_encode", refuse)
    for key in ([], ["a"], ["a", "", "b c"], ["é/ß", "'"]):
        expected = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
        assert tables._key_json(key) == expected


def test_the_key_json_of_other_values_is_the_encoders() -> None:
    for key in (["a", 1], ("a", "b"), ["a", None]):
        expected = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
        assert tables._key_json(key) == expected  # type: ignore[arg-type]


def test_ids_of_one_36_ms_share_the_time_but_its_last_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_796_580_825.000]
    monkeypatch.setattr(tables, "time", types.SimpleNamespace(time=lambda: now[0]))
    for step in [0.0, 0.001, 0.034, 0.001, 0.036, 36.0**7]:
        now[0] += step
        ms = int(now[0] * 1000) % 36**8
        made = tables.new_actor_id()
        assert int(made[:8], 36) == ms
