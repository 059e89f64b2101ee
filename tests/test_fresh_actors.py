"""A new actor's KV reads need no store trip: the embedded driver knows its KV is empty
until the first write to it is submitted (rivetkit/drivers/embedded/fresh.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.drivers.embedded import fresh as fresh_module
from rivetkit.drivers.embedded.fresh import FreshActors
from rivetkit.drivers.embedded.offline import kv_put_if_absent
from rivetkit.runtime import keys
from rivetkit.runtime.conns import ActorConns
from rivetkit.runtime.queue import ActorQueue
from rivetkit.runtime.schedule import ActorSchedule
from rivetkit.testing import setup_runtime

TRACES_END = keys.TRACES_PREFIX[:-1] + bytes((keys.TRACES_PREFIX[-1] + 1,))


class _Host:
    async def start_actor(self, record: Any, generation: int) -> None:
        return None

    async def stop_actor(self, actor_id: str, reason: Any) -> None:
        return None

    async def fire_alarm(self, actor_id: str) -> None:
        return None


async def _driver(tmp_path: Path) -> EmbeddedDriver:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(_Host())  # type: ignore[arg-type]
    return driver


def test_fresh_actors_forget_the_oldest_past_the_limit() -> None:
    fresh = FreshActors(limit=2)
    for actor_id in ("a", "b", "c"):
        fresh.created(actor_id)
    assert "a" not in fresh and "b" in fresh and "c" in fresh and len(fresh) == 2
    fresh.written("b")
    fresh.written("never-created")
    assert "b" not in fresh and len(fresh) == 1


@pytest.mark.asyncio
async def test_a_created_actor_reads_empty_without_a_store_trip(tmp_path: Path) -> None:
    driver = await _driver(tmp_path)
    try:
        record, created = await driver.get_or_create_actor("counter", ["a"], None)
        assert created
        reads = driver.store.read_ops
        assert await driver.kv_get(record.actor_id, [keys.PERSIST, b"x"]) == [None, None]
        assert await driver.kv_list(record.actor_id, keys.QUEUE_METADATA, None) == []
        assert await driver.kv_list(record.actor_id, b"\x04", b"\x05") == []
        assert driver.store.read_ops == reads
        # The same argument checks as the store's.
        with pytest.raises(TypeError, match="KV keys must be bytes"):
            await driver.kv_get(record.actor_id, ["x"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="KV range bounds must be bytes"):
            await driver.kv_list(record.actor_id, b"", "z")  # type: ignore[arg-type]
        # Found again, not created: nothing changes; create_actor marks its actor too.
        again, created = await driver.get_or_create_actor("counter", ["a"], None)
        assert not created and again.actor_id == record.actor_id
        other = await driver.create_actor("counter", ["b"], None)
        assert other.actor_id in driver.fresh
        assert driver.kv_known_empty(other.actor_id) and driver.kv_known_empty(record.actor_id)
        assert not driver.kv_known_empty("never-created")
    finally:
        await driver.stop()


@pytest.mark.asyncio
async def test_reads_that_may_see_an_offline_write_go_to_the_store(tmp_path: Path) -> None:
    driver = await _driver(tmp_path)
    try:
        record = await driver.create_actor("counter", ["a"], None)
        actor_id = record.actor_id
        # rivetkit inspect token: its own SQLite connection, around the driver.
        token = kv_put_if_absent(tmp_path, actor_id, keys.INSPECTOR_TOKEN, b"t" * 43)
        assert token == b"t" * 43 and actor_id in driver.fresh
        reads = driver.store.read_ops
        assert await driver.kv_get(actor_id, [keys.PERSIST, keys.INSPECTOR_TOKEN]) == [
            None,
            token,
        ]
        assert await driver.kv_list(actor_id, b"", None) == [(keys.INSPECTOR_TOKEN, token)]
        assert await driver.kv_list(actor_id, memoryview(b"\x03"), b"\x04") == [
            (keys.INSPECTOR_TOKEN, token)
        ]
        assert driver.store.read_ops == reads + 3
    finally:
        await driver.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["kv_write", "kv_put_soon", "kv_delete_range"])
async def test_a_read_after_a_submitted_write_sees_it(tmp_path: Path, how: str) -> None:
    driver = await _driver(tmp_path)
    try:
        record = await driver.create_actor("counter", ["a"], None)
        actor_id = record.actor_id
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if how == "kv_write":
            write = asyncio.ensure_future(driver.kv_write(actor_id, puts=[(b"k", b"v")]))
        elif how == "kv_put_soon":
            assert driver.kv_put_soon(actor_id, [(b"k", b"v")], lambda ok, v: done.set_result(ok))
            write = done
        else:
            write = asyncio.ensure_future(driver.kv_delete_range(actor_id, b"", None))
        await asyncio.sleep(0)  # the write's task runs up to its submission
        assert actor_id not in driver.fresh  # forgotten when submitted, before the commit
        assert not driver.kv_known_empty(actor_id)
        reads = driver.store.read_ops
        read = await driver.kv_get(actor_id, [b"k"])  # submitted after: sees the write
        await write
        assert read == ([None] if how == "kv_delete_range" else [b"v"])
        assert driver.store.read_ops == reads + 1
    finally:
        await driver.stop()


counter = actor("counter", state={"count": 0}, options=ActorOptions(sleep_timeout=0.05))


@counter.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@pytest.mark.asyncio
async def test_a_new_actor_starts_and_sleeps_without_reads(tmp_path: Path) -> None:
    async with setup_runtime(setup(use=[counter]), tmp_path) as client:
        driver = client.driver
        assert driver is not None
        reads = driver.store.read_ops
        handle = client.get_or_create("counter", ["a"])
        assert await handle.increment(2) == 2
        actor_id = await handle.resolve()
        runtime = client.runtime
        instance = runtime.instances[actor_id]
        assert instance.traces is not None
        instance.request_sleep()
        for _ in range(200):
            if actor_id not in runtime.instances:
                break
            await asyncio.sleep(0.01)
        assert actor_id not in runtime.instances
        # Its start read only the keys an offline writer may have put (the inspector token),
        # in the operation that counted its generation (no read of its own); its
        # connections, queue, schedules and stored trace chunks were known empty.
        assert driver.store.read_ops == reads
        # What it wrote is there: its state, its token, one trace chunk.
        stored = await driver.kv_get(actor_id, [keys.PERSIST, keys.INSPECTOR_TOKEN])
        assert all(value is not None for value in stored)
        assert len(await driver.kv_list(actor_id, keys.TRACES_PREFIX, TRACES_END)) == 1
        # The next wake reads what was stored.
        reads = driver.store.read_ops
        assert await handle.increment(1) == 3
        assert driver.store.read_ops > reads


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each call of the start's reads of connections, queue and recurring schedules
    (``schedule`` only when it reads: not with ``empty=True``)."""
    calls: list[str] = []

    def counted(name: str, original: Any) -> Any:
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("empty"):
                calls.append(name)
            return await original(self, *args, **kwargs)

        return wrapper

    for cls, method, name in (
        (ActorConns, "restore", "conns"),
        (ActorQueue, "load", "queue"),
        (ActorSchedule, "load", "schedule"),
    ):
        monkeypatch.setattr(cls, method, counted(name, getattr(cls, method)))
    return calls


