"""An actor's trace recorder writes its last chunk in the stop's own task
(rivetkit/traces/recorder.py, ``TraceStorage.close``): no task per stop, every sealed chunk
written once, a flush meanwhile waits for it, a running writer task is still waited on."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, cast

import pytest
from trace_helpers import LaterStore as MemoryStore

from rivetkit.traces import ActorTraces, DriverStore
from rivetkit.traces import recorder as recorder_module
from rivetkit.traces.schema import CHUNK

pytestmark = pytest.mark.asyncio


def _records(store: MemoryStore) -> int:
    return sum(len(CHUNK.decode(value).records) for value in store.data.values())


class _TaskCounter:
    def __init__(self) -> None:
        self.names: collections.Counter[str] = collections.Counter()

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        self.names[getattr(coro, "__qualname__", "?")] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)


async def test_close_writes_the_last_chunk_in_its_own_task() -> None:
    store = MemoryStore()
    recorder = ActorTraces(store)
    await recorder.preload()
    recorder.instant("action", "increment")
    loop = asyncio.get_running_loop()
    counter = _TaskCounter()
    previous = loop.get_task_factory()
    loop.set_task_factory(counter)
    try:
        await recorder.close()
    finally:
        loop.set_task_factory(previous)
    assert counter.names == collections.Counter()
    assert recorder.closed and not recorder.pending and recorder._writer is None
    assert store.writes == 1 and _records(store) == 2  # SpanStart, SpanEnd


async def test_a_chunk_sealed_during_the_close_is_written_by_it_once() -> None:
    store = MemoryStore()
    recorder = ActorTraces(store)
    recorder.instant("action", "first")
    original = store.write
    sealed_during = False

    async def write(puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        nonlocal sealed_during
        if not sealed_during:  # a span of another task ends while the close writes
            sealed_during = True
            recorder.instant("action", "second")
            recorder._seal()
            assert len(recorder.pending) == 2  # no second writer took it
        await original(puts, deletes)

    store.write = write  # type: ignore[method-assign]
    await recorder.close()
    assert store.writes == 2 and _records(store) == 4 and not recorder.pending


async def test_a_flush_during_the_close_waits_for_its_write() -> None:
    store = MemoryStore()
    recorder = ActorTraces(store)
    recorder.instant("action", "increment")
    release = asyncio.Event()
    original = store.write

    async def write(puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        await release.wait()
        await original(puts, deletes)

    store.write = write  # type: ignore[method-assign]
    closing = asyncio.ensure_future(recorder.close())
    await asyncio.sleep(0)
    flushing = asyncio.ensure_future(recorder.flush())
    await asyncio.sleep(0.01)
    assert not flushing.done()
    release.set()
    await asyncio.gather(closing, flushing)
    assert _records(store) == 2 and recorder.closed


async def test_close_waits_for_a_writer_task_already_running() -> None:
    store = MemoryStore()
    recorder = ActorTraces(store)
    release = asyncio.Event()
    original = store.write

    async def write(puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        await release.wait()
        await original(puts, deletes)

    store.write = write  # type: ignore[method-assign]
    recorder.instant("action", "first")
    recorder._seal()  # a writer task now writes it, held by the store
    writer = recorder._writer
    assert writer is not None and not writer.done()
    recorder.instant("action", "second")
    closing = asyncio.ensure_future(recorder.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    release.set()
    await closing
    assert writer.done() and _records(store) == 4 and recorder.closed


async def test_close_gives_up_on_a_hanging_store_in_its_own_task() -> None:
    class Hanging(MemoryStore):
        async def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
            await asyncio.Event().wait()

    recorder = ActorTraces(Hanging())
    recorder.instant("action", "increment")
    await recorder.close(timeout=0.05)
    assert recorder.closed and not recorder.pending and recorder._writer is None
    # The close's own task was not left cancelled.
    task = asyncio.current_task()
    assert task is not None and not getattr(task, "cancelling", lambda: 0)()
    await asyncio.sleep(0)


async def test_a_cancelled_close_leaves_no_writer_behind() -> None:
    class Hanging(MemoryStore):
        async def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
            await asyncio.Event().wait()

    recorder = ActorTraces(Hanging())
    recorder.instant("action", "increment")
    closing = asyncio.ensure_future(recorder.close())
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert recorder._writer is None


class SoonStore(MemoryStore):
    """A store with ``put_soon`` (the embedded driver's way): answers at the next turn."""

    def __init__(self, *, take: bool = True, fail: BaseException | None = None) -> None:
        super().__init__()
        self.take = take
        self.fail = fail
        self.soon = 0

    def put_soon(self, puts: list[tuple[bytes, bytes]], done: Any) -> bool:
        if not self.take:
            return False
        self.soon += 1
        if self.fail is not None:
            asyncio.get_running_loop().call_soon(done, False, self.fail)
            return True
        self.data.update(puts)
        asyncio.get_running_loop().call_soon(done, True, None)
        return True


async def test_close_hands_the_last_chunk_to_put_soon() -> None:
    store = SoonStore()
    recorder = ActorTraces(store)
    await recorder.preload()
    recorder.instant("action", "increment")
    await recorder.close()
    assert store.soon == 1 and store.writes == 0 and _records(store) == 2
    assert recorder.closed and not recorder.pending and recorder._writer is None
    await asyncio.sleep(0)
    assert recorder.write_error is None


async def test_a_failed_put_soon_is_a_failed_write() -> None:
    error = RuntimeError("disk full")
    store = SoonStore(fail=error)
    recorder = ActorTraces(store)
    await recorder.preload()
    recorder.instant("action", "increment")
    await recorder.close()
    await asyncio.sleep(0)
    assert recorder.write_error is error and not recorder.pending


async def test_put_soon_refused_or_unlisted_or_deleting_writes_as_before() -> None:
    refused = SoonStore(take=False)
    recorder = ActorTraces(refused)
    await recorder.preload()
    recorder.instant("action", "a")
    await recorder.close()
    assert refused.writes == 1 and _records(refused) == 2

    unlisted = SoonStore()  # a woken actor: its stored chunks are listed at the write
    recorder = ActorTraces(unlisted)
    recorder.instant("action", "a")
    await recorder.close()
    assert unlisted.writes == 1 and unlisted.soon == 0

    bounded = SoonStore()
    bounded.data[b"x"] = b"y"  # not a chunk key: ignored by the listing
    recorder = ActorTraces(bounded, max_bytes=1024)
    await recorder.preload()
    for i in range(40):  # enough chunks that the last one deletes the oldest
        recorder.instant("action", f"action-{i}" * 10)
        recorder._seal(spawn=False)
    recorder._stored = [(b"\x07\x01old", 1000)]
    recorder._stored_bytes = 1000
    await recorder.close()
    assert bounded.writes >= 1  # the deleting write is awaited, not handed over
    assert not recorder.pending


class CountingListStore(MemoryStore):
    """A MemoryStore counting its listings; ``fail``: the next listing raises."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0
        self.fail = False

    async def list(
        self, start: bytes, end: bytes | None, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        self.listings += 1
        if self.fail:
            self.fail = False
            raise OSError("listing failed")
        return await super().list(start, end, reverse=reverse, limit=limit)


async def test_preload_lists_once_and_a_failed_one_is_retried_by_the_write() -> None:
    store = CountingListStore()
    recorder = ActorTraces(store)
    await recorder.preload()
    await recorder.preload()  # known already: no second listing
    assert store.listings == 1 and recorder._stored == [] and recorder._stored_bytes == 0
    recorder.instant("action", "a")
    await recorder.close()
    assert store.listings == 1 and store.writes == 1 and _records(store) == 2
    # (none stored was the shared empty list: the write set a list of its own)
    assert len(recorder._stored) == 1 and recorder_module._NONE_STORED == []

    # The next generation (a later millisecond: its own chunk key), whose listing fails.
    again = ActorTraces(store, clock_ns=lambda: time.time_ns() + 10_000_000)
    store.fail = True
    await again.preload()
    assert again._stored is None and store.listings == 2
    again.instant("action", "b")
    await again.close()  # the write lists (its chunk counted with the first one's)
    assert store.listings == 3 and store.writes == 2 and _records(store) == 4
    assert len(again._stored) == 2 and again._stored_bytes == sum(s for _, s in again._stored)


async def test_a_new_recorders_fields() -> None:
    """Defaults (class attributes, not set per recorder) and given values read the same."""
    plain = ActorTraces(MemoryStore())
    assert (plain.max_bytes, plain._chunk_age, plain.chunk_target) == (1024 * 1024, 5.0, 65536)
    assert plain.clock_ns is time.time_ns and plain.resource == {} and plain.pending == []
    assert plain._age_slot is None and plain._writer is None and plain._stored is None
    assert plain._stored_bytes == 0 and plain.write_error is None

    def clock() -> int:
        return 1

    given = ActorTraces(
        MemoryStore(), max_bytes=8192, clock_ns=clock, resource={"a": 1}, chunk_age=0.5
    )
    assert (given.max_bytes, given._chunk_age, given.chunk_target) == (8192, 0.5, 1024)
    assert given.clock_ns is clock and given.resource == {"a": 1}
    # None sealed yet: the shared empty list (never added to); a first seal makes its own.
    assert given.pending is plain.pending is recorder_module._NO_PENDING
    given.instant("action", "a")
    given._seal()
    assert len(given.pending) == 1 and plain.pending == [] and recorder_module._NO_PENDING == []
    await given.close()
    assert given.pending == [] and recorder_module._NO_PENDING == []
    assert ActorTraces(MemoryStore(), max_bytes=100).chunk_target == 512


async def test_an_actors_resource_is_made_when_asked() -> None:
    """A recorder given the actor's ``(actor_id, name, key)`` keeps that tuple (no dict per
    live actor) and reports the same attributes as a resource dict given outright; a dict
    given outright is reported as given."""
    key = ["tenant", "a1"]
    recorder = ActorTraces(MemoryStore(), actor=("id-1", "counter", key))
    assert recorder._resource == ("id-1", "counter", key)
    expected = {
        "service.name": "rivetkit",
        "rivet.actor.id": "id-1",
        "rivet.actor.name": "counter",
        "rivet.actor.key": "tenant/a1",
    }
    assert recorder.resource == expected and recorder.resource is not recorder.resource
    # The store as the actor's identity (what traces_for gives: no tuple per actor).
    store = DriverStore(cast(Any, None), "id-1", "counter", key)
    same = ActorTraces(store, actor=store)
    assert same._resource is store and same.resource == expected
    given = {"a": 1}
    both = ActorTraces(MemoryStore(), resource=given, actor=("id-1", "counter", key))
    assert both.resource is given
    assert ActorTraces(MemoryStore(), actor=("id-2", "n", [])).resource["rivet.actor.key"] == ""


async def test_an_ended_writer_is_let_go() -> None:
    """The writer task lets go of itself when it has written what was sealed (no done task
    kept per actor for its life); the next seal starts another, and a flush or a close
    waits for it as before."""
    store = MemoryStore()
    recorder = ActorTraces(store)
    recorder.instant("action", "a")
    recorder._seal()
    writer = recorder._writer
    assert writer is not None and not writer.done()
    await recorder.flush()
    await asyncio.sleep(0)
    assert writer.done() and recorder._writer is None and recorder.pending == []
    first = _records(store)
    assert store.writes == 1 and first >= 1
    recorder.instant("action", "b")
    recorder._seal()
    again = recorder._writer
    assert again is not None and again is not writer
    await recorder.close()
    assert recorder._writer is None and store.writes == 2 and _records(store) > first


async def test_a_recorder_keeps_its_fields_in_slots() -> None:
    """A recorder (one per live actor) has no ``__dict__``: its fields are slots, set by
    ``__init__`` to the values the class attributes document."""
    recorder = ActorTraces(MemoryStore())
    assert not hasattr(recorder, "__dict__")
    assert (recorder._age_slot, recorder._writer, recorder._stored, recorder.write_error) == (
        None,
        None,
        None,
        None,
    )
    assert (recorder._stored_bytes, recorder._checked, recorder._resource) == (0, False, None)


class FakeDriver:
    """The driver calls a DriverStore makes, over one dict: ``known_empty`` is what
    ``kv_known_empty`` answers (the embedded driver's, for an actor it just made)."""

    def __init__(self, *, known_empty: bool, take: bool = True) -> None:
        self.store = MemoryStore()
        self.known_empty = known_empty
        self.take = take
        self.listings = 0
        self.soon: list[tuple[str, list[tuple[bytes, bytes]]]] = []

    def kv_known_empty(self, actor_id: str) -> bool:
        return self.known_empty

    async def kv_list(self, actor_id: str, start: bytes, end: bytes | None, **kw: Any) -> Any:
        self.listings += 1
        return await self.store.list(start, end, **kw)

    async def kv_write(self, actor_id: str, puts: Any, deletes: Any) -> None:
        await self.store.write(list(puts), list(deletes))

    def kv_put_soon(self, actor_id: str, puts: list[tuple[bytes, bytes]], done: Any) -> bool:
        if not self.take:
            return False
        self.soon.append((actor_id, puts))
        self.store.data.update(puts)
        asyncio.get_running_loop().call_soon(done, True, None)
        return True


def _fixed(recorder: ActorTraces) -> ActorTraces:
    recorder.id_base, recorder.trace_base = 7, bytes(8)
    return recorder


@pytest.mark.parametrize("known_empty", [True, False])
@pytest.mark.parametrize("take", [True, False])
async def test_a_driver_store_known_empty_is_not_listed(known_empty: bool, take: bool) -> None:
    """Through a DriverStore, a KV the driver knows empty is not listed (the preload is done
    at once, no coroutine); one it does not know is listed once; either way the last chunk
    goes to the driver's ``kv_put_soon`` (a refusal: written and awaited as before), with
    the bytes a plain store gets."""
    driver = FakeDriver(known_empty=known_empty, take=take)
    store = DriverStore(cast(Any, driver), "id-1", "counter", [])
    now = 1_764_000_000_000_000_000
    recorder = _fixed(ActorTraces(store, clock_ns=lambda: now, actor=store))
    waiting = recorder.preload()
    assert (not asyncio.iscoroutine(waiting)) is known_empty
    await waiting
    assert driver.listings == (0 if known_empty else 1) and recorder._stored == []
    recorder.instant("action", "increment")
    await recorder.close()
    await asyncio.sleep(0)
    assert driver.listings == (0 if known_empty else 1) and recorder.write_error is None
    assert [actor for actor, _ in driver.soon] == ["id-1"] * int(take)
    assert driver.store.writes == int(not take) and not recorder.pending
    assert recorder._stored == [(k, len(v)) for k, v in driver.store.data.items()]
    assert recorder._stored_bytes == sum(len(v) for v in driver.store.data.values())

    plain = MemoryStore()
    same = _fixed(ActorTraces(plain, clock_ns=lambda: now))
    await same.preload()
    same.instant("action", "increment")
    await same.close()
    assert plain.data == driver.store.data and _records(plain) == 2
