"""The durable queue (``c.queue``) in-process: storage bytes, FIFO order, limits, waits,
completion, aborts, sleep and restarts, in both queue-scan twins.

The ``qs`` fixture binds ``rivetkit.runtime.queue`` to the pure (``py``) or compiled (``cy``)
queue-scan twin for the test, so every runtime path (loading the index, keys) runs on each.
The HTTP route and the clients are in ``test_queue_server.py``; crashes (SIGKILL) in
``test_queue_crash.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import cbor2
import pytest

from conftest import eventually, twin
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE, QUEUE_METADATA, QueueMetadata
from rivetkit.protocol.actor_persist import QueueMessage as StoredMessage
from rivetkit.runtime import _queuescan_py, keys, queue_index
from rivetkit.runtime import queue as queue_mod
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.runtime.queue import HARD_MAX_MESSAGE_SIZE, ActorQueue, QueueMessage
from rivetkit.testing import TestClient, setup_test

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["py", "cy"])
def qs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The queue-scan twin the runtime's queue uses for this test."""
    module = twin(request.param, "_queuescan", _queuescan_py)
    monkeypatch.setattr(queue_mod, "message_key", module.message_key)
    for name in ("message_id", "peek_name", "scan"):
        monkeypatch.setattr(queue_index, name, getattr(module, name))
    return module


def make_box(**options: Any) -> Any:
    """An actor with a queue and a few actions using it."""
    box = actor("box", state={"log": []}, options=ActorOptions(**options))

    @box.action
    async def push(c: ActorContext, name: str, body: Any) -> None:
        await c.queue.send(name, body)

    @box.action
    async def take(c: ActorContext, names: Any = None, count: int = 1) -> list[Any]:
        batch = await c.queue.try_next_batch(names, count=count)
        return [[m.id, m.name, m.body] for m in batch]

    return box


async def queue_of(client: TestClient, name: str = "box", key: Any = None) -> ActorQueue:
    return (await instance_of(client, name, key)).queue


async def instance_of(client: TestClient, name: str = "box", key: Any = None) -> ActorInstance:
    actor_id = await client.get_or_create(name, key).resolve()
    return await client.runtime.instance(actor_id)


async def raises(group: str, code: str, awaitable: Any) -> RivetError:
    with pytest.raises(RivetError) as info:
        await awaitable
    assert (info.value.group, info.value.code) == (group, code), info.value
    return info.value


async def stored(instance: ActorInstance) -> tuple[QueueMetadata | None, list[tuple[int, Any]]]:
    """The queue as persisted: (metadata, [(id, StoredMessage)])."""
    driver = instance.driver
    (meta,) = await driver.kv_get(instance.actor_id, [keys.QUEUE_METADATA])
    entries = await driver.kv_list(instance.actor_id, b"\x05\x01\x02", b"\x05\x01\x03")
    messages = [(int.from_bytes(k[3:], "big"), QUEUE_MESSAGE.decode(v)) for k, v in entries]
    return (None if meta is None else QUEUE_METADATA.decode(meta)), messages


# -- storage -----------------------------------------------------------------------------------


