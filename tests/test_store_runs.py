"""The store's operation runs (issue 20, creations): consecutive ``get_or_create_actor`` or
``begin_generation_reading`` writes of one batch run as one run
(``tables.get_or_create_actors``, ``tables.begin_generations_reading``: two statements for
the run instead of two per operation).

The promise is that of the operations one by one: the same answers in the same order, the
same rows, a failing operation fails alone, answers only after the commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivetkit.drivers.base import ActorRecord
from rivetkit.drivers.embedded import EmbeddedDriver, tables
from rivetkit.errors import RivetError

NAMES = ["a", "b"]
KEYS = ["k0", "k1", "k2", "k3"]


def _db(live: list[tuple[str, str]], destroyed: list[tuple[str, str]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tables.init_schema(conn)
    conn.execute("BEGIN")
    for i, (name, key) in enumerate(destroyed):
        conn.execute(
            "INSERT INTO actors (actor_id, name, key_json, key_str, input, create_ts, "
            "destroy_ts, generation) VALUES (?, ?, ?, ?, NULL, ?, 5, 2)",
            (f"dead{i}", name, f'["{key}"]', key, i),
        )
    for i, (name, key) in enumerate(live):
        if any(row == (name, key) for row in live[:i]):
            continue
        conn.execute(
            "INSERT INTO actors (actor_id, name, key_json, key_str, input, create_ts, "
            "generation) VALUES (?, ?, ?, ?, ?, ?, 3)",
            (f"live{i}", name, f'["{key}"]', key, b"in", 100 + i),
        )
        conn.execute("INSERT INTO kv VALUES (?, ?, ?)", (f"live{i}", b"t", b"v%d" % i))
    conn.execute("COMMIT")
    return conn


def _normal(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with the randomly drawn actor ids named by order of appearance."""
    if isinstance(value, str) and len(value) == 30:
        return ids.setdefault(value, f"new{len(ids)}")
    if isinstance(value, ActorRecord):
        return ("record", *(_normal(field, ids) for field in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_normal(item, ids) for item in value)
    if isinstance(value, Exception):
        return (type(value).__name__, str(value))
    return value


def _one_by_one(conn: sqlite3.Connection, fn: Any, calls: list[tuple[Any, ...]]) -> list[Any]:
    outcomes: list[Any] = []
    for call in calls:
        try:
            outcomes.append((True, fn(conn, *call)))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


def _rows(conn: sqlite3.Connection, ids: dict[str, str]) -> Any:
    actors = conn.execute("SELECT * FROM actors ORDER BY name, key_str, create_ts").fetchall()
    return _normal(actors, ids)


pairs = st.tuples(st.sampled_from(NAMES), st.sampled_from(KEYS))


@settings(max_examples=60, deadline=None)
@given(
    live=st.lists(pairs, max_size=4),
    destroyed=st.lists(pairs, max_size=3),
    calls=st.lists(st.tuples(pairs, st.sampled_from([None, b"", b"x"])), min_size=1, max_size=8),
)
def test_get_or_create_actors_answers_and_writes_as_one_by_one(
    live: list[tuple[str, str]], destroyed: list[tuple[str, str]], calls: list[Any]
) -> None:
    args = [(name, [key], key, input, 1000 + i) for i, ((name, key), input) in enumerate(calls)]
    expected_conn, run_conn = _db(live, destroyed), _db(live, destroyed)
    expected = _one_by_one(expected_conn, tables.get_or_create_actor, args)
    got = tables.get_or_create_actors(run_conn, args)
    keys = [(name, key) for (name, key), _ in calls]
    new = [k for k in keys if k not in live]
    if len(set(new)) != len(new):
        assert got is None  # the same missing actor twice: only one by one answers
        assert _rows(run_conn, {}) == _rows(_db(live, destroyed), {})  # nothing written
        return
    assert got is not None
    ids_expected: dict[str, str] = {}
    ids_got: dict[str, str] = {}
    assert _normal(got, ids_got) == _normal(expected, ids_expected)
    assert _rows(run_conn, ids_got) == _rows(expected_conn, ids_expected)


actor_refs = st.sampled_from(["live0", "live1", "live2", "dead0", "nobody"])
key_lists = st.sampled_from([(), (b"t",), (b"t", b"u"), (b"u",), ("bad",), (b"t", 7)])


@settings(max_examples=60, deadline=None)
@given(
    live=st.lists(pairs, min_size=3, max_size=4, unique=True),
    calls=st.lists(st.tuples(actor_refs, key_lists), min_size=1, max_size=6),
)
def test_begin_generations_reading_answers_and_writes_as_one_by_one(
    live: list[tuple[str, str]], calls: list[tuple[str, tuple[Any, ...]]]
) -> None:
    expected_conn, run_conn = _db(live, [("a", "k0")]), _db(live, [("a", "k0")])
    expected = _one_by_one(expected_conn, tables.begin_generation_reading, calls)
    got = tables.begin_generations_reading(run_conn, calls)
    ids = [actor_id for actor_id, _ in calls]
    if len(set(ids)) != len(ids):
        assert got is None  # one actor twice: only one by one answers
        assert _rows(run_conn, {}) == _rows(_db(live, [("a", "k0")]), {})
        return
    assert got is not None
    assert _normal(got, {}) == _normal(expected, {})
    assert _rows(run_conn, {}) == _rows(expected_conn, {})


class NoHost:
    async def start_actor(self, record: Any, generation: int) -> None: ...
    async def stop_actor(self, actor_id: str, reason: Any) -> None: ...
    async def fire_alarm(self, actor_id: str) -> None: ...


async def _in_one_batch(driver: EmbeddedDriver, submit: Any) -> tuple[list[Any], list[str]]:
    """Hold the writer busy, ``submit()`` futures, then release it: they make one batch.
    Their outcomes, and the statements the writer ran for them."""
    store = driver.store
    statements: list[str] = []
    release = threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        release.wait(10)
        conn.set_trace_callback(statements.append)

    held = store.read(hold)
    await asyncio.sleep(0.05)
    futures = submit()
    release.set()
    await held
    outcomes = [
        (True, value) if not isinstance(value, BaseException) else (False, value)
        for value in await asyncio.gather(*futures, return_exceptions=True)
    ]
    await store.read(lambda conn: conn.set_trace_callback(None))
    return outcomes, [s for s in statements if not s.startswith("SELECT 1")]


@pytest.mark.asyncio
async def test_a_batch_of_creations_and_starts_runs_in_few_statements(tmp_path: Path) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(NoHost())
    try:
        store = driver.store
        await store.write(tables.create_actor, "a", ["old"], "old", None, 1)
        transactions = store.transactions

        def creations() -> list[Any]:
            return [
                store.write(tables.get_or_create_actor, "a", [k], k, None, 5)
                for k in ["n0", "old", "n1", "n2"]
            ]

        outcomes, statements = await _in_one_batch(driver, creations)
        assert store.transactions - transactions == 1
        assert len(statements) == 4  # BEGIN, the live ones, the new ones, COMMIT
        assert [(ok, created) for ok, (_, created) in outcomes] == [
            (True, True),
            (True, False),
            (True, True),
            (True, True),
        ]
        records = [record for _, (record, _) in outcomes]
        assert [await driver.find_actor("a", [r.key[0]]) for r in records] == [
            r._replace(input=None) for r in records
        ]

        def starts() -> list[Any]:
            ids = [r.actor_id for r in records] + ["nobody"]
            return [store.write(tables.begin_generation_reading, i, [b"t"]) for i in ids]

        outcomes, statements = await _in_one_batch(driver, starts)
        assert len(statements) == 4
        assert [ok for ok, _ in outcomes] == [True] * 4 + [False]
        assert [value[0].generation for _, value in outcomes[:4]] == [1, 1, 1, 1]
        assert isinstance(outcomes[4][1], RivetError) and outcomes[4][1].code == "not_found"
    finally:
        await driver.stop()


@pytest.mark.asyncio
async def test_a_failing_run_statement_sends_the_run_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taken id makes the run's INSERT fail: nothing of it stays, each creation is then
    made alone (drawing another id), and a refused one fails alone."""
    driver = EmbeddedDriver(tmp_path)
    await driver.start(NoHost())
    try:
        store = driver.store
        taken = await store.write(tables.create_actor, "a", ["old"], "old", None, 1)
        drawn = iter([taken.actor_id])
        real = tables.new_actor_id
        monkeypatch.setattr(tables, "new_actor_id", lambda: next(drawn, None) or real())

        def add_trigger(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON actors WHEN NEW.key_str = 'bad' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )

        await store.read(add_trigger)

        def creations() -> list[Any]:
            return [
                store.write(tables.get_or_create_actor, "a", [k], k, None, 5)
                for k in ["n0", "bad", "n1"]
            ]

        outcomes, _ = await _in_one_batch(driver, creations)
        assert [ok for ok, _ in outcomes] == [True, False, True]
        assert isinstance(outcomes[1][1], sqlite3.IntegrityError)
        assert outcomes[0][1][0].actor_id != taken.actor_id
        assert await driver.find_actor("a", ["bad"]) is None
        assert await driver.find_actor("a", ["n0"]) == outcomes[0][1][0]
        assert await driver.find_actor("a", ["n1"]) == outcomes[2][1][0]
        assert await driver.get_actor(taken.actor_id) == taken
    finally:
        await driver.stop()


class Unhashable:
    """An operation that is a callable object with no hash."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return False

    def __call__(self, conn: sqlite3.Connection) -> int:
        return 7


@pytest.mark.asyncio
async def test_any_callable_is_an_operation_in_a_batch(tmp_path: Path) -> None:
    """The store looks operations up by hash only when they are plain functions."""
    driver = EmbeddedDriver(tmp_path)
    await driver.start(NoHost())
    try:
        store = driver.store

        def operations() -> list[Any]:
            return [
                store.write(tables.get_or_create_actor, "a", ["x"], "x", None, 5),
                store.write(Unhashable()),
                store.write(lambda conn: 1),
            ]

        outcomes, _ = await _in_one_batch(driver, operations)
        assert [ok for ok, _ in outcomes] == [True, True, True]
        assert [value for _, value in outcomes[1:]] == [7, 1]
    finally:
        await driver.stop()