@pytest.mark.asyncio
async def test_a_new_actor_skips_the_loads_its_empty_kv_makes_pointless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_loads(monkeypatch)
    async with setup_runtime(setup(use=[counter]), tmp_path) as client:
        driver = client.driver
        assert driver is not None
        handle = client.get_or_create("counter", ["a"])
        assert await handle.increment(2) == 2
        actor_id = await handle.resolve()
        assert calls == []  # known empty: nothing to read
        instance = client.runtime.instances[actor_id]
        assert instance.queue.size == 0 and not instance.conns
        assert instance.schedule.next_trigger() is None
        instance.request_sleep()
        for _ in range(200):
            if actor_id not in client.runtime.instances:
                break
            await asyncio.sleep(0.01)
        assert actor_id not in client.runtime.instances
        # Its wake reads everything: its KV holds what it wrote.
        assert await handle.increment(1) == 3
        assert calls == ["conns", "queue", "schedule"]

        # Created, then written before its first start: not known empty, read in full.
        calls.clear()
        record, _ = await driver.get_or_create_actor("counter", ["b"], None)
        await driver.kv_write(record.actor_id, puts=[(b"\x09unrelated", b"x")])
        assert await client.get_or_create("counter", ["b"]).increment(5) == 5
        assert calls == ["conns", "queue", "schedule"]


@pytest.mark.asyncio
async def test_a_new_actor_starts_alike_with_and_without_the_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its queue, schedules and alarm after the start, and what they do next, are the same
    # when the driver does not tell that the KV is empty (every load runs, reading nothing).
    async def one(path: Path) -> list[Any]:
        async with setup_runtime(setup(use=[counter]), path) as client:
            handle = client.get_or_create("counter", ["a"])
            assert await handle.increment(1) == 1
            instance = client.runtime.instances[await handle.resolve()]
            seen: list[Any] = [
                instance.queue.size,
                instance.queue._next_id,
                dict(instance.schedule._recurring),
                instance.schedule._pushed_alarm,
                instance.schedule.next_trigger(),
                sorted(instance.conns),
            ]
            await instance.schedule.after(60, "increment", 1)
            seen += [len(instance.scheduled_events()), instance.schedule._pushed_alarm is not None]
            return seen

    skipped = await one(tmp_path / "skip")
    calls = _count_loads(monkeypatch)
    monkeypatch.setattr(EmbeddedDriver, "kv_known_empty", lambda self, actor_id: False)
    loaded = await one(tmp_path / "load")
    assert calls == ["conns", "queue", "schedule"]
    assert skipped == loaded


def test_empty_range_answers_as_the_offline_keys_say() -> None:
    # Kept answers for bytes bounds, computed ones for other bytes-like bounds: the same.
    fresh = FreshActors()
    fresh.created("a")
    token = keys.INSPECTOR_TOKEN
    after = token + b"\x00"
    bounds: list[tuple[Any, Any]] = [
        (b"", None),
        (token, None),
        (token, after),
        (after, None),
        (b"\x04", b"\x05"),
        (b"", token),
        (keys.CONN_PREFIX, b"\x03"),
        (memoryview(token), bytearray(after)),
        (bytearray(b"\x04"), None),
    ]
    for start, end in bounds * 2:  # the second time from the kept answers
        holds_token = bytes(start) <= token and (end is None or token < bytes(end))
        assert fresh.empty_range("a", start, end) is not holds_token, (start, end)
        assert fresh.empty_range("not-fresh", start, end) is False
    for i in range(600):  # many distinct ranges: the kept answers stay bounded
        assert fresh.empty_range("a", b"\x09%d" % i, None)
    assert len(fresh_module._EMPTY_RANGES) <= fresh_module._MAX_RANGES + 1
    assert fresh.empty_range("a", token, after) is False