async def test_storage_layout_is_rivetkits(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        instance = await instance_of(client)
        queue = instance.queue
        before = time.time()
        assert await queue.send("job", {"x": 42}) is None
        assert await queue.send("mail", "hi") is None
        meta, messages = await stored(instance)
        assert meta == QueueMetadata(3, 2)
        assert [i for i, _ in messages] == [1, 2]
        first = messages[0][1]
        assert first.name == "job" and cbor2.loads(first.body) == {"x": 42}
        assert before * 1000 - 1 <= first.created_at <= time.time() * 1000 + 1
        assert (first.failure_count, first.available_at, first.in_flight) == (None, None, None)
        # Exact bytes: key [5,1,2]+u64be(1), value vbare v4 (runtime spec §2.6).
        (raw,) = await instance.driver.kv_get(instance.actor_id, [qs.message_key(1)])
        assert qs.message_key(1).hex() == "0501020000000000000001"
        expected = QUEUE_MESSAGE.encode(
            StoredMessage("job", bytes.fromhex("a1617818 2a".replace(" ", "")), first.created_at,
                          None, None, None, None)
        )  # fmt: skip
        assert raw == expected and raw[:2] == b"\x04\x00"
        # A receive deletes the message and updates the metadata in the same write.
        assert [m.body for m in await queue.try_next_batch()] == [{"x": 42}]
        meta, messages = await stored(instance)
        assert meta == QueueMetadata(3, 1)
        assert [i for i, _ in messages] == [2]


async def test_queues_share_only_empty_dicts(qs: ModuleType) -> None:
    # A queue starts with the shared empty index and waiter dicts (no two dicts per actor)
    # and writes only to dicts of its own: the shared ones stay empty.
    async with setup_test(setup(use=[make_box()])) as client:
        first = await queue_of(client, key=["a"])
        second = await queue_of(client, key=["b"])
        assert first._messages is second._messages is queue_mod._NO_MESSAGES
        assert first._waiters is second._waiters is queue_mod._NO_WAITERS
        sent = asyncio.ensure_future(first.send("job", 1, wait=True, timeout=5))
        await eventually(lambda: len(first._messages) == 1)
        assert first._messages is not queue_mod._NO_MESSAGES and first._waiters
        [message] = await first.try_next_batch(completable=True)
        await message.complete({"ok": True})
        assert await sent == {"status": "completed", "response": {"ok": True}}
        await second.send("mail", 2)
        await second.reset()
        assert second._messages is queue_mod._NO_MESSAGES and second.size == 0
        assert not queue_mod._NO_MESSAGES and not queue_mod._NO_WAITERS


async def test_ids_continue_after_restart_and_from_metadata(qs: ModuleType, tmp_path: Path) -> None:
    registry = setup(use=[make_box()])
    async with setup_test(registry, data_dir=tmp_path) as client:
        queue = await queue_of(client)
        for n in range(3):
            await queue.send("a", n)
        assert [m.id for m in await queue.try_next_batch(count=3)] == [1, 2, 3]
    async with setup_test(registry, data_dir=tmp_path) as client:
        queue = await queue_of(client)
        assert queue.size == 0
        await queue.send("a", "again")
        message = await queue.try_next()
        assert message is not None and message.id == 4  # next_id from [5,1,1], never reused


async def test_legacy_data_is_loaded(qs: ModuleType, tmp_path: Path) -> None:
    """Messages written by another implementation (same bytes) load in FIFO order; an
    unreadable entry is skipped, as RivetKit does."""
    registry = setup(use=[make_box()])
    async with setup_test(registry, data_dir=tmp_path) as client:
        instance = await instance_of(client)
        actor_id = instance.actor_id
    async with setup_test(registry, data_dir=tmp_path) as client:
        driver = client.runtime.driver
        puts = [
            (qs.message_key(i), QUEUE_MESSAGE.encode(StoredMessage(f"n{i}", cbor2.dumps(i), i,
                                                                   None, None, None, None)))
            for i in (7, 3, 5)
        ]  # fmt: skip
        puts.append((b"\x05\x01\x02\x00", b"junk"))  # a bad key under the prefix
        puts.append((keys.QUEUE_METADATA, QUEUE_METADATA.encode(QueueMetadata(2, 3))))
        await driver.kv_write(actor_id, puts=puts)
        queue = (await client.runtime.instance(actor_id)).queue
        assert queue.size == 3
        batch = await queue.try_next_batch(count=10)
        assert [(m.id, m.name, m.body, m.created_at) for m in batch] == [
            (3, "n3", 3, 3),
            (5, "n5", 5, 5),
            (7, "n7", 7, 7),
        ]
        await queue.send("x", None)
        message = await queue.try_next()
        assert message is not None and message.id == 8  # max(meta.next_id, last + 1)


# -- FIFO --------------------------------------------------------------------------------------


async def test_fifo_with_10000_messages(qs: ModuleType, tmp_path: Path) -> None:
    registry = setup(use=[make_box(max_queue_size=20_000)])
    n = 10_000
    async with setup_test(registry, data_dir=tmp_path) as client:
        queue = await queue_of(client)
        store = client.runtime.driver.store
        transactions = store.transactions
        # Concurrent senders: ids follow call order, writes share group commits.
        await asyncio.gather(*(queue.send("jobs" if i % 3 else "other", i) for i in range(n)))
        assert store.transactions - transactions < n // 2
        assert queue.size == n
        # Half of them now, by name...
        got = []
        while len(got) < 3000:
            got.extend(m.body for m in await queue.next_batch("jobs", count=500))
        assert got == [i for i in range(n) if i % 3][:3000]
    # ...and the rest after a restart, in order, all names.
    async with setup_test(registry, data_dir=tmp_path) as client:
        queue = await queue_of(client)
        assert queue.size == n - 3000
        rest = []
        while True:
            batch = await queue.try_next_batch(count=1000)
            if not batch:
                break
            ids = [m.id for m in batch]
            assert ids == sorted(ids)
            rest.extend(m.body for m in batch)
        taken = set(got)
        assert rest == [i for i in range(n) if i not in taken]


# -- limits ------------------------------------------------------------------------------------


async def test_message_size_is_measured_on_the_encoded_message(qs: ModuleType) -> None:
    limit = 300
    async with setup_test(setup(use=[make_box(max_queue_message_size=limit)])) as client:
        queue = await queue_of(client)

        def size(n: int) -> int:
            body = cbor2.dumps("a" * n)
            return len(QUEUE_MESSAGE.encode(StoredMessage("q", body, 0, None, None, None, None)))

        n = max(n for n in range(limit) if size(n) <= limit)
        assert size(n) == limit  # exactly at the limit (CBOR and BARE lengths included)
        fits = "a" * n
        await queue.send("q", fits)
        error = await raises("queue", "message_too_large", queue.send("q", fits + "a"))
        assert error.metadata == {"size": limit + 1, "limit": limit}
        assert queue.size == 1
    big = make_box(max_queue_message_size=1 << 20)  # more than RivetKit's hard cap
    async with setup_test(setup(use=[big])) as client:
        queue = await queue_of(client)
        too_big = "x" * HARD_MAX_MESSAGE_SIZE
        error = await raises("queue", "message_too_large", queue.send("q", too_big))
        assert error.metadata["limit"] == HARD_MAX_MESSAGE_SIZE
        await queue.send("q", "x" * (HARD_MAX_MESSAGE_SIZE - 100))


async def test_count_limit(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box(max_queue_size=3)])) as client:
        queue = await queue_of(client)
        for n in range(3):
            await queue.send("q", n)
        error = await raises("queue", "full", queue.send("q", 3))
        assert error.metadata == {"limit": 3, "size": 3}
        # An in-flight completable message still counts; a completed one does not.
        message = await queue.next(completable=True)
        assert message is not None
        await raises("queue", "full", queue.send("q", 3))
        await message.complete()
        await queue.send("q", 3)
        # Concurrent sends never overshoot the limit.
        assert queue.size == 3
        await queue.reset()
        results = await asyncio.gather(
            *(queue.send("q", n) for n in range(10)), return_exceptions=True
        )
        assert sum(r is None for r in results) == 3
        assert all(isinstance(r, RivetError) and r.code == "full" for r in results[3:])


