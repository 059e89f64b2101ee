"""State persistence: throttled saves, group commit, saves at shutdown, and SIGKILL.

The SIGKILL tests run a real child process (``tests/apps/durable_counter.py``) that prints
every acknowledged increment, kill it mid-load, and check with a new ``setup_test`` on the
same data directory that nothing acknowledged was lost and that the actor was not created
twice (its ``has_initialized`` flag survived).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import cbor2
import pytest
from apps.durable_counter import build_registry

from conftest import LoopClock, eventually
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.drivers.embedded import EmbeddedDriver, tables
from rivetkit.protocol import actor_persist
from rivetkit.runtime import keys
from rivetkit.runtime.context import ActorContext
from rivetkit.testing import TestClient, setup_test

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "apps" / "durable_counter.py"


class SaveCounter:
    """Counts the snapshot writes (KV ``[1]``) per actor by wrapping the driver's kv_write."""

    def __init__(self, client: TestClient) -> None:
        self.by_actor: dict[str, int] = defaultdict(int)
        driver = client.runtime.driver
        original = driver.kv_write

        async def kv_write(actor_id: str, puts: Any = (), deletes: Any = ()) -> None:
            if any(key == keys.PERSIST for key, _ in puts):
                self.by_actor[actor_id] += 1
            await original(actor_id, puts, deletes)

        driver.kv_write = kv_write  # type: ignore[method-assign]


async def stored_state(client: TestClient, actor_id: str) -> Any:
    """The state in the actor's persisted snapshot (what a restart would load)."""
    (raw,) = await client.runtime.driver.kv_get(actor_id, [keys.PERSIST])
    assert raw is not None
    return cbor2.loads(actor_persist.ACTOR.decode(raw).state)


def make_hot(interval: float, *, durable: bool = False) -> Any:
    hot = actor(
        "hot",
        state={"n": 0},
        options=ActorOptions(state_save_interval=interval, durable_replies=durable),
    )

    @hot.action
    def inc(c: ActorContext) -> int:
        c.state["n"] += 1
        return c.state["n"]

    @hot.action
    async def inc_async(c: ActorContext) -> int:
        await asyncio.sleep(0)
        c.state["n"] += 1
        return c.state["n"]

    @hot.action
    async def inc_and_save(c: ActorContext, immediate: bool) -> int:
        c.state["n"] += 1
        await c.save_state(immediate=immediate)
        return c.state["n"]

    @hot.action
    def nap(c: ActorContext) -> None:
        c.sleep()

    return hot


async def test_many_changes_few_writes_and_saved_on_sleep() -> None:
    async with setup_test(setup(use=[make_hot(30.0)])) as client:
        handle = client.hot.get_or_create()
        assert await handle.inc() == 1  # creation: has_initialized written
        actor_id = await handle.resolve()
        saves = SaveCounter(client)
        store = client.runtime.driver.store
        writes, transactions = store.write_ops, store.transactions
        for _ in range(500):
            await handle.inc()
        await asyncio.gather(*(handle.inc_async() for _ in range(500)))
        await asyncio.sleep(0.05)
        assert saves.by_actor[actor_id] <= 3
        assert store.write_ops - writes <= 3
        assert store.transactions - transactions <= 3
        assert (await stored_state(client, actor_id))["n"] < 1001  # not saved yet (30 s)

        # Sleep saves the final state.
        await handle.nap()
        placement = client.runtime.driver.placement
        await eventually(lambda: actor_id not in placement.loaded())
        assert (await stored_state(client, actor_id))["n"] == 1001
        assert saves.by_actor[actor_id] <= 4
        assert await handle.inc() == 1002


async def test_throttled_save_happens_after_the_interval() -> None:
    async with setup_test(setup(use=[make_hot(0.1)])) as client:
        handle = client.hot.get_or_create()
        await handle.inc()
        actor_id = await handle.resolve()
        await asyncio.sleep(0.15)
        saves = SaveCounter(client)
        for _ in range(1000):
            await handle.inc()
        await eventually(lambda: saves.by_actor[actor_id] >= 1, timeout=3)
        await asyncio.sleep(0.3)  # several intervals, no more changes
        assert 1 <= saves.by_actor[actor_id] <= 3
        assert (await stored_state(client, actor_id))["n"] == 1001


async def test_final_state_saved_on_graceful_stop(tmp_path: Path) -> None:
    registry = setup(use=[make_hot(60.0)])
    async with setup_test(registry, data_dir=tmp_path) as client:
        handle = client.hot.get_or_create()
        for _ in range(1000):
            await handle.inc()
    async with setup_test(registry, data_dir=tmp_path) as client:
        assert await client.hot.get_or_create().inc() == 1001


