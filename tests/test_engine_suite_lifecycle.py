"""One suite, two drivers: sleep, wake, schedules and the durable queue through the client.

Every test here runs twice through the ``served`` fixture: once on the embedded server
(``serve_in_background``) and once with the same registry as an envoy of the session's real
Rivet Engine, the client going through the engine's gateway. The tests look at the runtime
that hosts the actors (``Served.runtime``: the server's, or the envoy's) only to see whether
an actor is asleep; everything else goes through the client, so the two drivers must behave
the same. Timeouts are short (sleep after 0.3 s idle) but no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from engine_fixtures import envoy, new_pool

from conftest import eventually
from rivetkit import ActorOptions, actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine import LocalEngine
from rivetkit.runtime.instance import Phase
from rivetkit.runtime.live_actors import Runtime
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

IDLE = ActorOptions(sleep_timeout=0.3, state_save_interval=0.02)
#: Waits on the real engine include its placement and wake-up round trips.
WAIT = 30.0

napper = actor("napper", state={"n": 0, "wakes": 0, "rings": []}, options=IDLE)


@napper.on_wake
def napper_wake(c: Any) -> None:
    c.state["wakes"] += 1


@napper.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@napper.action
def info(c: Any) -> dict[str, Any]:
    return {"n": c.state["n"], "wakes": c.state["wakes"], "rings": list(c.state["rings"])}


@napper.action
def nap(c: Any) -> int:
    c.sleep()
    return int(c.state["n"])


#: ``(actor_id, monotonic time)`` of every sleep, and of every ``hold`` its (start, end).
SLEEPS: list[tuple[str, float]] = []
HOLDS: dict[str, tuple[float, float]] = {}


@napper.on_sleep
def napper_sleep(c: Any) -> None:
    SLEEPS.append((c.actor_id, time.monotonic()))


@napper.action
async def hold(c: Any, seconds: float) -> int:
    """Busy for longer than the idle timeout: the actor must stay awake meanwhile."""
    start = time.monotonic()
    await asyncio.sleep(seconds)
    c.state["n"] += 1
    HOLDS[c.actor_id] = (start, time.monotonic())
    return int(c.state["n"])


@napper.action
async def remind(c: Any, seconds: float, text: str) -> str:
    return await c.schedule.after(seconds, "ring", text)


#: ``(actor_id, text)`` of every ring, seen from the test without waking the actor (both
#: drivers host the actors in this process).
RANG: list[tuple[str, str]] = []


@napper.action
def ring(c: Any, text: str) -> None:
    c.state["rings"].append(text)
    RANG.append((c.actor_id, text))
    c.broadcast("rang", text)


mailbox = actor("mailbox", state={}, options=IDLE)


@mailbox.action
async def drain(c: Any) -> list[Any]:
    return [[m.name, m.body] for m in await c.queue.try_next_batch(count=100)]


worker = actor("qworker", state={"done": []}, options=IDLE)


@worker.run
async def work(c: Any) -> None:
    async for message in c.queue.iter(completable=True):
        c.state["done"].append(message.body)
        await message.complete({"double": message.body * 2})


@worker.action
def done(c: Any) -> list[Any]:
    return list(c.state["done"])


registry = setup(use=[napper, mailbox, worker])

RETRY = RetryOptions(get_attempts=10, get_or_create_attempts=10, interval=0.1)


class Served:
    """Where the registry runs for one driver: the client's endpoint and the hosting runtime."""

    def __init__(self, kind: str, endpoint: str, runtime: Runtime, pool: str | None) -> None:
        self.kind = kind
        self.endpoint = endpoint
        self.runtime = runtime
        self.pool = pool

    def client(self, encoding: str = "json") -> Client:
        return Client(self.endpoint, pool=self.pool, encoding=encoding, retry=RETRY)

    def phase(self, actor_id: str) -> Phase | None:
        """The hosted instance's phase; None when it is not loaded (asleep)."""
        instance = self.runtime.instances.get(actor_id)
        return instance.phase if instance is not None else None

    def asleep(self, actor_id: str) -> bool:
        return self.phase(actor_id) in (None, Phase.TERMINATED)


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["embedded", "engine"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "embedded":
            endpoint = await stack.enter_async_context(serve_in_background(registry))
            runtime = endpoint.app.runtime  # type: ignore[attr-defined]
            yield Served("embedded", str(endpoint), runtime, None)
        else:
            engine: LocalEngine = request.getfixturevalue("rivet_engine")
            pool = new_pool()
            runtime, _ = await stack.enter_async_context(envoy(registry, engine, pool=pool))
            yield Served("engine", engine.endpoint, runtime, pool)


def key() -> list[str]:
    return [uuid.uuid4().hex[:12]]


async def test_idle_actor_sleeps_and_wakes_with_its_state(served: Served) -> None:
    async with served.client() as client:
        handle = client.napper.get_or_create(key())
        assert await handle.bump() == 1
        assert await handle.bump() == 2
        actor_id = await handle.resolve()
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        assert await handle.bump() == 3  # woken by the request, state intact
        assert (await handle.info())["wakes"] == 2


async def test_c_sleep_puts_the_actor_to_sleep(served: Served) -> None:
    async with served.client() as client:
        handle = client.napper.get_or_create(key())
        await handle.bump()
        actor_id = await handle.resolve()
        assert await handle.nap() == 1
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        info = await handle.info()
        assert info["n"] == 1 and info["wakes"] == 2


async def test_an_action_in_flight_keeps_the_actor_awake(served: Served) -> None:
    async with served.client() as client:
        handle = client.napper.get_or_create(key())
        assert await handle.bump() == 1
        actor_id = await handle.resolve()
        # Three idle timeouts long, and the actor does not begin to sleep meanwhile.
        assert await handle.hold(0.9) == 2
        start, end = HOLDS[actor_id]
        assert not [t for a, t in SLEEPS if a == actor_id and start <= t <= end]


async def test_a_schedule_fires_while_connected(served: Served) -> None:
    async with (
        served.client() as client,
        client.napper.get_or_create(key()).connect() as connection,
    ):
        rang: asyncio.Queue[Any] = asyncio.Queue()
        connection.on("rang", rang.put_nowait)
        await connection.remind(0.2, "soon")
        assert await asyncio.wait_for(rang.get(), WAIT) == "soon"
        assert (await connection.info())["rings"] == ["soon"]


async def test_a_schedule_wakes_a_sleeping_actor(served: Served) -> None:
    async with served.client() as client:
        handle = client.napper.get_or_create(key())
        await handle.remind(1.5, "later")
        actor_id = await handle.resolve()
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        # Nobody calls it: only its alarm can wake it, and then the schedule runs.
        await eventually(lambda: (actor_id, "later") in RANG, timeout=WAIT)
        info = await handle.info()
        assert info["rings"] == ["later"] and info["wakes"] == 2


async def test_queued_messages_survive_sleep_in_order(served: Served) -> None:
    async with served.client() as client:
        handle = client.mailbox.get_or_create(key())
        for i in range(5):
            await handle.send("job", i)
        actor_id = await handle.resolve()
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        assert await handle.drain() == [["job", i] for i in range(5)]
        assert await handle.drain() == []


async def test_completable_messages_across_sleeps(served: Served) -> None:
    async with served.client() as client:
        handle = client.qworker.get_or_create(key())
        first = await handle.send("job", 1, wait=True, timeout=WAIT)
        assert first is not None and first.response == {"double": 2}
        actor_id = await handle.resolve()
        # Its run loop waits on the queue, which does not keep it awake...
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        # ...and a send wakes it again.
        second = await handle.send("job", 21, wait=True, timeout=WAIT)
        assert second is not None and second.response == {"double": 42}
        assert await handle.done() == [1, 21]
