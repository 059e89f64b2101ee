"""A stopped actor leaves no reference cycles (rivetkit/runtime/teardown.py).

Once an actor slept, reference counting alone frees its instance and every collaborator (no
cyclic garbage collection needed), and late callers still get what they got before: the
same objects through a context they kept, ``actor/destroying`` through a collaborator whose
instance is gone, never an ``AttributeError``.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import eventually
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.runtime.conns import ActorConns
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import ActorInstance
from rivetkit.runtime.persistence import StatePersistence
from rivetkit.runtime.queue import ActorQueue
from rivetkit.runtime.queue_writes import QueueWriteBatch
from rivetkit.runtime.schedule import ActorSchedule
from rivetkit.runtime.sleep_policy import SleepPolicy
from rivetkit.runtime.teardown import StoppedOwner
from rivetkit.testing import setup_runtime, setup_test

pytestmark = pytest.mark.asyncio

#: What actions left behind for the test to look at after the actor slept.
KEPT: dict[str, Any] = {}

worker = actor("worker", state={"count": 0}, options=ActorOptions(sleep_timeout=0.05))


@worker.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@worker.action
async def busy(c: Any) -> int:
    """Uses the queue, the schedule, the KV and the state, then keeps what it is asked to."""
    await c.queue.send("jobs", {"x": 1})
    await c.schedule.after(3600.0, "increment", 1)
    await c.kv.put(b"k", b"v")
    c.state["count"] += 1
    await c.save_state(immediate=True)
    return int(c.state["count"])


@worker.action
def keep(c: Any, what: str) -> None:
    KEPT[what] = c if what == "context" else getattr(c, what)


registry = setup(use=[worker])


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    KEPT.clear()
    yield
    KEPT.clear()


#: Every object that used to point back at its instance (or at itself).
KINDS = (
    ActorInstance,
    ActorQueue,
    QueueWriteBatch,
    ActorSchedule,
    StatePersistence,
    ActorConns,
    SleepPolicy,
    ActorContext,
)


def parts(instance: ActorInstance) -> list[weakref.ref[Any]]:
    """Weak references to the instance and those of its parts that take one."""
    return [
        weakref.ref(obj)
        for obj in (
            instance,
            instance.queue,
            instance.persistence,
            instance.connections,
            instance.sleep_policy,
        )
    ]


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cyclic collector off: whatever is freed meanwhile is freed by reference counting."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def freed(runtime: Any, actor_id: str, refs: list[weakref.ref[Any]]) -> None:
    """Wait until the actor stopped and ``refs`` are dead."""
    await eventually(lambda: actor_id not in runtime.instances)
    await eventually(lambda: all(ref() is None for ref in refs))


def cyclic_garbage(kinds: tuple[type, ...]) -> list[Any]:
    """Objects of ``kinds`` that only the cyclic collector could free now."""
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return [obj for obj in gc.garbage if isinstance(obj, kinds)]
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()


async def test_a_slept_actor_is_freed_by_reference_counting(no_gc: None) -> None:
    async with setup_runtime(registry) as client:
        handle = client.get_or_create("worker", ["plain"])
        assert await handle.increment(1) == 1
        actor_id = await handle.resolve()
        refs = parts(client.runtime.instances[actor_id])
        await freed(client.runtime, actor_id, refs)
        assert cyclic_garbage(KINDS) == []
        assert await handle.increment(1) == 2  # woken again, state kept


async def test_one_that_used_queue_schedule_and_kv_over_http_too(no_gc: None) -> None:
    async with setup_test(registry) as client:
        handle = client.worker.get_or_create(["busy"])
        assert await handle.busy() == 1
        actor_id = await handle.resolve()
        runtime = client.app.runtime
        refs = parts(runtime.instances[actor_id])
        await freed(runtime, actor_id, refs)
        assert cyclic_garbage(KINDS) == []
        assert await handle.increment(1) == 2


async def test_a_kept_context_still_reaches_everything() -> None:
    async with setup_runtime(registry) as client:
        handle = client.get_or_create("worker", ["context"])
        await handle.increment(5)
        await handle.keep("context")
        actor_id = await handle.resolve()
        await eventually(lambda: actor_id not in client.runtime.instances)
        c = KEPT["context"]
        assert c.state == {"count": 5}  # the instance lives as long as the context
        assert c.actor_id == actor_id
        assert c.queue.size == 0
        with pytest.raises(RivetError) as caught:
            await c.queue.send("jobs", 1)  # as before the teardown: the actor is stopped
        assert (caught.value.group, caught.value.code) == ("actor", "stopping")
        await asyncio.wait_for(c.save_state(immediate=True), 5.0)


@pytest.mark.parametrize("what", ["queue", "schedule"])
async def test_a_kept_collaborator_answers_a_rivet_error(what: str) -> None:
    async with setup_runtime(registry) as client:
        handle = client.get_or_create("worker", [what])
        await handle.keep(what)
        actor_id = await handle.resolve()
        instance_ref = weakref.ref(client.runtime.instances[actor_id])
        await eventually(lambda: actor_id not in client.runtime.instances)
        await eventually(lambda: instance_ref() is None)
        kept = KEPT[what]
        with pytest.raises(RivetError) as caught:
            if what == "queue":
                await kept.send("jobs", 1)
            else:
                await kept.after(1.0, "increment", 1)
        assert (caught.value.group, caught.value.code) == ("actor", "destroying")


async def test_stopped_owner_forwards_while_the_instance_lives() -> None:
    class Target:
        value = 1

    target = Target()
    owner: Any = StoppedOwner(target)  # type: ignore[arg-type]
    assert owner.value == 1
    owner.value = 2
    assert target.value == 2
    with pytest.raises(AttributeError):
        owner.missing  # noqa: B018
    del target
    gc.collect()
    with pytest.raises(RivetError) as caught:
        owner.value  # noqa: B018
    assert caught.value.code == "destroying"
    with pytest.raises(RivetError):
        owner.value = 3