async def test_save_state_waits_for_the_write() -> None:
    async with setup_test(setup(use=[make_hot(60.0)])) as client:
        handle = client.hot.get_or_create()
        assert await handle.inc_and_save(True) == 1
        actor_id = await handle.resolve()
        assert (await stored_state(client, actor_id))["n"] == 1
        assert await handle.inc() == 2
        assert (await stored_state(client, actor_id))["n"] == 1  # throttled
    async with setup_test(setup(use=[make_hot(0.05)])) as client:
        handle = client.hot.get_or_create()
        await handle.inc()
        actor_id = await handle.resolve()
        # Not immediate: waits for the throttled save (0.05 s), then it is on disk.
        assert await handle.inc_and_save(False) == 2
        assert (await stored_state(client, actor_id))["n"] == 2


async def test_durable_replies_hold_reply_until_saved() -> None:
    async with setup_test(setup(use=[make_hot(60.0, durable=True)])) as client:
        handle = client.hot.get_or_create()
        actor_id = await handle.resolve()
        for expected in range(1, 6):
            assert await handle.inc() == expected
            assert (await stored_state(client, actor_id))["n"] == expected
        values = await asyncio.gather(*(handle.inc_async() for _ in range(50)))
        assert sorted(values) == list(range(6, 56))
        assert (await stored_state(client, actor_id))["n"] == 55
    # Without the option the reply does not wait (the save interval is 60 s).
    async with setup_test(setup(use=[make_hot(60.0)])) as client:
        handle = client.hot.get_or_create()
        await handle.inc()
        actor_id = await handle.resolve()
        assert await handle.inc() == 2
        assert (await stored_state(client, actor_id))["n"] == 0  # as created


async def test_saves_of_many_actors_share_transactions() -> None:
    async with setup_test(setup(use=[make_hot(0.05)])) as client:
        handles = [client.hot.get_or_create([str(i)]) for i in range(100)]
        for h in handles:
            await h.inc()
        await asyncio.sleep(0.1)
        store = client.runtime.driver.store
        saves = SaveCounter(client)
        transactions = store.transactions
        await asyncio.gather(*(h.inc() for h in handles))
        await eventually(lambda: sum(saves.by_actor.values()) >= 100, timeout=3)
        committed = store.transactions - transactions
        # 100 saves, due together: grouped into far fewer commits.
        print(f"100 saves in {committed} transactions")
        assert committed < 50, committed


# -- SIGKILL -----------------------------------------------------------------------------------


