"""The embedded driver: SQLite KV with group commit, placement, alarms, lock, durability."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from rivetkit.drivers.base import ActorRecord, StopReason, prefix_end
from rivetkit.drivers.embedded import EmbeddedDriver, tables
from rivetkit.errors import RivetError

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """A wall clock that moves only when told."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeHost:
    """Records what the driver asks of the runtime, in one ordered event list."""

    def __init__(self, *, start_delay: float = 0.0, stop_delay: float = 0.0) -> None:
        self.start_delay = start_delay
        self.stop_delay = stop_delay
        self.events: list[tuple[Any, ...]] = []
        self.fail_starts = 0
        self.on_start: Callable[[ActorRecord, int], None] | None = None
        self.fired = asyncio.Event()

    @property
    def starts(self) -> list[tuple[str, int]]:
        return [(e[1], e[2]) for e in self.events if e[0] == "start"]

    @property
    def stops(self) -> list[tuple[str, str]]:
        return [(e[1], e[2]) for e in self.events if e[0] == "stopped"]

    @property
    def alarms(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "alarm"]

    async def start_actor(self, record: ActorRecord, generation: int) -> None:
        assert record.generation == generation
        self.events.append(("start", record.actor_id, generation))
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("start failed on purpose")
        if self.on_start is not None:
            self.on_start(record, generation)
        self.events.append(("started", record.actor_id, generation))

    async def stop_actor(self, actor_id: str, reason: StopReason) -> None:
        self.events.append(("stop", actor_id, reason))
        if self.stop_delay:
            await asyncio.sleep(self.stop_delay)
        self.events.append(("stopped", actor_id, reason))

    async def fire_alarm(self, actor_id: str) -> None:
        self.events.append(("alarm", actor_id))
        self.fired.set()


@contextlib.asynccontextmanager
async def running(
    path: Path, host: FakeHost | None = None, **kwargs: Any
) -> AsyncIterator[tuple[EmbeddedDriver, FakeHost]]:
    host = host or FakeHost()
    driver = EmbeddedDriver(path, **kwargs)
    await asyncio.wait_for(driver.start(host), 5)
    try:
        yield driver, host
    finally:
        await asyncio.wait_for(driver.stop(), 5)


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