async def test_invalid_names_and_payloads(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        queue = await queue_of(client)
        await raises("queue", "message_invalid", queue.send("", 1))
        await raises("queue", "message_invalid", queue.send(5, 1))  # type: ignore[arg-type]
        await raises("queue", "invalid_payload", queue.send("q", object()))
        assert queue.size == 0


# -- receiving ---------------------------------------------------------------------------------


async def test_names_count_and_timeouts(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        queue = await queue_of(client)
        assert await queue.try_next() is None
        assert await queue.try_next_batch(count=5) == []
        started = time.monotonic()
        assert await queue.next(timeout=0.05) is None
        assert await queue.next_batch(count=3, timeout=0.05) == []
        assert time.monotonic() - started >= 0.09
        for name, body in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]:
            await queue.send(name, body)
        assert [m.body for m in await queue.next_batch(["b", "c"], count=2)] == [2, 4]
        assert [m.body for m in await queue.next_batch("a", count=5)] == [1, 3]
        assert [m.body for m in await queue.next_batch([], count=0)] == [5]  # [] = all; count>=1
        # A waiting receive gets a message sent later, as soon as it is durable.
        waiting = asyncio.ensure_future(queue.next("late", timeout=5))
        await asyncio.sleep(0.01)
        await queue.send("other", 0)
        await queue.send("late", "here")
        message = await waiting
        assert message is not None and message.body == "here"
        # wait_for_names: the message, or queue.timed_out.
        assert (await queue.wait_for_names(["other"], timeout=1)).body == 0
        error = await raises("queue", "timed_out", queue.wait_for_names(["x"], timeout=0.02))
        assert error.metadata == {"timeout_ms": 20}
        # wait_for_names_available waits without consuming.
        later = asyncio.ensure_future(queue.wait_for_names_available(["y"], timeout=5))
        await asyncio.sleep(0.01)
        assert not later.done()
        await queue.send("y", 1)
        await later
        assert queue.size == 1
        await raises("queue", "timed_out", queue.wait_for_names_available(["z"], timeout=0.01))


async def test_iter_and_abort_by_signal(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        queue = await queue_of(client)
        stop = asyncio.Event()
        seen: list[Any] = []

        async def consume() -> None:
            async for message in queue.iter("jobs", signal=stop):
                seen.append(message.body)

        task = asyncio.ensure_future(consume())
        for n in range(5):
            await queue.send("jobs", n)
        await eventually(lambda: len(seen) == 5)
        stop.set()
        await asyncio.wait_for(task, 2)  # the loop ends quietly on abort
        assert seen == [0, 1, 2, 3, 4]
        await raises("actor", "aborted", queue.next(signal=stop))
        await raises("actor", "aborted", queue.wait_for_names(["a"], signal=stop))


async def test_actor_abort_ends_waits_and_waits_do_not_keep_it_awake(qs: ModuleType) -> None:
    sleepy = actor("sleepy", state={"n": 0}, options=ActorOptions(sleep_timeout=0.05))
    outcome: list[Any] = []

    @sleepy.run
    async def run(c: ActorContext) -> None:
        try:
            await c.queue.next("never")
        except RivetError as exc:
            outcome.append((exc.group, exc.code, c.aborted))

    async with setup_test(setup(use=[sleepy])) as client:
        instance = await instance_of(client, "sleepy")
        # The run loop waits on the queue: the actor still falls asleep, aborting the wait.
        await eventually(lambda: instance.phase == Phase.TERMINATED, timeout=3)
        assert outcome == [("actor", "aborted", True)]
        # A send wakes it (the transport resolves the instance first).
        woken = await instance_of(client, "sleepy")
        assert woken is not instance
        await woken.queue.send("other", 1)
        assert woken.queue.size == 1


# -- completion --------------------------------------------------------------------------------


async def test_completable_receive_and_complete(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        instance = await instance_of(client)
        queue = instance.queue
        waiting = asyncio.ensure_future(queue.send("job", {"x": 2}, wait=True, timeout=5))
        message = await queue.next("job", completable=True, timeout=5)
        assert isinstance(message, QueueMessage) and message.completable
        # Still stored until completed; and nothing else is received meanwhile.
        assert [i for i, _ in (await stored(instance))[1]] == [1]
        await queue.send("job", 2)
        await raises("queue", "previous_message_not_completed", queue.try_next())
        await raises("queue", "previous_message_not_completed", queue.next(timeout=0))
        await message.complete({"doubled": 4})
        assert message.completed
        assert await waiting == {"status": "completed", "response": {"doubled": 4}}
        assert [i for i, _ in (await stored(instance))[1]] == [2]
        await raises("queue", "already_completed", message.complete())
        plain = await queue.try_next()
        assert plain is not None and not plain.completable
        await raises("queue", "complete_not_configured", plain.complete())
        # A batch: complete every message (concurrently: one group commit) before the next.
        for n in range(4):
            await queue.send("b", n)
        batch = await queue.next_batch("b", count=10, completable=True)
        assert [m.body for m in batch] == [0, 1, 2, 3]
        await raises("queue", "previous_message_not_completed", queue.next_batch(timeout=0))
        await asyncio.gather(*(m.complete(m.body) for m in batch))
        assert queue.size == 0 and await queue.try_next() is None


async def test_completion_payload_must_encode_when_someone_waits(qs: ModuleType) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        queue = await queue_of(client)
        waiting = asyncio.ensure_future(queue.send("job", 1, wait=True, timeout=5))
        message = await queue.next(completable=True, timeout=5)
        assert message is not None
        await raises("queue", "invalid_completion_payload", message.complete(object()))
        assert not message.completed  # still completable
        await message.complete("fine")
        assert await waiting == {"status": "completed", "response": "fine"}


async def test_enqueue_and_wait(qs: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        instance = await instance_of(client)
        queue = instance.queue
        # The waiter exists before the message is persisted (seed lesson 15).
        seen: list[bool] = []
        original = instance.driver.kv_write

        async def kv_write(actor_id: str, puts: Any = (), deletes: Any = ()) -> None:
            if any(key.startswith(b"\x05\x01\x02") for key, _ in puts):
                seen.append(queue._next_id - 1 in queue._waiters)
            await original(actor_id, puts, deletes)

        monkeypatch.setattr(instance.driver, "kv_write", kv_write)

        async def consumer() -> None:
            message = await queue.next(completable=True)
            assert message is not None
            await message.complete({"echo": message.body})

        task = asyncio.ensure_future(consumer())
        assert await queue.enqueue_and_wait("rpc", 7, timeout=5) == {"echo": 7}
        await task
        assert seen == [True]
        # Timeout: queue.timed_out; the message stays queued (it is not withdrawn).
        error = await raises("queue", "timed_out", queue.enqueue_and_wait("rpc", 8, timeout=0.03))
        assert error.metadata == {"timeout_ms": 30}
        assert queue.size == 1 and queue._waiters == {}
        assert await queue.send("rpc", 9, wait=True, timeout=0.02) == {"status": "timedOut"}
        # A signal aborts the wait.
        stop = asyncio.Event()
        waiting = asyncio.ensure_future(queue.enqueue_and_wait("rpc", 10, signal=stop))
        await asyncio.sleep(0.01)
        stop.set()
        await raises("actor", "aborted", waiting)
        # Reset drops the messages and fails their waiters.
        waiting = asyncio.ensure_future(queue.enqueue_and_wait("rpc", 11, timeout=5))
        await asyncio.sleep(0.01)
        await queue.reset()
        await raises("queue", "completion_waiter_dropped", waiting)
        assert queue.size == 0
        meta, messages = await stored(instance)
        assert messages == [] and meta is not None and meta.size == 0


async def test_stop_fails_waiters_and_redelivers_in_flight(qs: ModuleType, tmp_path: Path) -> None:
    registry = setup(use=[make_box()])
    async with setup_test(registry, data_dir=tmp_path) as client:
        instance = await instance_of(client)
        queue = instance.queue
        waiting = asyncio.ensure_future(queue.enqueue_and_wait("job", "a"))
        await eventually(lambda: queue.size == 1)
        await queue.send("job", "b")
        message = await queue.next(completable=True, timeout=5)
        assert message is not None and message.body == "a"
        instance.request_sleep()
        await raises("queue", "completion_waiter_dropped", waiting)
        await eventually(lambda: instance.phase == Phase.TERMINATED)
        # The next generation gets both again, in order.
        queue = await queue_of(client)
        batch = await queue.next_batch(count=5, completable=True, timeout=1)
        assert [(m.id, m.body) for m in batch] == [(1, "a"), (2, "b")]
    async with setup_test(registry, data_dir=tmp_path) as client:
        queue = await queue_of(client)
        assert queue.size == 2  # never completed: still there after a restart


async def test_failed_writes_change_nothing(
    qs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with setup_test(setup(use=[make_box()])) as client:
        instance = await instance_of(client)
        queue = instance.queue
        await queue.send("q", 1)
        original = instance.driver.kv_write
        fail = True

        async def kv_write(actor_id: str, puts: Any = (), deletes: Any = ()) -> None:
            if fail:
                raise OSError("disk on fire")
            await original(actor_id, puts, deletes)

        monkeypatch.setattr(instance.driver, "kv_write", kv_write)
        with pytest.raises(OSError):
            await queue.send("q", 2)
        assert queue.size == 1
        with pytest.raises(OSError):
            await queue.try_next()  # the delete failed: the message stays
        assert queue.size == 1
        fail = False
        message = await queue.next(completable=True, timeout=1)
        assert message is not None and message.body == 1
        fail = True
        with pytest.raises(OSError):
            await message.complete()
        assert not message.completed
        fail = False
        await message.complete()
        assert queue.size == 0
        await queue.send("q", 3)
        last = await queue.try_next()
        assert last is not None and last.id == 3  # id 2 was spent by the failed send


# -- the worker example ------------------------------------------------------------------------


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"_queue_example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_worker_example(qs: ModuleType) -> None:
    module = load_example("worker")
    async with setup_test(module.registry) as client:
        handle = client.worker.get_or_create(["w"])
        queue = await queue_of(client, "worker", ["w"])
        results = await asyncio.gather(
            *(queue.send("jobs", {"x": n}, wait=True, timeout=10) for n in range(5))
        )
        assert results == [
            {"status": "completed", "response": {"doubled": 2 * n}} for n in range(5)
        ]
        assert await handle.processed() == 5


async def test_cancelled_callers_leave_a_consistent_index(qs: ModuleType, tmp_path: Path) -> None:
    """A caller cancelled while its write is in flight changes nothing: the index follows
    the write's outcome (the message is there if it was stored)."""
    registry = setup(use=[make_box()])
    async with setup_test(registry, data_dir=tmp_path) as client:
        queue = await queue_of(client)
        sending = asyncio.ensure_future(queue.send("q", "kept"))
        await asyncio.sleep(0)  # its write is submitted
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        message = await queue.next(completable=True, timeout=2)
        assert message is not None and message.body == "kept"
        waiting = asyncio.ensure_future(queue.send("q", "w", wait=True, timeout=5))
        await eventually(lambda: queue.size == 2)
        completing = asyncio.ensure_future(message.complete("done"))
        await asyncio.sleep(0)
        completing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await completing
        await eventually(lambda: not queue._outstanding)  # completed once its delete committed
        assert queue.size == 1
        last = await queue.try_next()
        assert last is not None and last.body == "w"
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    async with setup_test(registry, data_dir=tmp_path) as client:
        assert (await queue_of(client)).size == 0


async def test_sender_cancelled_during_the_write_leaves_no_waiter() -> None:
    """A waiting sender cancelled while its message is being written (its HTTP client left)
    unregisters its completion waiter; the message is still written and delivered."""
    async with setup_test(setup(use=[make_box()])) as client:
        queue = await queue_of(client)
        instance = await instance_of(client)
        gate = asyncio.Event()
        real_write = instance.driver.kv_write

        async def slow_write(*args: Any, **kwargs: Any) -> None:
            await gate.wait()
            await real_write(*args, **kwargs)

        instance.driver.kv_write = slow_write  # type: ignore[method-assign]
        sender = asyncio.ensure_future(queue.send("job", {"n": 1}, wait=True, timeout=3600))
        await eventually(lambda: queue._waiters)
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        assert not queue._waiters
        gate.set()
        instance.driver.kv_write = real_write  # type: ignore[method-assign]
        box = client.box.get_or_create()
        got: list[Any] = []
        for _ in range(500):  # the message becomes receivable once its write commits
            got = await box.take()
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [[1, "job", {"n": 1}]]