async def run_and_kill(data_dir: Path, mode: str, acks: int) -> dict[str, int]:
    """Run the child, read at least ``acks`` acknowledgements, SIGKILL it; max value per key."""
    env = {k: v for k, v in os.environ.items() if k != "RIVET_EXPOSE_ERRORS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        str(data_dir),
        mode,
        "2",
        "3",
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    acked: dict[str, int] = defaultdict(int)
    lines = 0

    def take(line: bytes) -> None:
        key, value = line.decode().split()
        acked[key] = max(acked[key], int(value))

    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        while lines < acks:
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
            assert line.endswith(b"\n"), "the child died"
            take(line)
            lines += 1
        proc.send_signal(signal.SIGKILL)
        # Lines written before the kill were acknowledged too.
        rest = await asyncio.wait_for(proc.stdout.read(), 15)
        for line in rest.split(b"\n"):
            if line:
                take(line)
        assert await asyncio.wait_for(proc.wait(), 15) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert set(acked) == {"k0", "k1"}
    return dict(acked)


async def check_after_kill(data_dir: Path, mode: str, acked: dict[str, int]) -> None:
    # The raw snapshots first, before any actor starts again.
    driver = EmbeddedDriver(data_dir)

    class Host:
        async def start_actor(self, record: Any, generation: int) -> None: ...
        async def stop_actor(self, actor_id: str, reason: Any) -> None: ...
        async def fire_alarm(self, actor_id: str) -> None: ...

    await driver.start(Host())
    try:
        for key, value in acked.items():
            record = await driver.find_actor("counter", [key])
            assert record is not None
            (raw,) = await driver.kv_get(record.actor_id, [keys.PERSIST])
            assert raw is not None
            snapshot = actor_persist.ACTOR.decode(raw)
            assert snapshot.has_initialized is True
            state = cbor2.loads(snapshot.state)
            # Every acknowledged increment is there; at most the in-flight ones beyond.
            assert value <= state["count"] <= value + 3, (key, value, state)
            assert state["creations"] == 1
    finally:
        await driver.stop()

    # A new process: the actors wake (not created again) with their saved state.
    async with setup_test(build_registry(mode), data_dir=data_dir) as client:
        for key, value in acked.items():
            state = await client.counter.get_or_create([key]).state()
            assert state["count"] >= value
            assert state["creations"] == 1  # on_create did not run again
            assert await client.counter.get_or_create([key]).increment() == state["count"] + 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_sigkill_keeps_immediately_saved_state(tmp_path: Path) -> None:
    acked = await run_and_kill(tmp_path, "save", 300)
    await check_after_kill(tmp_path, "save", acked)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_sigkill_durable_replies_lose_nothing_acknowledged(tmp_path: Path) -> None:
    acked = await run_and_kill(tmp_path, "durable", 300)
    await check_after_kill(tmp_path, "durable", acked)
    # A second round on the same directory continues from there.
    again = await run_and_kill(tmp_path, "durable", 100)
    assert all(again[key] > acked[key] for key in acked)
    await check_after_kill(tmp_path, "durable", again)


async def test_continuous_changes_save_once_per_interval() -> None:
    # Loop time moves only when told (plus the real time the test takes, well below 10 s).
    with LoopClock() as clock:
        async with setup_test(setup(use=[make_hot(10.0)])) as client:
            handle = client.hot.get_or_create()
            await handle.inc()
            actor_id = await handle.resolve()
            saves = SaveCounter(client)
            for _ in range(250):  # a change every 0.2 s, for five save intervals
                await handle.inc()
                await clock.advance(0.2)
            # About one save per interval (not one per change, nor back-to-back saves).
            assert 2 <= saves.by_actor[actor_id] <= 8, saves.by_actor[actor_id]


async def test_failed_save_is_not_acknowledged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVET_EXPOSE_ERRORS", "1")
    async with setup_test(setup(use=[make_hot(0.05)])) as client:
        handle = client.hot.get_or_create()
        await handle.inc()
        actor_id = await handle.resolve()
        driver = client.runtime.driver
        original = driver.kv_write
        failures = [1]

        async def flaky(actor_id: str, puts: Any = (), deletes: Any = ()) -> None:
            if failures:
                failures.pop()
                raise OSError("disk on fire")
            await original(actor_id, puts, deletes)

        driver.kv_write = flaky  # type: ignore[method-assign]
        # The waiter of the failed save gets the error, not a false acknowledgement.
        with pytest.raises(RivetError) as info:
            await handle.inc_and_save(True)
        assert info.value.code == "state_save_failed"
        assert "disk on fire" in info.value.message
        # The change is retried after the save interval and reaches the disk.
        for _ in range(500):
            if (await stored_state(client, actor_id))["n"] == 2:
                break
            await asyncio.sleep(0.01)
        assert (await stored_state(client, actor_id))["n"] == 2
        assert await handle.inc_and_save(True) == 3
        assert (await stored_state(client, actor_id))["n"] == 3


# -- group commit in the store ----------------------------------------------------------------


class QuietHost:
    async def start_actor(self, record: Any, generation: int) -> None: ...
    async def stop_actor(self, actor_id: str, reason: Any) -> None: ...
    async def fire_alarm(self, actor_id: str) -> None: ...


async def one_batch(store: Any, submit: Any) -> list[Any]:
    """Run ``submit()`` (which submits operations) while the writer is busy, so that all of
    them land in one batch; return their outcomes (value or exception)."""
    taken, release = threading.Event(), threading.Event()

    def block(conn: Any) -> None:
        taken.set()
        release.wait(10)

    blocker = store.read(block)
    await eventually(taken.is_set)  # the writer thread is inside the blocker
    futures = submit()
    release.set()
    await blocker
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def test_coalesced_puts_keep_order_and_isolation(tmp_path: Path) -> None:
    driver = EmbeddedDriver(tmp_path)
    await driver.start(QuietHost())
    store = driver.store
    try:
        transactions, writes = store.transactions, store.write_ops

        def submit() -> list[Any]:
            return [
                store.write(tables.kv_write, "a", [(b"k", b"1")], []),
                store.write(tables.kv_write, "b", [(b"k", b"x")], []),
                store.read(tables.kv_get, "a", [b"k"]),  # sees the first put only
                store.write(tables.kv_write, "a", [(b"k", b"2"), (b"j", b"3")], []),
                store.write(tables.kv_write, "a", [(b"bad", "not bytes")], []),  # fails alone
                store.write(tables.kv_write, "a", [(b"k", b"4")], []),  # a later put wins
                store.write(tables.kv_write, "b", [], [b"k"]),  # a delete, in order
                store.write(tables.kv_write, "b", [(b"k", b"y")], []),
            ]

        outcomes = await one_batch(store, submit)
        assert outcomes[:4] == [None, None, [b"1"], None]
        assert isinstance(outcomes[4], TypeError)
        assert outcomes[5:] == [None, None, None]
        assert store.transactions - transactions == 1  # one group commit
        assert store.write_ops - writes == 6
        assert await driver.kv_list("a", b"", None) == [(b"j", b"3"), (b"k", b"4")]
        assert await driver.kv_list("b", b"", None) == [(b"k", b"y")]

        # A run longer than one multi-row statement.
        n = tables.PUT_ROWS_CHUNK * 2 + 7

        def many() -> list[Any]:
            return [
                store.write(tables.kv_write, f"m{i}", [(b"\x01", b"%d" % i)], []) for i in range(n)
            ]

        assert await one_batch(store, many) == [None] * n
        for i in (0, tables.PUT_ROWS_CHUNK, n - 1):
            assert await driver.kv_get(f"m{i}", [b"\x01"]) == [b"%d" % i]
    finally:
        await driver.stop()
