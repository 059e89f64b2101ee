"""The sleep controller: what keeps an actor awake, the sleep shutdown order, and its races.

Runtime spec §1 (Sleep, keep_awake/wait_until, run handler) and §3.2. The idle timeout is
50 ms here; "stays awake" means still the same started instance after five timeouts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import LoopClock, eventually
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.runtime import keys
from rivetkit.runtime.connection import Hibernation
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.testing import RuntimeClient, setup_runtime

pytestmark = pytest.mark.asyncio

TIMEOUT = 0.05
OPTIONS = ActorOptions(sleep_timeout=TIMEOUT, sleep_grace_period=2.0, state_save_interval=0.02)

#: Gates that actions, hooks and run wait on (created on first use).
GATES: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    return GATES.setdefault(name, asyncio.Event())


@pytest.fixture(autouse=True)
def fresh_gates() -> None:
    GATES.clear()


async def wait_asleep(client: RuntimeClient, actor_id: str) -> None:
    placement = client.runtime.driver.placement  # type: ignore[attr-defined]
    await eventually(lambda: actor_id not in placement.loaded())


async def assert_stays_awake(client: RuntimeClient, actor_id: str, generation: int = 1) -> None:
    await asyncio.sleep(5 * TIMEOUT)
    instance = client.runtime.instances.get(actor_id)
    assert instance is not None and instance.phase == Phase.STARTED
    assert instance.generation == generation


def build(name: str = "sleepy", options: ActorOptions = OPTIONS, run: Any = None) -> Any:
    a = actor(name, state={"got": []}, options=options)

    if run is not None:
        a.run(run)

    @a.on_disconnect
    async def on_disconnect(c: ActorContext, conn: Any) -> None:
        if conn.params == "slow":
            await gate("disconnect").wait()

    @a.action
    def gen(c: ActorContext) -> int:
        return c.generation

    @a.action
    def state(c: ActorContext) -> Any:
        return c.state

    @a.action
    def hold(c: ActorContext, name: str) -> None:
        c.wait_until(c.keep_awake(gate(name).wait()))

    @a.action
    def background(c: ActorContext, name: str) -> None:
        async def later() -> None:
            await gate(name).wait()
            c.state[name] = True

        c.wait_until(later())

    @a.action
    async def slow(c: ActorContext, name: str) -> int:
        await gate(name).wait()
        c.state[name] = True
        return c.generation

    @a.action
    def go_to_sleep(c: ActorContext) -> None:
        c.sleep()
        c.sleep()  # idempotent

    return a


async def started(client: RuntimeClient, name: str = "sleepy") -> tuple[Any, str, ActorInstance]:
    handle = client.get_or_create(name, "k")
    assert await handle.gen() == 1
    actor_id = await handle.resolve()
    return handle, actor_id, client.runtime.instances[actor_id]


# -- what keeps an actor awake -----------------------------------------------------------------


async def test_idle_actor_sleeps_and_the_next_request_wakes_a_new_generation() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, _ = await started(client)
        await wait_asleep(client, actor_id)
        assert actor_id not in client.runtime.instances
        assert len(client.runtime.sleep_timers) == 0  # nothing kept for a sleeping actor
        assert await handle.gen() == 2


async def test_a_connection_keeps_the_actor_awake_until_it_closes() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, instance = await started(client)
        conn = await instance.connect("plain")
        await assert_stays_awake(client, actor_id)
        await conn.disconnect()
        await wait_asleep(client, actor_id)
        assert await handle.gen() == 2


async def test_a_pending_disconnect_keeps_the_actor_awake() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        _, actor_id, instance = await started(client)
        conn = await instance.connect("slow")
        closing = asyncio.ensure_future(conn.disconnect())
        await eventually(lambda: conn.id not in instance.conns)
        await assert_stays_awake(client, actor_id)  # on_disconnect still running
        gate("disconnect").set()
        await closing
        await wait_asleep(client, actor_id)


async def test_hibernatable_connections_keep_it_awake_until_c_sleep_and_survive_it() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, instance = await started(client)
        conn = await instance.connect("hib", hibernation=Hibernation(b"gw01", b"rq01"))
        await assert_stays_awake(client, actor_id)  # RivetKit: any connection blocks sleep
        instance.context.sleep()
        await wait_asleep(client, actor_id)
        (record,) = await client.runtime.driver.kv_get(actor_id, [keys.conn_key(conn.id)])
        assert record is not None  # kept while asleep
        assert await handle.gen() == 2
        restored = client.runtime.instances[actor_id].conns[conn.id]
        assert restored.params == "hib" and restored.hibernatable
        await assert_stays_awake(client, actor_id, generation=2)  # restored: awake again


async def test_an_in_flight_request_keeps_the_actor_awake() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        _, actor_id, instance = await started(client)
        instance.begin_request()
        instance.begin_request()
        await assert_stays_awake(client, actor_id)
        instance.end_request()
        await assert_stays_awake(client, actor_id)  # one is still going
        instance.end_request()
        await wait_asleep(client, actor_id)


async def test_an_in_flight_action_keeps_the_actor_awake() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, _ = await started(client)
        call = asyncio.ensure_future(handle.slow("action"))
        await assert_stays_awake(client, actor_id)
        gate("action").set()
        assert await call == 1
        await wait_asleep(client, actor_id)


async def test_keep_awake_keeps_the_actor_awake_until_it_ends() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, _ = await started(client)
        await handle.hold("kept")
        await assert_stays_awake(client, actor_id)
        gate("kept").set()
        await wait_asleep(client, actor_id)


async def test_wait_until_does_not_keep_it_awake_but_shutdown_waits_for_it() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, instance = await started(client)
        await handle.background("later")
        await eventually(lambda: instance.phase == Phase.SLEEP_GRACE)  # idle: sleeping
        await asyncio.sleep(5 * TIMEOUT)
        assert instance.phase == Phase.SLEEP_GRACE  # ... but not done before the task
        gate("later").set()
        await wait_asleep(client, actor_id)
        assert (await handle.state())["later"] is True  # its change was saved


async def test_run_active_keeps_it_awake_but_run_blocked_on_the_queue_does_not() -> None:
    async def run(c: ActorContext) -> None:
        await gate("run").wait()  # busy
        while True:
            try:
                message = await c.queue.next()
            except RivetError as exc:
                assert exc.code == "aborted"
                return
            assert message is not None
            c.state["got"].append(message.body)

    async with setup_runtime(setup(use=[build(run=run)])) as client:
        handle, actor_id, _ = await started(client)
        await assert_stays_awake(client, actor_id)
        gate("run").set()
        await wait_asleep(client, actor_id)  # blocked in a queue wait: sleeps
        # A queue message wakes it (a new generation), whose run takes it.
        instance = await client.runtime.instance(actor_id)
        assert instance.generation == 2
        await instance.queue.send("job", {"n": 1})
        await eventually(lambda: instance.state["got"] == [{"n": 1}])
        await wait_asleep(client, actor_id)
        assert (await handle.state())["got"] == [{"n": 1}]


async def test_run_that_returns_lets_the_actor_sleep() -> None:
    async def run(c: ActorContext) -> None:
        await gate("short run").wait()

    async with setup_runtime(setup(use=[build(run=run)])) as client:
        _, actor_id, _ = await started(client)
        await assert_stays_awake(client, actor_id)
        gate("short run").set()
        await wait_asleep(client, actor_id)


async def test_no_sleep_never_sleeps() -> None:
    options = OPTIONS.replace(no_sleep=True)
    async with setup_runtime(setup(use=[build(options=options)])) as client:
        _, actor_id, _ = await started(client)
        await assert_stays_awake(client, actor_id)


async def test_activity_pushes_the_deadline_and_c_sleep_is_immediate() -> None:
    options = OPTIONS.replace(sleep_timeout=10.0)
    with LoopClock() as clock:
        async with setup_runtime(setup(use=[build(options=options)])) as client:
            handle, actor_id, _ = await started(client)
            for _ in range(8):  # a call every 4 s (of loop time), 32 s in all: never idle 10 s
                await clock.advance(4.0)
                assert await handle.gen() == 1
            # The clock stands still from here: c.sleep() does not wait for the idle timeout.
            await handle.go_to_sleep()
            await wait_asleep(client, actor_id)
            assert await handle.gen() == 2


async def test_one_process_timer_for_all_idle_actors() -> None:
    options = OPTIONS.replace(sleep_timeout=0.3)
    async with setup_runtime(setup(use=[build(options=options)])) as client:
        timers = client.runtime.sleep_timers
        handles = [client.get_or_create("sleepy", str(i)) for i in range(30)]
        for handle in handles:
            assert await handle.gen() == 1
        assert len(timers) == 30  # one entry per idle actor ...
        assert timers._handle is not None  # ... and one loop timer for them all
        ids = [await h.resolve() for h in handles]
        earliest = min(timers.deadline(actor_id) or 0 for actor_id in ids)
        assert timers._armed_at == earliest
        placement = client.runtime.driver.placement  # type: ignore[attr-defined]
        await eventually(lambda: not placement.loaded())
        assert len(timers) == 0 and timers._handle is None


# -- the sleep shutdown ------------------------------------------------------------------------


async def test_sleep_shutdown_order() -> None:
    events: list[Any] = []
    a = actor("ordered", state={}, options=OPTIONS.replace(sleep_timeout=30.0))

    @a.run
    async def run(c: ActorContext) -> None:
        await c.abort_signal.wait()
        events.append("run.aborted")
        await asyncio.sleep(0.05)  # sleep waits for run
        c.state["run"] = True
        events.append("run.end")

    @a.on_disconnect
    def on_disconnect(c: ActorContext, conn: Any) -> None:
        events.append(("on_disconnect", conn.params, c.aborted))

    @a.on_sleep
    async def on_sleep(c: ActorContext) -> None:
        events.append(("on_sleep", c.aborted, sorted(conn.params for conn in c.conns.values())))
        await asyncio.sleep(0.01)
        c.state["on_sleep"] = True

    @a.action
    def work(c: ActorContext) -> None:
        async def later() -> None:
            await asyncio.sleep(0.08)
            c.state["wait_until"] = True
            events.append("wait_until.end")

        async def kept() -> None:
            await asyncio.sleep(0.1)
            c.state["keep_awake"] = True
            events.append("keep_awake.end")

        c.wait_until(later())
        c.wait_until(c.keep_awake(kept()))

    @a.action
    def snapshot(c: ActorContext) -> tuple[int, Any]:
        return c.generation, dict(c.state)

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.ordered.get_or_create()
        actor_id = await handle.resolve()
        await handle.work()
        instance = client.runtime.instances[actor_id]
        plain = await instance.connect("plain")
        hib = await instance.connect("hib", hibernation=Hibernation(b"gw02", b"rq02"))
        instance.request_sleep()
        await wait_asleep(client, actor_id)
        assert plain.disconnected and not hib.disconnected
        # The abort signal first; the plain connection left before on_sleep, the hibernatable
        # one stayed; run, wait_until and keep_awake were all awaited.
        assert ("on_disconnect", "plain", True) in events
        assert ("on_sleep", True, ["hib"]) in events
        assert events.index(("on_disconnect", "plain", True)) < events.index(
            ("on_sleep", True, ["hib"])
        )
        assert {"run.aborted", "run.end", "wait_until.end", "keep_awake.end"} <= {
            e for e in events if isinstance(e, str)
        }
        assert not any(
            e[0] == "on_disconnect" and e[1] == "hib" for e in events if isinstance(e, tuple)
        )
        # Everything written during the shutdown was in the final save.
        generation, state = await handle.snapshot()
        assert generation == 2
        assert state == {"run": True, "on_sleep": True, "wait_until": True, "keep_awake": True}


async def test_a_request_during_sleep_shutdown_is_served_by_the_next_generation() -> None:
    a = actor("handover", state={"slept": 0}, options=OPTIONS.replace(sleep_timeout=30.0))

    @a.on_sleep
    async def on_sleep(c: ActorContext) -> None:
        await gate("on_sleep").wait()
        c.state["slept"] += 1

    @a.action
    def probe(c: ActorContext) -> tuple[int, int]:
        return c.generation, c.state["slept"]

    @a.action
    def go_to_sleep(c: ActorContext) -> None:
        c.sleep()

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.handover.get_or_create()
        assert await handle.probe() == (1, 0)
        instance = client.runtime.instances[await handle.resolve()]
        await handle.go_to_sleep()
        await eventually(lambda: instance.phase == Phase.SLEEP_GRACE)
        call = asyncio.ensure_future(handle.probe())
        await asyncio.sleep(0.05)
        assert not call.done()  # waits for the shutdown ...
        gate("on_sleep").set()
        # ... and is served by generation 2, which sees what on_sleep wrote.
        assert await call == (2, 1)
        assert instance.phase == Phase.TERMINATED


async def test_a_slow_on_sleep_is_cut_at_the_grace_deadline_and_state_is_saved() -> None:
    a = actor("slowsleep", state={}, options=OPTIONS.replace(sleep_grace_period=30.0))
    reached: list[str] = []

    @a.on_sleep
    async def on_sleep(c: ActorContext) -> None:
        c.state["before"] = True
        reached.append("before")
        if c.generation == 1:  # (generation 2 stops with the test, without a wait)
            await asyncio.sleep(3600)
        c.state["after"] = True
        reached.append("after")

    @a.action
    def snapshot(c: ActorContext) -> tuple[int, Any]:
        return c.generation, dict(c.state)

    with LoopClock() as clock:
        async with setup_runtime(setup(use=[a])) as client:
            handle = client.slowsleep.get_or_create()
            actor_id = await handle.resolve()
            assert await handle.snapshot() == (1, {})
            await eventually(lambda: reached == ["before"])
            placement = client.runtime.driver.placement  # type: ignore[attr-defined]
            await clock.advance(20.0)  # within the 30 s grace period: on_sleep still runs
            assert actor_id in placement.loaded() and reached == ["before"]
            await clock.advance(15.0)  # past it: cut (on_sleep would sleep an hour)
            await wait_asleep(client, actor_id)
            assert await handle.snapshot() == (2, {"before": True})
            assert reached == ["before"]


async def test_run_ignoring_the_abort_is_cut_at_the_grace_deadline() -> None:
    a = actor("stubborn", state={}, options=OPTIONS.replace(sleep_grace_period=0.1))
    cancelled: list[bool] = []

    @a.run
    async def run(c: ActorContext) -> None:
        c.state["ran"] = True
        try:
            await asyncio.sleep(30)  # ignores c.abort_signal
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    @a.action
    def snapshot(c: ActorContext) -> tuple[int, Any]:
        return c.generation, dict(c.state)

    @a.action
    def go_to_sleep(c: ActorContext) -> None:
        c.sleep()

    async with setup_runtime(setup(use=[a])) as client:
        handle = client.stubborn.get_or_create()
        actor_id = await handle.resolve()
        await handle.go_to_sleep()  # run is active: idleness never comes, c.sleep() does
        await wait_asleep(client, actor_id)
        assert cancelled == [True]
        assert (await handle.snapshot())[1] == {"ran": True}


async def test_an_action_in_flight_at_sleep_finishes_and_its_change_is_saved() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle, actor_id, instance = await started(client)
        call = asyncio.ensure_future(handle.slow("inflight"))
        await asyncio.sleep(0.01)
        instance.request_sleep()
        await eventually(lambda: instance.phase == Phase.SLEEP_GRACE)
        gate("inflight").set()
        assert await call == 1  # served by the instance that was going to sleep
        await wait_asleep(client, actor_id)
        assert (await handle.state())["inflight"] is True