def query(db: Path, sql: str, *params: Any) -> list[Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


# -- KV ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_kv_get_write_delete(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        assert await d.kv_get("a", [b"x", b"y"]) == [None, None]
        await d.kv_write("a", puts=[(b"x", b"1"), (b"y", b"2")])
        assert await d.kv_get("a", [b"y", b"missing", b"x"]) == [b"2", None, b"1"]
        await d.kv_write("a", puts=[(b"x", b"3")])
        assert await d.kv_get("a", [b"x"]) == [b"3"]
        # Deletes apply before puts: deleting and putting one key keeps the put.
        await d.kv_write("a", puts=[(b"x", b"4")], deletes=[b"x", b"y"])
        assert await d.kv_get("a", [b"x", b"y"]) == [b"4", None]
        await d.kv_write("a")  # nothing to do
        assert await d.kv_get("a", []) == []


@pytest.mark.asyncio
async def test_kv_is_per_actor(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        await d.kv_write("a", puts=[(b"k", b"a")])
        await d.kv_write("b", puts=[(b"k", b"b")])
        assert await d.kv_get("a", [b"k"]) == [b"a"]
        assert await d.kv_list("b", b"", None) == [(b"k", b"b")]
        await d.kv_delete_range("a", b"", None)
        assert await d.kv_get("b", [b"k"]) == [b"b"]


KEYS = [b"", b"\x00", b"\x01", b"a", b"a\x00", b"a\x7f", b"a\x80", b"a\xff", b"b", b"\x7f", b"\x80"]
KEYS += [b"\xff", b"\xff\x00", b"\xff\xff"]


@pytest.mark.asyncio
async def test_kv_list_ranges_in_unsigned_byte_order(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        await d.kv_write("a", puts=[(k, b"v" + k) for k in KEYS])
        ordered = sorted(KEYS)  # Python compares bytes as unsigned, like memcmp
        everything = await d.kv_list("a", b"", None)
        assert [k for k, _ in everything] == ordered
        assert all(v == b"v" + k for k, v in everything)
        assert [k for k, _ in await d.kv_list("a", b"\x7f", b"\x81")] == [b"\x7f", b"\x80"]
        assert [k for k, _ in await d.kv_list("a", b"a", b"b")] == [
            b"a", b"a\x00", b"a\x7f", b"a\x80", b"a\xff",
        ]  # fmt: skip
        assert [k for k, _ in await d.kv_list("a", b"\xff", None)] == [
            b"\xff", b"\xff\x00", b"\xff\xff",
        ]  # fmt: skip
        assert await d.kv_list("a", b"b", b"b") == []
        # reverse and limit
        rev = await d.kv_list("a", b"", None, reverse=True)
        assert [k for k, _ in rev] == ordered[::-1]
        assert [k for k, _ in await d.kv_list("a", b"a", b"b", limit=2)] == [b"a", b"a\x00"]
        assert [k for k, _ in await d.kv_list("a", b"a", b"b", reverse=True, limit=2)] == [
            b"a\xff", b"a\x80",
        ]  # fmt: skip
        assert await d.kv_list("a", b"", None, limit=0) == []
        # prefixes through prefix_end
        assert [k for k, _ in await d.kv_list("a", b"a", prefix_end(b"a"))] == [
            b"a", b"a\x00", b"a\x7f", b"a\x80", b"a\xff",
        ]  # fmt: skip
        assert prefix_end(b"\xff") is None
        assert [k for k, _ in await d.kv_list("a", b"\xff", prefix_end(b"\xff"))] == [
            b"\xff", b"\xff\x00", b"\xff\xff",
        ]  # fmt: skip
        assert [k for k, _ in await d.kv_list("a", b"a\xff", prefix_end(b"a\xff"))] == [b"a\xff"]


@pytest.mark.asyncio
async def test_kv_delete_range(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        await d.kv_write("a", puts=[(k, b"") for k in KEYS])
        await d.kv_delete_range("a", b"a", b"b")
        assert [k for k, _ in await d.kv_list("a", b"", None)] == sorted(
            k for k in KEYS if not k.startswith(b"a")
        )
        await d.kv_delete_range("a", b"\x80", None)
        assert [k for k, _ in await d.kv_list("a", b"", None)] == [
            b"", b"\x00", b"\x01", b"b", b"\x7f",
        ]  # fmt: skip
        await d.kv_delete_range("a", b"", None)
        assert await d.kv_list("a", b"", None) == []


@pytest.mark.asyncio
async def test_kv_write_is_atomic(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        await d.kv_write("a", puts=[(b"old", b"1")])
        # A non-contiguous buffer passes the type check but fails inside SQLite, after the
        # delete and the first put ran: neither may survive.
        bad = memoryview(b"abcdef")[::2]
        with pytest.raises(Exception):  # noqa: B017
            await d.kv_write("a", puts=[(b"new", b"2"), (b"bad", bad)], deletes=[b"old"])  # type: ignore[list-item]
        assert await d.kv_get("a", [b"old", b"new", b"bad"]) == [b"1", None, None]
        with pytest.raises(TypeError):
            await d.kv_write("a", puts=[("str-key", b"x")])  # type: ignore[list-item]


@pytest.mark.asyncio
async def test_reads_see_earlier_writes(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        written = d.store.write(tables.kv_write, "a", [(b"k", b"v")], [])
        read = d.store.read(tables.kv_get, "a", [b"k"])
        assert await read == [b"v"]
        await written


@pytest.mark.asyncio
async def test_group_commit_batches_many_writers(tmp_path: Path) -> None:
    async with running(tmp_path) as (d, _):
        tx0, ops0 = d.store.transactions, d.store.write_ops
        n = 1000
        await asyncio.gather(
            *(d.kv_write(f"actor-{i}", puts=[(b"state", str(i).encode())]) for i in range(n))
        )
        transactions = d.store.transactions - tx0
        assert d.store.write_ops - ops0 == n
        assert 1 <= transactions <= n // 10, transactions
        got = await asyncio.gather(*(d.kv_get(f"actor-{i}", [b"state"]) for i in range(n)))
        assert got == [[str(i).encode()] for i in range(n)]


@pytest.mark.asyncio
async def test_failing_op_does_not_poison_its_batch(tmp_path: Path) -> None:
    def write_then_fail(conn: sqlite3.Connection) -> None:
        tables.kv_write(conn, "a", [(b"partial", b"x")], [])
        raise ValueError("boom")

    entered = threading.Event()
    release = threading.Event()

    def gate(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(5)

    async with running(tmp_path) as (d, _):
        # Hold the writer thread so that all 100 operations are pending at once: one batch.
        blocker = d.store.read(gate)
        await until(entered.is_set)
        tx0, ops0 = d.store.transactions, d.store.write_ops
        futures: list[asyncio.Future[Any]] = []
        for i in range(100):
            if i % 10 == 5:
                futures.append(d.store.write(write_then_fail))
            elif i % 10 == 7:
                futures.append(d.store.write(tables.kv_write, "a", [("bad", b"x")], []))  # type: ignore[list-item]
            else:
                futures.append(d.store.write(tables.kv_write, "a", [(b"%03d" % i, b"ok")], []))
        release.set()
        await blocker
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert d.store.transactions - tx0 == 1
        assert d.store.write_ops - ops0 == 80  # failed operations are not counted
        for i, result in enumerate(results):
            if i % 10 == 5:
                assert isinstance(result, ValueError)
            elif i % 10 == 7:
                assert isinstance(result, TypeError)
            else:
                assert result is None
        stored = [k for k, _ in await d.kv_list("a", b"", None)]
        assert stored == [b"%03d" % i for i in range(100) if i % 10 not in (5, 7)]
        # The store keeps working.
        await d.kv_write("a", puts=[(b"after", b"1")])
        assert await d.kv_get("a", [b"after"]) == [b"1"]


@pytest.mark.asyncio
async def test_closed_store_refuses(tmp_path: Path) -> None:
    d = EmbeddedDriver(tmp_path)
    await d.start(FakeHost())
    await d.stop()
    await d.stop()  # idempotent
    with pytest.raises(RivetError) as info:
        await d.kv_get("a", [b"k"])
    assert (info.value.group, info.value.code) == ("driver", "closed")


# -- storage layout ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_schema_and_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = EmbeddedDriver()
    assert d.data_dir == Path(".rivetkit")
    await d.start(FakeHost())
    record = await d.create_actor("counter", ["a/b", ""], b"\xa0")
    await d.kv_write(record.actor_id, puts=[(b"\x01", b"snap")])
    db = tmp_path / ".rivetkit" / "rivetkit.db"
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    await d.stop()
    assert (tmp_path / ".rivetkit" / "rivetkit.lock").exists()
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(1,)]
    assert query(db, "SELECT actor_id, key, value FROM kv") == [(record.actor_id, b"\x01", b"snap")]
    assert query(
        db, "SELECT name, key_json, key_str, input, generation, destroy_ts, alarm_ts FROM actors"
    ) == [("counter", '["a/b",""]', "a\\/b/\\0", b"\xa0", 0, None, None)]
    indexes = {row[1]: row for row in query(db, "PRAGMA index_list(actors)")}
    assert indexes["actors_live_name_key"][2] == 1  # unique
    assert indexes["actors_live_name_key"][4] == 1  # partial


# -- placement ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_get_find_list(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(tmp_path, clock=clock) as (d, _):
        rec, created = await d.get_or_create_actor("counter", ["a"], b"in")
        assert created
        assert len(rec.actor_id) == 30 and rec.actor_id.isalnum() and rec.actor_id.islower()
        assert rec == ActorRecord(rec.actor_id, "counter", ["a"], b"in", 1_700_000_000_000, None, 0)
        again, created = await d.get_or_create_actor("counter", ("a",), b"other input")
        assert (again, created) == (rec, False)

        with pytest.raises(RivetError) as info:
            await d.create_actor("counter", ["a"], None)
        assert (info.value.group, info.value.code) == ("actor", "duplicate_key")

        clock.advance(1)
        other = await d.create_actor("counter", ["b"], None)
        keyless = await d.create_actor("counter", [], None)
        clock.advance(1)
        chat = await d.create_actor("chat", ["a"], None)  # same key, other name: fine
        assert len({rec.actor_id, other.actor_id, keyless.actor_id, chat.actor_id}) == 4

        assert await d.get_actor(other.actor_id) == other
        assert await d.get_actor("nope") is None
        assert await d.find_actor("counter", ["b"]) == other
        assert await d.find_actor("counter", []) == keyless
        assert await d.find_actor("counter", ["c"]) is None
        assert await d.list_actors() == [rec, other, keyless, chat]
        assert await d.list_actors("counter") == [rec, other, keyless]
        assert await d.list_actors("nobody") == []

        # Keys that differ only in escaping stay apart.
        slash = await d.create_actor("k", ["a/b"], None)
        two = await d.create_actor("k", ["a", "b"], None)
        empty = await d.create_actor("k", [""], None)
        assert slash.actor_id != two.actor_id
        assert await d.find_actor("k", ["a", "b"]) == two
        assert await d.find_actor("k", [""]) == empty
        assert await d.find_actor("k", []) is None

        await d.destroy_actor(other.actor_id)
        assert await d.find_actor("counter", ["b"]) is None
        assert await d.list_actors("counter") == [rec, keyless]
        gone = await d.get_actor(other.actor_id)
        assert gone is not None and gone.destroy_ts == 1_700_000_002_000
        # The key is free again once its actor is destroyed.
        reborn, created = await d.get_or_create_actor("counter", ["b"], None)
        assert created and reborn.actor_id != other.actor_id

        with pytest.raises(TypeError):
            await d.create_actor("counter", "abc", None)


@pytest.mark.asyncio
async def test_concurrent_ensure_started_share_one_start(tmp_path: Path) -> None:
    host = FakeHost(start_delay=0.02)
    async with running(tmp_path, host) as (d, _):
        rec = await d.create_actor("counter", ["a"], None)
        records = await asyncio.gather(*(d.ensure_started(rec.actor_id) for _ in range(50)))
        assert host.starts == [(rec.actor_id, 1)]
        assert {r.generation for r in records} == {1}
        assert d.running_generation(rec.actor_id) == 1
        stored = await d.get_actor(rec.actor_id)
        assert stored is not None and stored.generation == 1
        # Running: answered without another start.
        assert (await d.ensure_started(rec.actor_id)).generation == 1
        assert host.starts == [(rec.actor_id, 1)]


@pytest.mark.asyncio
async def test_sleep_then_wake_is_next_generation(tmp_path: Path) -> None:
    host = FakeHost(stop_delay=0.02)
    async with running(tmp_path, host) as (d, _):
        rec = await d.create_actor("counter", ["a"], None)
        await d.ensure_started(rec.actor_id)
        d.request_sleep(rec.actor_id, 0)  # stale: ignored
        d.request_sleep(rec.actor_id, 2)  # future: ignored
        assert host.stops == [] and d.running_generation(rec.actor_id) == 1
        d.request_sleep(rec.actor_id, 1)
        d.request_sleep(rec.actor_id, 1)  # duplicate: ignored
        assert d.running_generation(rec.actor_id) is None
        # A wake during the stop waits for it, then starts generation 2.
        woken = await d.ensure_started(rec.actor_id)
        assert woken.generation == 2
        assert [e for e in host.events if e[0] != "started"] == [
            ("start", rec.actor_id, 1),
            ("stop", rec.actor_id, "sleep"),
            ("stopped", rec.actor_id, "sleep"),
            ("start", rec.actor_id, 2),
        ]
        d.request_sleep(rec.actor_id, 1)  # the old generation's ask is stale now
        await asyncio.sleep(0.01)
        assert d.running_generation(rec.actor_id) == 2
        d.request_sleep(rec.actor_id, 2)
        await until(lambda: len(host.stops) == 2)
        assert d.running_generation(rec.actor_id) is None
        assert (await d.ensure_started(rec.actor_id)).generation == 3


@pytest.mark.asyncio
async def test_sleep_requested_while_starting(tmp_path: Path) -> None:
    host = FakeHost()
    async with running(tmp_path, host) as (d, _):
        host.on_start = lambda record, gen: d.request_sleep(record.actor_id, gen)
        rec = await d.create_actor("counter", [], None)
        started = await d.ensure_started(rec.actor_id)
        assert started.generation == 1
        await until(lambda: host.stops == [(rec.actor_id, "sleep")])
        assert d.running_generation(rec.actor_id) is None


@pytest.mark.asyncio
async def test_ensure_started_errors(tmp_path: Path) -> None:
    host = FakeHost()
    async with running(tmp_path, host) as (d, _):
        with pytest.raises(RivetError) as info:
            await d.ensure_started("unknown")
        assert (info.value.group, info.value.code) == ("actor", "not_found")
        rec = await d.create_actor("counter", [], None)
        host.fail_starts = 1
        with pytest.raises(RuntimeError):
            await d.ensure_started(rec.actor_id)
        assert d.running_generation(rec.actor_id) is None
        assert (await d.ensure_started(rec.actor_id)).generation == 2  # retried afresh
        await d.destroy_actor(rec.actor_id)
        with pytest.raises(RivetError) as info:
            await d.ensure_started(rec.actor_id)
        assert info.value.code == "not_found"
        with pytest.raises(RivetError) as info:
            await d.destroy_actor(rec.actor_id)
        assert info.value.code == "not_found"


@pytest.mark.asyncio
async def test_cancelled_waiter_does_not_cancel_the_start(tmp_path: Path) -> None:
    host = FakeHost(start_delay=0.05)
    async with running(tmp_path, host) as (d, _):
        rec = await d.create_actor("counter", [], None)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(d.ensure_started(rec.actor_id), 0.01)
        assert (await d.ensure_started(rec.actor_id)).generation == 1
        assert host.starts == [(rec.actor_id, 1)]


@pytest.mark.asyncio
async def test_waiters_of_one_start_and_one_stop(tmp_path: Path) -> None:
    # Each waiter has its own future: all get the start's record (or its error), a cancelled
    # one cancels neither the start nor the stop, and a wake waiting for a stop starts anew.
    host = FakeHost(start_delay=0.03, stop_delay=0.03)
    async with running(tmp_path, host) as (d, _):
        rec = await d.create_actor("counter", [], None)
        waits = [asyncio.ensure_future(d.ensure_started(rec.actor_id)) for _ in range(3)]
        await asyncio.sleep(0.005)
        waits[1].cancel()
        done = await asyncio.gather(*waits, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        assert [r.generation for r in (done[0], done[2])] == [1, 1]  # type: ignore[union-attr]
        assert host.starts == [(rec.actor_id, 1)]

        d.request_sleep(rec.actor_id, 1)
        waker = asyncio.ensure_future(d.ensure_started(rec.actor_id))
        cancelled = asyncio.ensure_future(d.ensure_started(rec.actor_id))
        await asyncio.sleep(0.005)
        cancelled.cancel()
        assert (await waker).generation == 2
        assert cancelled.cancelled()
        assert host.stops == [(rec.actor_id, "sleep")]
        assert host.starts == [(rec.actor_id, 1), (rec.actor_id, 2)]

        host.fail_starts = 1
        other = await d.create_actor("counter", ["b"], None)
        failed = await asyncio.gather(
            *(d.ensure_started(other.actor_id) for _ in range(2)), return_exceptions=True
        )
        assert [type(e) for e in failed] == [RuntimeError, RuntimeError]
        assert failed[0] is failed[1]
        assert (await d.ensure_started(other.actor_id)).generation == 2
        # Running: its entry is its record (no slot, so no waiter kept).
        entry = d.placement._slots[rec.actor_id]
        assert isinstance(entry, ActorRecord) and entry.generation == 2


@pytest.mark.asyncio
async def test_shutdown_during_a_failing_start(tmp_path: Path) -> None:
    host = FakeHost(start_delay=0.03)
    host.fail_starts = 1
    d = EmbeddedDriver(tmp_path)
    await d.start(host)
    rec = await d.create_actor("counter", [], None)
    waiting = asyncio.ensure_future(d.ensure_started(rec.actor_id))
    await asyncio.sleep(0.005)
    await asyncio.wait_for(d.stop(), 5)  # waits for the start, which fails: no error here
    with pytest.raises(RuntimeError):
        await waiting
    assert d.placement.loaded() == {}


@pytest.mark.asyncio
async def test_request_destroy_deletes_data(tmp_path: Path) -> None:
    host = FakeHost(stop_delay=0.01)
    destroyed: list[str] = []

    async def async_callback(actor_id: str) -> None:
        await asyncio.sleep(0)
        destroyed.append("async:" + actor_id)

    async with running(tmp_path, host) as (d, _):
        d.on_destroyed(lambda actor_id: destroyed.append("sync:" + actor_id))
        d.on_destroyed(async_callback)
        rec = await d.create_actor("counter", ["a"], None)
        keep = await d.create_actor("counter", ["b"], None)
        await d.ensure_started(rec.actor_id)
        await d.kv_write(rec.actor_id, puts=[(b"\x01", b"state"), (b"\x04k", b"v")])
        await d.kv_write(keep.actor_id, puts=[(b"\x01", b"state")])
        await d.set_alarm(rec.actor_id, int(time.time() * 1000) + 3_600_000)
        d.request_destroy(rec.actor_id, 0)  # stale
        await asyncio.sleep(0.01)
        assert host.stops == []
        d.request_destroy(rec.actor_id, 1)
        d.request_sleep(rec.actor_id, 1)  # already stopping: ignored
        # A wake during the destroy waits for it, then finds the actor gone.
        with pytest.raises(RivetError) as info:
            await d.ensure_started(rec.actor_id)
        assert info.value.code == "not_found"
        assert host.stops == [(rec.actor_id, "destroy")]
        assert destroyed == ["sync:" + rec.actor_id, "async:" + rec.actor_id]
        assert await d.kv_list(rec.actor_id, b"", None) == []
        assert await d.kv_get(keep.actor_id, [b"\x01"]) == [b"state"]
        gone = await d.get_actor(rec.actor_id)
        assert gone is not None and gone.destroy_ts is not None
        assert await d.find_actor("counter", ["a"]) is None
        assert d.alarms.get(rec.actor_id) is None
        alarm = await d.store.read(
            lambda c: c.execute(
                "SELECT alarm_ts FROM actors WHERE actor_id = ?", (rec.actor_id,)
            ).fetchall()
        )
        assert alarm == [(None,)]


@pytest.mark.asyncio
async def test_destroy_actor_wakes_a_sleeping_actor(tmp_path: Path) -> None:
    host = FakeHost()
    async with running(tmp_path, host) as (d, _):
        rec = await d.create_actor("counter", [], None)
        await d.kv_write(rec.actor_id, puts=[(b"\x01", b"state")])
        await d.destroy_actor(rec.actor_id)  # never ran: started, then destroyed
        assert [e[0] for e in host.events] == ["start", "started", "stop", "stopped"]
        assert host.stops == [(rec.actor_id, "destroy")]
        assert await d.kv_get(rec.actor_id, [b"\x01"]) == [None]


@pytest.mark.asyncio
async def test_destroy_requested_during_sleep_stop(tmp_path: Path) -> None:
    host = FakeHost(stop_delay=0.02)
    async with running(tmp_path, host) as (d, _):
        rec = await d.create_actor("counter", [], None)
        await d.ensure_started(rec.actor_id)
        d.request_sleep(rec.actor_id, 1)
        d.request_destroy(rec.actor_id, 1)
        await until(lambda: (rec.actor_id, "destroy") in host.stops)
        await until(lambda: d.placement.loaded() == {})
        assert host.stops == [(rec.actor_id, "sleep"), (rec.actor_id, "destroy")]
        assert await d.find_actor("counter", []) is None


class GatheringHost(FakeHost):
    """A host whose stops each wait until ``expected`` stops have begun."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.all_begun = asyncio.Event()

    async def stop_actor(self, actor_id: str, reason: StopReason) -> None:
        self.events.append(("stop", actor_id, reason))
        if sum(e[0] == "stop" for e in self.events) >= self.expected:
            self.all_begun.set()
        await self.all_begun.wait()
        self.events.append(("stopped", actor_id, reason))


@pytest.mark.asyncio
async def test_stop_shuts_actors_down_concurrently(tmp_path: Path) -> None:
    host = GatheringHost(5)
    d = EmbeddedDriver(tmp_path)
    await d.start(host)
    ids = [(await d.create_actor("counter", [str(i)], None)).actor_id for i in range(5)]
    await asyncio.gather(*(d.ensure_started(i) for i in ids))
    await d.kv_write(ids[0], puts=[(b"\x01", b"saved")])
    # Each stop waits for all five to have begun: one at a time would never finish.
    await asyncio.wait_for(d.stop(), 5)
    assert sorted(host.stops) == sorted((i, "shutdown") for i in ids)
    with pytest.raises(RivetError):
        await d.ensure_started(ids[0])
    # Nothing is destroyed by a shutdown; the next driver sees everything.
    async with running(tmp_path) as (d2, host2):
        assert len(await d2.list_actors()) == 5
        assert await d2.kv_get(ids[0], [b"\x01"]) == [b"saved"]
        assert (await d2.ensure_started(ids[0])).generation == 2
        assert host2.starts == [(ids[0], 2)]


# -- alarms ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_alarm_fires_after_starting_the_actor(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost()
    async with running(tmp_path, host, clock=clock) as (d, _):
        rec = await d.create_actor("timer", [], None)
        now_ms = int(clock() * 1000)
        await d.set_alarm(rec.actor_id, now_ms + 5_000)
        assert d.alarms.next_due() == now_ms + 5_000
        d.poll_alarms()
        await asyncio.sleep(0.01)
        assert host.events == []
        clock.advance(5)
        d.poll_alarms()
        await asyncio.wait_for(host.fired.wait(), 2)
        assert [e[0] for e in host.events] == ["start", "started", "alarm"]
        # Cleared once fire_alarm has returned.
        for _ in range(100):
            stored = await d.store.read(
                lambda c: c.execute(
                    "SELECT alarm_ts FROM actors WHERE actor_id = ?", (rec.actor_id,)
                ).fetchone()
            )
            if stored == (None,):
                break
            await asyncio.sleep(0.005)
        assert stored == (None,)
        assert d.alarms.next_due() is None


@pytest.mark.asyncio
async def test_alarm_rearm_and_cancel(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost()
    async with running(tmp_path, host, clock=clock) as (d, _):
        a = (await d.create_actor("timer", ["a"], None)).actor_id
        b = (await d.create_actor("timer", ["b"], None)).actor_id
        now_ms = int(clock() * 1000)
        await d.set_alarm(a, now_ms + 10_000)
        await d.set_alarm(a, now_ms + 2_000)  # re-armed earlier: replaces
        await d.set_alarm(b, now_ms + 1_000)
        await d.set_alarm(b, None)  # cancelled
        assert d.alarms.next_due() == now_ms + 2_000
        clock.advance(2)
        d.poll_alarms()
        await until(lambda: host.alarms == [a])
        clock.advance(20)
        d.poll_alarms()
        await asyncio.sleep(0.02)
        assert host.alarms == [a]  # neither the replaced nor the cancelled alarm fires
        # Setting it again later than before re-arms it.
        await d.set_alarm(a, int(clock() * 1000) + 1_000)
        clock.advance(1)
        d.poll_alarms()
        await until(lambda: host.alarms == [a, a])


@pytest.mark.asyncio
async def test_due_alarm_fires_by_the_loop_timer(tmp_path: Path) -> None:
    host = FakeHost()
    async with running(tmp_path, host) as (d, _):  # the real clock
        rec = await d.create_actor("timer", [], None)
        await d.set_alarm(rec.actor_id, int(time.time() * 1000) + 30)
        await asyncio.wait_for(host.fired.wait(), 2)
        assert host.alarms == [rec.actor_id]


@pytest.mark.asyncio
async def test_many_alarms_one_timer(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost()
    async with running(tmp_path, host, clock=clock) as (d, _):
        ids = [(await d.create_actor("timer", [str(i)], None)).actor_id for i in range(50)]
        now_ms = int(clock() * 1000)
        for round_ in range(5):  # re-set often: stale heap entries are dropped lazily
            await asyncio.gather(
                *(d.set_alarm(a, now_ms + 1000 * (i % 5 + 1) + round_) for i, a in enumerate(ids))
            )
        assert len(d.alarms) == 50
        clock.advance(3.5)
        d.poll_alarms()
        await until(lambda: len(host.alarms) == 30)
        assert sorted(host.alarms) == sorted(a for i, a in enumerate(ids) if i % 5 < 3)
        clock.advance(10)
        d.poll_alarms()
        await until(lambda: len(host.alarms) == 50)


@pytest.mark.asyncio
async def test_alarms_rebuilt_after_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(tmp_path, clock=clock) as (d, host):
        rec = await d.create_actor("timer", [], None)
        later = await d.create_actor("timer", ["later"], None)
        dead = await d.create_actor("timer", ["dead"], None)
        now_ms = int(clock() * 1000)
        await d.set_alarm(rec.actor_id, now_ms + 5_000)
        await d.set_alarm(later.actor_id, now_ms + 3_600_000)
        await d.set_alarm(dead.actor_id, now_ms + 1_000)
        await d.destroy_actor(dead.actor_id)
    assert host.alarms == []
    clock.advance(6)  # the process was down when the alarm came due
    async with running(tmp_path, clock=clock) as (d2, host2):
        assert d2.alarms.get(later.actor_id) == now_ms + 3_600_000
        assert d2.alarms.get(dead.actor_id) is None
        await asyncio.wait_for(host2.fired.wait(), 2)
        assert [e[0] for e in host2.events] == ["start", "started", "alarm"]
        assert host2.alarms == [rec.actor_id]


@pytest.mark.asyncio
async def test_alarm_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    host = FakeHost()
    async with running(tmp_path, host, clock=clock) as (d, _):
        rec = await d.create_actor("timer", [], None)
        host.fail_starts = 1
        await d.set_alarm(rec.actor_id, int(clock() * 1000))
        await until(lambda: any("alarm of actor" in r.message for r in caplog.records))
        assert caplog.records[-1].name == "rivetkit.driver"
        # Not cleared: a failed alarm is kept for the next start of the process.
        stored = await d.store.read(
            lambda c: c.execute(
                "SELECT alarm_ts FROM actors WHERE actor_id = ?", (rec.actor_id,)
            ).fetchone()
        )
        assert stored == (int(clock() * 1000),)
        await d.set_alarm("unknown-actor", int(clock() * 1000))  # not found: dropped quietly
        await asyncio.sleep(0.02)


# -- the data directory lock -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_second_driver_on_the_same_dir_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path):
        second = EmbeddedDriver(tmp_path)
        with pytest.raises(RivetError) as info:
            await second.start(FakeHost())
        err = info.value
        assert (err.group, err.code) == ("driver", "data_dir_locked")
        assert err.message == (
            f"data directory {tmp_path} is in use by another rivetkit process "
            f"(pid {os.getpid()}); stop it or use another --data directory"
        )
        await second.stop()  # harmless after a failed start
    async with running(tmp_path):  # released by stop()
        pass


# -- durability across SIGKILL -----------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from rivetkit.drivers.embedded import EmbeddedDriver

    class Host:
        async def start_actor(self, record, generation): pass
        async def stop_actor(self, actor_id, reason): pass
        async def fire_alarm(self, actor_id): pass

    async def main():
        driver = EmbeddedDriver(sys.argv[1])
        await driver.start(Host())
        print("ready", flush=True)

        async def writer(w):
            i = 0
            while True:
                key = b"%02d-%08d" % (w, i)
                # Two keys per write: atomicity is checked after the kill too.
                await driver.kv_write(f"actor-{w}", puts=[(b"a" + key, key), (b"b" + key, key)])
                sys.stdout.write(key.decode() + "\\n")
                sys.stdout.flush()
                i += 1

        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main())
    """
)


@pytest.mark.asyncio
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    acked: list[str] = []
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line == b"ready\n"
        # While it runs, the child owns the directory.
        with pytest.raises(RivetError) as info:
            await EmbeddedDriver(tmp_path).start(FakeHost())
        assert info.value.code == "data_dir_locked"
        assert f"(pid {proc.pid})" in info.value.message
        while len(acked) < 2000:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line.endswith(b"\n"), "the child died"
            acked.append(line.decode().strip())
        proc.send_signal(signal.SIGKILL)
        # Lines already written before the kill were acknowledged too.
        rest = await asyncio.wait_for(proc.stdout.read(), 10)
        acked += [part.decode() for part in rest.split(b"\n")[:-1]]
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async with running(tmp_path) as (d, _):  # the lock died with the process
        for w in range(8):
            entries = dict(await d.kv_list(f"actor-{w}", b"", None))
            mine = [k for k in acked if k.startswith(f"{w:02d}-")]
            for key in mine:
                assert entries.get(b"a" + key.encode()) == key.encode(), key
            # Each write is all or nothing, acknowledged or not.
            a_keys = {k[1:] for k in entries if k.startswith(b"a")}
            b_keys = {k[1:] for k in entries if k.startswith(b"b")}
            assert a_keys == b_keys
            # And nothing beyond the acknowledged ones but the in-flight writes.
            assert len(a_keys) - len(mine) <= 1
