"""Destroy: the shutdown of runtime spec §3.3, data and alarm removed, the key free again.

``c.destroy()`` and the manager's ``DELETE /actors/{id}`` (``driver.destroy_actor``), on an
awake and on a sleeping actor; every connection closed, ``on_destroy`` with its own timeout,
``run`` cut short; later calls get ``actor/not_found``; a new ``get_or_create`` with the same
key makes a fresh actor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from conftest import eventually
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.runtime.connection import Hibernation
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import Phase
from rivetkit.server import serve_in_background
from rivetkit.testing import RuntimeClient, setup_runtime

pytestmark = pytest.mark.asyncio

OPTIONS = ActorOptions(sleep_timeout=0.05, sleep_grace_period=0.3, state_save_interval=0.02)
EVENTS: list[Any] = []
GATES: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    return GATES.setdefault(name, asyncio.Event())


@pytest.fixture(autouse=True)
def fresh() -> None:
    EVENTS.clear()
    GATES.clear()


def build(options: ActorOptions = OPTIONS) -> Any:
    a = actor("doomed", state={"n": 0}, options=options)

    @a.run
    async def run(c: ActorContext) -> None:
        EVENTS.append(("run", c.generation))
        try:
            await asyncio.sleep(3600)  # ignores the abort signal: destroy cuts it
        except asyncio.CancelledError:
            EVENTS.append("run.cancelled")
            raise

    @a.on_disconnect
    def on_disconnect(c: ActorContext, conn: Any) -> None:
        EVENTS.append(("on_disconnect", conn.params, c.aborted))

    @a.on_sleep
    def on_sleep(c: ActorContext) -> None:
        EVENTS.append("on_sleep")

    @a.on_destroy
    async def on_destroy(c: ActorContext) -> None:
        EVENTS.append(("on_destroy", c.aborted, len(c.conns)))
        if "slow_destroy" in GATES:
            await gate("slow_destroy").wait()
        await asyncio.sleep(0.01)
        EVENTS.append("on_destroy.end")

    @a.action
    def inc(c: ActorContext) -> tuple[int, int]:
        c.state["n"] += 1
        return c.state["n"], c.generation

    @a.action
    async def slow(c: ActorContext) -> str:
        await gate("slow").wait()
        c.state["n"] += 100
        return "finished"

    @a.action
    async def remind(c: ActorContext) -> str:
        await c.kv.put(b"user", b"data")
        return await c.schedule.after(3600, "inc")

    @a.action
    def go_away(c: ActorContext) -> None:
        c.destroy()

    @a.action
    def go_away_twice(c: ActorContext) -> str:
        c.destroy()
        try:
            c.destroy()
        except RivetError as exc:
            return f"{exc.group}.{exc.code}"
        return "no error"

    return a


async def wait_gone(client: RuntimeClient, actor_id: str) -> None:
    placement = client.runtime.driver.placement  # type: ignore[attr-defined]
    await eventually(lambda: actor_id not in placement.loaded())


async def assert_not_found(call: Any) -> None:
    with pytest.raises(RivetError) as caught:
        await call
    assert (caught.value.group, caught.value.code) == ("actor", "not_found")


async def test_c_destroy_runs_the_destroy_shutdown_and_removes_everything() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle = client.doomed.get_or_create("k")
        assert await handle.inc() == (1, 1)
        actor_id = await handle.resolve()
        await handle.remind()
        driver: Any = client.runtime.driver
        assert driver.alarms.get(actor_id) is not None
        instance = client.runtime.instances[actor_id]
        plain = await instance.connect("plain")
        hib = await instance.connect("hib", hibernation=Hibernation(b"gw03", b"rq03"))
        await handle.go_away()
        await wait_gone(client, actor_id)
        # Every connection closed (the hibernatable one too) after the abort, then on_destroy;
        # run was not waited for.
        assert plain.disconnected and hib.disconnected
        assert ("on_disconnect", "plain", True) in EVENTS
        assert ("on_disconnect", "hib", True) in EVENTS
        assert ("on_destroy", True, 0) in EVENTS and "on_destroy.end" in EVENTS
        assert "run.cancelled" in EVENTS and "on_sleep" not in EVENTS
        assert instance.phase == Phase.TERMINATED
        # Data, KV and alarm gone; the record is marked destroyed.
        assert await driver.kv_list(actor_id, b"", None) == []
        assert driver.alarms.get(actor_id) is None
        record = await driver.get_actor(actor_id)
        assert record is not None and record.destroy_ts is not None
        assert await driver.find_actor("doomed", ["k"]) is None
        await assert_not_found(handle.inc())
        await assert_not_found(client.doomed.get("k").inc())
        await assert_not_found(driver.destroy_actor(actor_id))
        # The key is free: a fresh actor with fresh state.
        fresh = client.doomed.get_or_create("k")
        assert await fresh.inc() == (1, 1)
        assert await fresh.resolve() != actor_id


async def test_a_second_destroy_is_stopping() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle = client.doomed.get_or_create("twice")
        actor_id = await handle.resolve()
        assert await handle.go_away_twice() == "actor.stopping"
        await wait_gone(client, actor_id)
        await assert_not_found(handle.inc())


async def test_on_destroy_has_its_own_timeout_not_the_grace_period() -> None:
    options = OPTIONS.replace(sleep_grace_period=0.05, on_destroy_timeout=2.0)
    async with setup_runtime(setup(use=[build(options)])) as client:
        handle = client.doomed.get_or_create("own-timeout")
        actor_id = await handle.resolve()
        gate("slow_destroy")
        destroying = asyncio.ensure_future(client.runtime.driver.destroy_actor(actor_id))
        await asyncio.sleep(0.2)  # four grace periods
        assert not destroying.done() and "on_destroy.end" not in EVENTS
        gate("slow_destroy").set()
        await destroying
        assert "on_destroy.end" in EVENTS


async def test_on_destroy_past_its_timeout_is_cut_and_the_actor_still_goes() -> None:
    options = OPTIONS.replace(on_destroy_timeout=0.1)
    async with setup_runtime(setup(use=[build(options)])) as client:
        handle = client.doomed.get_or_create("cut")
        actor_id = await handle.resolve()
        gate("slow_destroy")  # never set
        await client.runtime.driver.destroy_actor(actor_id)
        assert "on_destroy.end" not in EVENTS
        await assert_not_found(handle.inc())


async def test_destroy_during_an_in_flight_action() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle = client.doomed.get_or_create("inflight")
        actor_id = await handle.resolve()
        call = asyncio.ensure_future(handle.slow())
        await asyncio.sleep(0.02)
        destroying = asyncio.ensure_future(client.runtime.driver.destroy_actor(actor_id))
        instance = client.runtime.instances[actor_id]
        await eventually(lambda: instance.phase == Phase.DESTROY_GRACE)
        # New calls no longer reach this instance; they wait for the destroy, then find nothing.
        late = asyncio.ensure_future(handle.inc())
        await asyncio.sleep(0.05)
        assert not destroying.done() and not late.done()  # the action is still running
        gate("slow").set()
        assert await call == "finished"  # the in-flight action completed within the grace
        await destroying
        await assert_not_found(late)
        await assert_not_found(handle.inc())


async def test_destroy_of_a_sleeping_actor_wakes_it_for_on_destroy() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle = client.doomed.get_or_create("asleep")
        assert await handle.inc() == (1, 1)
        actor_id = await handle.resolve()
        await handle.remind()
        instance = client.runtime.instances[actor_id]
        instance.request_sleep()  # run is active: idleness alone would never put it to sleep
        await wait_gone(client, actor_id)
        driver: Any = client.runtime.driver
        assert driver.alarms.get(actor_id) is not None  # sleeping keeps the alarm
        await driver.destroy_actor(actor_id)
        assert ("run", 2) in EVENTS  # woken (generation 2) ...
        assert ("on_destroy", True, 0) in EVENTS  # ... so that on_destroy ran
        assert driver.alarms.get(actor_id) is None
        assert await driver.kv_list(actor_id, b"", None) == []
        await assert_not_found(handle.inc())


async def test_destroy_requested_during_sleep_destroys_after_the_sleep() -> None:
    async with setup_runtime(setup(use=[build()])) as client:
        handle = client.doomed.get_or_create("sleep-then-destroy")
        assert await handle.inc() == (1, 1)
        actor_id = await handle.resolve()
        instance = client.runtime.instances[actor_id]
        gate("slow")
        call = asyncio.ensure_future(handle.slow())  # keeps the sleep shutdown going
        await asyncio.sleep(0.02)
        instance.request_sleep()
        await eventually(lambda: instance.phase == Phase.SLEEP_GRACE)
        instance.request_destroy()
        gate("slow").set()
        await call
        await eventually(lambda: "on_destroy.end" in EVENTS)
        await wait_gone(client, actor_id)
        await assert_not_found(handle.inc())
        assert EVENTS.index("on_sleep") < EVENTS.index("on_destroy.end")


async def test_manager_delete_of_a_sleeping_actor_over_http() -> None:
    registry = setup(use=[build()])
    async with serve_in_background(registry) as endpoint:
        runtime = endpoint.app.runtime  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=endpoint, timeout=10) as http:
            created = await http.put(
                "/actors", json={"name": "doomed", "key": "http", "runner_name_selector": "default"}
            )
            assert created.status_code == 200, created.text
            actor_id = created.json()["actor"]["actor_id"]
            action = f"/gateway/{actor_id}/action/inc"
            assert (await http.post(action, json={"args": []})).json() == {"output": [1, 1]}
            runtime.instances[actor_id].request_sleep()
            placement = runtime.driver.placement
            await eventually(lambda: actor_id not in placement.loaded())
            deleted = await http.delete(f"/actors/{actor_id}?namespace=default")
            assert (deleted.status_code, deleted.json()) == (200, {})
            assert ("on_destroy", True, 0) in EVENTS
            gone = await http.post(action, json={"args": []})
            assert gone.status_code == 404 and gone.json()["code"] == "not_found"
            again = await http.delete(f"/actors/{actor_id}")
            assert again.status_code == 404
            fresh = await http.put(
                "/actors", json={"name": "doomed", "key": "http", "runner_name_selector": "default"}
            )
            assert fresh.json()["actor"]["actor_id"] != actor_id
