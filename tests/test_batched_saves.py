"""Batched state saves (issue 20, "saves"): the shared save timers, the store's ``write_soon``,
the embedded driver's ``kv_put_soon``, and the runtime's saves through them.

Every promise of the slower path holds: an operation's order is its call order, a callback
answers only after the commit, a failing write fails alone, a replaced ``kv_write`` sees every
save, and ``save_state`` returns only once a write holding the caller's change committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.drivers.embedded import EmbeddedDriver, tables
from rivetkit.errors import RivetError
from rivetkit.protocol import actor_persist
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime.save_timers import SaveTimers
from rivetkit.testing import setup_runtime

pytestmark = pytest.mark.asyncio


class NoHost:
    async def start_actor(self, record: Any, generation: int) -> None: ...
    async def stop_actor(self, actor_id: str, reason: Any) -> None: ...
    async def fire_alarm(self, actor_id: str) -> None: ...


HOST: Any = NoHost()


# -- SaveTimers ---------------------------------------------------------------------------------


async def test_save_timers_run_in_time_order_and_skip_cancelled() -> None:
    loop = asyncio.get_running_loop()
    timers = SaveTimers.of(loop)
    assert SaveTimers.of(loop) is timers
    ran: list[str] = []
    # Delays far apart from the loop's next turn: a loaded machine may stall a turn for
    # tens of milliseconds.
    timers.call_later(0.7, lambda: ran.append("c"))
    b = timers.call_later(0.6, lambda: ran.append("b"))
    timers.call_later(0.5, lambda: ran.append("a"))
    timers.call_later(0.5, lambda: ran.append("a2"))  # same time: in scheduling order
    timers.call_later(0.0, lambda: ran.append("now"))
    SaveTimers.cancel(b)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ran == ["now"]
    for _ in range(200):  # (at most 10 s)
        if len(ran) >= 4:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # past the cancelled one's time too
    assert ran == ["now", "a", "a2", "c"]
    assert len(timers) == 0


async def test_a_failing_save_timer_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        ran: list[int] = []

        def boom() -> None:
            raise ValueError("boom")

        timers = SaveTimers.of(loop)
        timers.call_later(0.0, boom)
        timers.call_later(0.0, lambda: ran.append(1))
        await asyncio.sleep(0.02)
        assert ran == [1]
        assert isinstance(errors[0]["exception"], ValueError)
    finally:
        loop.set_exception_handler(None)


# -- SqliteStore.write_soon ---------------------------------------------------------------------


async def test_write_soon_answers_after_commit_in_call_order(tmp_path: Path) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    try:
        store = driver.store
        answers: list[tuple[str, bool, Any]] = []

        def done(name: str) -> Any:
            return lambda ok, value: answers.append((name, ok, value))

        transactions, writes = store.transactions, store.write_ops
        store.write_soon(done("a"), tables.kv_write, "x", [(b"k", b"1")], ())
        store.write_soon(done("bad"), tables.kv_write, "x", [(b"k", "text")], ())  # type: ignore[list-item]  # fails alone
        # A read submitted after them sees them: order is call order.
        read = store.read(tables.kv_get, "x", [b"k"])
        store.write_soon(done("b"), tables.kv_write, "y", [(b"k", b"2")], ())
        assert answers == []  # nothing answered before the commit
        assert await read == [b"1"]
        await store.read(tables.kv_get, "y", [b"k"])
        outcome = {name: (ok, value) for name, ok, value in answers}
        assert len(answers) == 3
        assert outcome["a"] == (True, None) and outcome["b"] == (True, None)
        assert outcome["bad"][0] is False and isinstance(outcome["bad"][1], TypeError)
        assert store.write_ops - writes == 2
        assert store.transactions - transactions <= 2
        assert await driver.kv_get("y", [b"k"]) == [b"2"]
    finally:
        await driver.stop()


async def test_write_soon_many_in_one_turn_share_one_transaction(tmp_path: Path) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    try:
        store = driver.store
        done = asyncio.get_running_loop().create_future()
        left = 500

        def answer(ok: bool, value: Any) -> None:
            nonlocal left
            assert ok, value
            left -= 1
            if left == 0:
                done.set_result(None)

        transactions = store.transactions
        for i in range(500):
            store.write_soon(answer, tables.kv_write, f"a{i}", [(b"\x01", b"%d" % i)], ())
        await done
        assert store.transactions - transactions == 1
        assert await driver.kv_get("a499", [b"\x01"]) == [b"499"]
    finally:
        await driver.stop()


async def test_write_soon_on_a_closed_store_raises_and_close_writes_the_pending(
    tmp_path: Path,
) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    answers: list[bool] = []
    driver.store.write_soon(
        lambda ok, _: answers.append(ok), tables.kv_write, "z", [(b"k", b"v")], ()
    )
    await driver.stop()  # the write made in this turn is written before the store closes
    assert answers == [True]
    with pytest.raises(RivetError) as info:
        driver.store.write_soon(lambda ok, _: None, tables.kv_write, "z", [(b"k", b"v")], ())
    assert (info.value.group, info.value.code) == ("driver", "closed")
    driver = EmbeddedDriver(tmp_path)
    await driver.start(HOST)
    try:
        assert await driver.kv_get("z", [b"k"]) == [b"v"]
    finally:
        await driver.stop()


# -- EmbeddedDriver.kv_put_soon -----------------------------------------------------------------


class WatchingDriver(EmbeddedDriver):
    """A subclass replacing kv_write: kv_put_soon must leave every write to it."""

    seen = 0

    async def kv_write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        self.seen += 1
        await super().kv_write(actor_id, puts, deletes)


async def test_kv_put_soon_declines_when_kv_write_is_replaced(tmp_path: Path) -> None:
    driver = WatchingDriver(tmp_path / "sub")
    await driver.start(HOST)
    try:
        assert driver.kv_put_soon("a", [(b"k", b"v")], lambda ok, v: None) is False
    finally:
        await driver.stop()
    plain = EmbeddedDriver(tmp_path / "plain")
    await plain.start(HOST)
    try:
        got: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        assert plain.kv_put_soon("a", [(b"k", b"v")], lambda ok, v: got.set_result(ok))
        assert await got is True
        assert await plain.kv_get("a", [b"k"]) == [b"v"]

        async def wrapper(actor_id: str, puts: Any = (), deletes: Any = ()) -> None: ...

        plain.kv_write = wrapper  # type: ignore[method-assign]
        assert plain.kv_put_soon("a", [(b"k", b"w")], lambda ok, v: None) is False
    finally:
        await plain.stop()


# -- the runtime's saves ------------------------------------------------------------------------


def counter_registry(interval: float, **options: Any) -> Any:
    counter = actor(
        "counter",
        state={"n": 0},
        options=ActorOptions(state_save_interval=interval, **options),
    )

    @counter.action
    def inc(c: Any) -> int:
        c.state["n"] += 1
        return int(c.state["n"])

    @counter.action
    async def inc_and_save(c: Any) -> int:
        c.state["n"] += 1
        value = int(c.state["n"])
        await c.save_state(immediate=True)
        return value

    return setup(use=[counter])


async def stored_n(driver: Any, actor_id: str) -> int:
    (raw,) = await driver.kv_get(actor_id, [b"\x01"])
    return int(cbor_loads(actor_persist.ACTOR.decode(raw).state)["n"])


async def test_concurrent_save_state_returns_only_after_its_change_is_stored(
    tmp_path: Path,
) -> None:
    # Each reply checks, the moment it arrives, that its value is already on disk.
    async with setup_runtime(counter_registry(60.0), data_dir=tmp_path) as client:
        handle = client.counter.get_or_create(["k"])
        actor_id = await handle.resolve()
        driver = client.runtime.driver
        behind: list[tuple[int, int]] = []

        async def call() -> None:
            value = await handle.inc_and_save()
            stored = await stored_n(driver, actor_id)
            if stored < value:
                behind.append((value, stored))

        for _ in range(20):
            await asyncio.gather(*(call() for _ in range(8)))
        assert behind == []
        assert await stored_n(driver, actor_id) == 160


async def test_durable_replies_of_many_actors_are_stored_when_answered(tmp_path: Path) -> None:
    registry = counter_registry(60.0, durable_replies=True)
    async with setup_runtime(registry, data_dir=tmp_path) as client:
        handles = [client.counter.get_or_create([str(i)]) for i in range(50)]
        ids = [await h.resolve() for h in handles]
        for _ in range(3):
            values = await asyncio.gather(*(h.inc() for h in handles for _ in range(2)))
            assert len(values) == 100
            stored = await asyncio.gather(*(stored_n(client.runtime.driver, i) for i in ids))
            for handle_id, n in zip(ids, stored, strict=True):
                assert n >= 1, handle_id
        final = await asyncio.gather(*(stored_n(client.runtime.driver, i) for i in ids))
        assert final == [6] * 50


async def test_throttled_saves_of_many_actors_use_few_transactions(tmp_path: Path) -> None:
    async with setup_runtime(counter_registry(0.02), data_dir=tmp_path) as client:
        handles = [client.counter.get_or_create([str(i)]) for i in range(200)]
        await asyncio.gather(*(h.inc() for h in handles))  # started: each has saved once
        ids = [await h.resolve() for h in handles]
        driver = client.runtime.driver
        deadline = asyncio.get_running_loop().time() + 5

        async def stored(expected: int) -> None:
            while await asyncio.gather(*(stored_n(driver, i) for i in ids)) != [expected] * 200:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)

        await stored(1)
        store = driver.store  # type: ignore[attr-defined]
        writes, transactions = store.write_ops, store.transactions
        await asyncio.gather(*(h.inc() for h in handles))
        await stored(2)
        assert store.write_ops - writes == 200  # one throttled save each
        assert store.transactions - transactions < 100


async def test_save_timers_do_not_keep_their_loop_alive() -> None:
    import gc
    import weakref

    loop = asyncio.new_event_loop()
    SaveTimers.of(loop).call_later(10.0, lambda: None)
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None
