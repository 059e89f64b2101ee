"""The compact table of sleeping actors' moments (rivetkit/runtime/sleeper_table.py), and
LifecycleTimes on top of it, against plain dict models."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivetkit.drivers.embedded.tables import new_actor_id
from rivetkit.runtime import lifecycle_times
from rivetkit.runtime.lifecycle_times import LifecycleTimes
from rivetkit.runtime.sleeper_table import SleeperTable, pack_id

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def test_pack_id_takes_the_drivers_shape_only() -> None:
    actor_id = new_actor_id()
    key = pack_id(actor_id)
    assert key is not None and len(key) == 20 and key[0] < 0x10
    assert pack_id("z" * 30) is not None and pack_id("0" * 30) == bytes(20)
    assert pack_id("0" * 29 + "1") != pack_id("1" + "0" * 29)
    for other in ("a", "A" * 30, "a" * 29, "a" * 31, "a_" * 15, " " + "a" * 29, "é" * 30):
        assert pack_id(other) is None


def check_table(ops: list[tuple[str, int, int | None, int]]) -> None:
    table = SleeperTable()
    model: dict[bytes, tuple[int | None, int]] = {}  # insertion order = age
    keys = [i.to_bytes(20, "big") for i in range(64)]
    for op, which, start, sleep in ops:
        key = keys[which % len(keys)]
        if op == "put":
            table.put(key, start, sleep)
            model.pop(key, None)
            model[key] = (start, sleep)
        elif op == "pop":
            assert table.pop(key) == model.pop(key, None)
        else:
            assert table.get(key) == model.get(key)
        assert len(table) == len(model)
        oldest = next(iter(model.items()), None)
        assert table.oldest() == (None if oldest is None else (oldest[0], oldest[1][1]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "pop", "get"]),
            st.integers(0, 63),
            st.none() | st.integers(0, 2**64 - 2),
            st.integers(0, 2**64 - 1),
        ),
        max_size=80,
    )
)
def test_table_matches_a_dict(ops: list[tuple[str, int, int | None, int]]) -> None:
    check_table(ops)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_table_through_growth_and_compaction(seed: int) -> None:
    rng = random.Random(seed)
    table = SleeperTable()
    model: dict[bytes, tuple[int | None, int]] = {}
    keys = [pack_id(new_actor_id()) for _ in range(6_000)]
    for step in range(40_000):
        key = rng.choice(keys)
        assert key is not None
        roll = rng.random()
        if roll < 0.55 if step < 20_000 else roll < 0.3:
            moments = (rng.choice([None, step]), step)
            table.put(key, *moments)
            model.pop(key, None)
            model[key] = moments
        elif roll < 0.9:
            assert table.pop(key) == model.pop(key, None)
        else:
            assert table.get(key) == model.get(key)
        if step % 997 == 0:
            oldest = next(iter(model.items()), None)
            assert table.oldest() == (None if oldest is None else (oldest[0], oldest[1][1]))
    assert len(table) == len(model)
    for key in keys:
        assert table.get(key) == model.get(key)  # type: ignore[arg-type]


class Model:
    """What LifecycleTimes reports, kept the plain way (every actor in one dict)."""

    def __init__(self, since: int) -> None:
        self.since = since
        self.times: dict[str, list[int | None]] = {}

    def apply(self, op: str, actor_id: str, now: int) -> None:
        entry = self.times.get(actor_id)
        if op == "starting":
            self.times[actor_id] = [None if entry is None else entry[0], None, None]
        elif op == "started":
            start = now if entry is None or entry[0] is None else entry[0]
            self.times[actor_id] = [start, now, None]
        elif op == "stopping":
            if entry is not None:
                self.times[actor_id] = [entry[0], None, None]
        elif op == "stopped":
            self.times.pop(actor_id, None)
            self.times[actor_id] = [None if entry is None else entry[0], None, now]
        else:
            self.times.pop(actor_id, None)

    def fields(self, actor_id: str, create_ts: int) -> dict[str, Any]:
        entry = self.times.get(actor_id)
        if entry is None:
            entry = [None, None, max(create_ts, self.since)]
        return {
            "start_ts": entry[0],
            "pending_allocation_ts": None,
            "connectable_ts": entry[1],
            "sleep_ts": entry[2],
        }


IDS = ["a", "b", *("".join(random.Random(i).choices(BASE36, k=30)) for i in range(4))]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["starting", "started", "stopping", "stopped", "forget"]),
            st.sampled_from(IDS),
            st.integers(0, 5_000),
        ),
        max_size=60,
    ),
    # Today, and clocks whose moments do not pack (before 1970, after 2109: kept as lists
    # and tuples instead of ints).
    st.sampled_from([1_700_000_000.0, -100.0, 4_398_046_511.0]),
)
def test_lifecycle_times_match_the_model(ops: list[tuple[str, str, int]], start: float) -> None:
    now = [start]
    times = LifecycleTimes(lambda: now[0])
    model = Model(int(start * 1000))
    for op, actor_id, step_ms in ops:
        now[0] += step_ms / 1000
        current = int(now[0] * 1000)
        getattr(times, op)(actor_id)
        model.apply(op, actor_id, current)
        for other in IDS:
            assert times.fields(other, 5, None) == model.fields(other, 5)
    for other in IDS:
        assert times.fields(other, 5, 9)["sleep_ts"] is None


def test_the_longest_asleep_are_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle_times, "MAX_ACTORS", 3)
    now = [1000.0]
    times = LifecycleTimes(lambda: now[0])
    running = new_actor_id()
    times.starting(running)
    times.started(running)
    sleepers = [new_actor_id() for _ in range(3)] + ["short"]
    for actor_id in sleepers:
        now[0] += 1
        times.starting(actor_id)
        times.started(actor_id)
        times.stopped(actor_id)
    assert times.fields(running, 0, None)["connectable_ts"] == 1_000_000
    # Kept: the running one and the two newest sleepers; the two oldest were forgotten.
    assert [times.fields(a, 0, None)["start_ts"] for a in sleepers] == [
        None,
        None,
        1_003_000,
        1_004_000,
    ]


def test_table_grows_without_moving_its_records() -> None:
    table = SleeperTable()
    keys = [pack_id(new_actor_id()) for _ in range(12_000)]
    for n, key in enumerate(keys):
        assert key is not None
        table.put(key, None if n % 3 else n, n)
    assert len(table) == len(keys)
    assert table.oldest() == (keys[0], 0)
    for n, key in enumerate(keys):
        assert table.get(key) == (None if n % 3 else n, n)  # type: ignore[arg-type]
    assert table.pop(keys[0]) == (0, 0)
    assert table.oldest() == (keys[1], 1)
