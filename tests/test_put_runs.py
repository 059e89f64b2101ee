"""The store's put runs (issue 20, saves): ``SqliteStore.put_soon`` (the embedded driver's
``kv_put_soon``), consecutive puts written with one multi-row INSERT from flat fields
(``tables.kv_put_fields``), and one answer for every callback of a run.

The promises are those of one ``kv_write`` per save: answered only after the commit, in call
order with the other operations, a failing save fails alone, a later put of a key wins.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rivetkit.drivers.embedded import EmbeddedDriver, tables

pytestmark = pytest.mark.asyncio


class NoHost:
    async def start_actor(self, record: Any, generation: int) -> None: ...
    async def stop_actor(self, actor_id: str, reason: Any) -> None: ...
    async def fire_alarm(self, actor_id: str) -> None: ...


HOST: Any = NoHost()


def _table(rows: list[tuple[str, bytes, bytes]], *, flat: bool) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(":memory:")
    tables.init_schema(conn)
    if flat:
        tables.kv_put_fields(conn, [field for row in rows for field in row])
    else:
        tables.kv_put_rows(conn, rows)
    return conn.execute("SELECT actor_id, key, value FROM kv ORDER BY actor_id, key").fetchall()


@pytest.mark.parametrize("count", [0, 1, 7, tables.PUT_ROWS_CHUNK, 2 * tables.PUT_ROWS_CHUNK + 5])
async def test_kv_put_fields_writes_what_kv_put_rows_writes(count: int) -> None:
    # Repeated keys: the later row wins in both, across chunks too.
    rows = [(f"a{i % 50}", b"k%d" % (i % 7), b"v%d" % i) for i in range(count)]
    assert _table(rows, flat=True) == _table(rows, flat=False)


async def test_put_soon_answers_after_commit_each_in_order_with_other_operations(
    tmp_path: Path,
) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    try:
        store = driver.store
        answers: list[tuple[str, bool, Any]] = []

        def done(name: str) -> Any:
            return lambda ok, value: answers.append((name, ok, value))

        writes = store.write_ops
        assert driver.kv_put_soon("x", [(b"k", b"1")], done("a"))
        assert driver.kv_put_soon("x", [(b"k", "text")], done("bad"))  # type: ignore[list-item]
        assert driver.kv_put_soon("y", [(b"k", b"2"), (b"j", b"3")], done("two"))
        plain = store.write(tables.kv_write, "z", [(b"k", b"4")], ())  # a future in the run
        assert driver.kv_put_soon("x", [(b"k", b"5")], done("later"))
        read = store.read(tables.kv_get, "x", [b"k"])  # sees every put before it
        assert answers == []  # nothing answered before the commit
        assert await read == [b"5"]
        await plain
        outcome = {name: (ok, value) for name, ok, value in answers}
        assert [name for name, _, _ in answers if name != "bad"] == ["a", "two", "later"]
        assert outcome["a"] == outcome["two"] == outcome["later"] == (True, None)
        assert outcome["bad"][0] is False and isinstance(outcome["bad"][1], TypeError)
        assert store.write_ops - writes == 4
        assert await driver.kv_get("y", [b"k", b"j"]) == [b"2", b"3"]
        assert await driver.kv_get("z", [b"k"]) == [b"4"]
    finally:
        await driver.stop()


async def test_a_failing_statement_in_a_run_fails_only_its_own_put(tmp_path: Path) -> None:
    """A put the multi-row INSERT refuses (here a trigger) sends the run one by one."""
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    try:
        store = driver.store

        def add_trigger(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON kv WHEN NEW.actor_id = 'bad' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )

        await store.read(add_trigger)
        loop = asyncio.get_running_loop()
        outcomes: dict[str, asyncio.Future[tuple[bool, Any]]] = {}
        for name in ["a", "bad", "b"]:
            future = outcomes[name] = loop.create_future()
            driver.kv_put_soon(
                name, [(b"k", name.encode())], lambda ok, v, f=future: f.set_result((ok, v))
            )
        results = {name: await future for name, future in outcomes.items()}
        assert results["a"] == results["b"] == (True, None)
        assert results["bad"][0] is False and isinstance(results["bad"][1], sqlite3.Error)
        assert await driver.kv_get("a", [b"k"]) == [b"a"]
        assert await driver.kv_get("b", [b"k"]) == [b"b"]
        assert await driver.kv_get("bad", [b"k"]) == [None]
    finally:
        await driver.stop()


async def test_put_soon_many_share_one_transaction_and_a_failing_callback_is_alone(
    tmp_path: Path,
) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    try:
        store = driver.store
        done = asyncio.get_running_loop().create_future()
        left = 300

        def answer(ok: bool, value: Any) -> None:
            nonlocal left
            assert ok, value
            left -= 1
            if left == 0:
                done.set_result(None)

        def boom(ok: bool, value: Any) -> None:
            raise ValueError("a callback failing")

        transactions = store.transactions
        driver.kv_put_soon("first", [(b"\x01", b"f")], boom)
        for i in range(300):
            driver.kv_put_soon(f"a{i}", [(b"\x01", b"%d" % i)], answer)
        await done
        assert store.transactions - transactions == 1
        assert await driver.kv_get("a299", [b"\x01"]) == [b"299"]
        assert await driver.kv_get("first", [b"\x01"]) == [b"f"]
    finally:
        await driver.stop()
