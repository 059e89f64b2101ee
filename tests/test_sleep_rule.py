"""RivetKit's sleep rule on both drivers, through the client and the inspector socket.

Runtime spec §1 (Sleep): the idle timer is armed only with *no connections*, so an open
client connection, hibernatable ``/connect`` included, keeps its actor awake until it closes
or the actor calls ``c.sleep()`` (which hibernates it: the socket stays open, the next message
wakes the actor). The inspector's socket is no connection: it neither keeps the actor awake
nor wakes it again once it sleeps (the socket stays open across the sleep, so a dashboard has
nothing to reconnect). "Stays awake" / "stays asleep" are checked over several idle timeouts
by counting ``on_wake`` and ``on_sleep`` calls; no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from engine_fixtures import envoy, new_pool
from websockets.asyncio.client import ClientConnection, connect

from conftest import eventually
from rivetkit import ActorOptions, actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.drivers.engine import LocalEngine
from rivetkit.inspector.token import actor_token
from rivetkit.protocol import inspector_protocol as ip
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime.instance import Phase
from rivetkit.runtime.live_actors import Runtime
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 0.3
#: Waits on the real engine include its placement and wake-up round trips.
WAIT = 30.0

dozer = actor(
    "ruledozer",
    state={"n": 0},
    options=ActorOptions(sleep_timeout=TIMEOUT, state_save_interval=0.02),
)
#: (actor id, "wake" | "sleep") in order.
EVENTS: list[tuple[str, str]] = []


#: Polled through the engine: a poll's round trip under a loaded CI machine can take longer
#: than ``TIMEOUT``, so this one idles for longer than any poll gap there.
POLL_TIMEOUT = 2.0
polled = actor(
    "rulepolled",
    state={"n": 0},
    options=ActorOptions(sleep_timeout=POLL_TIMEOUT, state_save_interval=0.02),
)


@dozer.on_wake
@polled.on_wake
def woke(c: Any) -> None:
    EVENTS.append((c.actor_id, "wake"))


@dozer.on_sleep
@polled.on_sleep
def sleeping(c: Any) -> None:
    EVENTS.append((c.actor_id, "sleep"))


@dozer.action
def bump(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@dozer.action
def nap(c: Any) -> None:
    c.sleep()


registry = setup(use=[dozer, polled])
RETRY = RetryOptions(get_attempts=10, get_or_create_attempts=10, interval=0.1)


def events_of(actor_id: str) -> list[str]:
    return [kind for who, kind in EVENTS if who == actor_id]


class Served:
    """Where the registry runs for one driver: the client's endpoint and the hosting runtime."""

    def __init__(self, kind: str, endpoint: str, runtime: Runtime, pool: str | None) -> None:
        self.kind = kind
        self.endpoint = endpoint
        self.runtime = runtime
        self.pool = pool

    def client(self) -> Client:
        return Client(self.endpoint, pool=self.pool, retry=RETRY)

    def asleep(self, actor_id: str) -> bool:
        instance = self.runtime.instances.get(actor_id)
        return instance is None or instance.phase == Phase.TERMINATED

    async def idle_for(self, timeouts: int) -> None:
        """Let ``timeouts`` idle timeouts (and the engine's round trips) pass."""
        await asyncio.sleep(timeouts * TIMEOUT + (1.0 if self.kind == "engine" else 0.0))


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


async def test_an_open_connection_keeps_the_actor_awake_until_c_sleep(served: Served) -> None:
    async with served.client() as client:
        handle = client.ruledozer.get_or_create(key())
        async with handle.connect() as conn:
            assert await conn.bump() == 1
            actor_id = await handle.resolve()
            await served.idle_for(4)
            assert not served.asleep(actor_id)
            assert events_of(actor_id) == ["wake"]  # no sleep meanwhile
            connection_id = conn.connection_id
            await conn.nap()  # c.sleep(): the connection hibernates
            await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
            assert events_of(actor_id) == ["wake", "sleep"]
            assert await conn.bump() == 2  # the next message wakes it, same connection
            assert conn.connection_id == connection_id and conn.status == "connected"
            await served.idle_for(4)  # the restored connection keeps it awake again
            assert events_of(actor_id) == ["wake", "sleep", "wake"]
        # The connection closed: nothing keeps it awake any more.
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)


async def test_the_last_connection_closing_lets_it_sleep(served: Served) -> None:
    async with served.client() as client:
        handle = client.ruledozer.get_or_create(key())
        first = await handle.connect()
        second = await handle.connect()
        assert await first.bump() == 1
        actor_id = await handle.resolve()
        await first.close()
        await served.idle_for(3)
        assert not served.asleep(actor_id)  # the second is still open
        await second.close()
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        assert events_of(actor_id) == ["wake", "sleep"]


async def token_of(served: Served, handle: Any) -> tuple[str, str]:
    """Bump the actor to 1 and read its inspector token, a connection holding it awake."""
    async with handle.connect() as conn:
        assert await conn.bump() == 1
        actor_id: str = await handle.resolve()
        return actor_id, await actor_token(served.runtime.instances[actor_id])


async def open_inspector(served: Served, actor_id: str, token: str) -> ClientConnection:
    base = served.endpoint.replace("http://", "ws://")
    url = f"{base}/gateway/{actor_id}/inspector/connect?protocol_version=6"
    ws = await connect(url, subprotocols=["rivet", f"rivet_inspector_token.{token}"])  # type: ignore[list-item]
    init = ip.decode_to_client(await asyncio.wait_for(ws.recv(), WAIT), 6)
    assert isinstance(init, ip.Init)
    return ws


async def test_an_attached_inspector_neither_keeps_it_awake_nor_wakes_it(served: Served) -> None:
    async with served.client() as client:
        handle = client.ruledozer.get_or_create(key())
        actor_id, token = await token_of(served, handle)
        ws = await open_inspector(served, actor_id, token)  # awake once Init is in
        try:
            # Idle with the inspector attached: it sleeps after sleep_timeout ...
            await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
            before = events_of(actor_id)
            assert before[-1] == "sleep"
            # ... and stays asleep: the socket stays open, so nothing reconnects or wakes it.
            await served.idle_for(4)
            assert events_of(actor_id) == before
            assert served.asleep(actor_id)
            assert ws.close_code is None  # still open
            # A request on the socket wakes the actor and is answered.
            await ws.send(ip.encode_to_server(ip.StateRequest(1), 6))
            while True:
                answer = ip.decode_to_client(await asyncio.wait_for(ws.recv(), WAIT), 6)
                if isinstance(answer, ip.StateResponse):
                    break
            assert answer.rid == 1 and cbor_loads(answer.state) == {"n": 1}
            assert events_of(actor_id)[len(before)] == "wake"
        finally:
            await ws.close()


async def test_embedded_metadata_polls_neither_wake_nor_keep_it_awake() -> None:
    """The dashboard polls ``/metadata`` every second; the embedded server answers it for a
    sleeping actor without waking it (through the engine, the gateway wakes the actor for
    any request: see docs/concepts/lifecycle.md)."""
    async with (
        serve_in_background(registry) as endpoint,
        Client(endpoint, retry=RETRY) as client,
        httpx.AsyncClient() as http,
    ):
        runtime = endpoint.app.runtime  # type: ignore[attr-defined]
        served = Served("embedded", str(endpoint), runtime, None)
        handle = client.ruledozer.get_or_create(key())
        actor_id, token = await token_of(served, handle)
        ws = await open_inspector(served, actor_id, token)
        url = f"{endpoint}/gateway/{actor_id}/metadata"
        answers: list[httpx.Response] = []

        async def poll() -> None:
            while True:
                answers.append(await http.get(url))
                await asyncio.sleep(TIMEOUT / 3)

        poller = asyncio.ensure_future(poll())
        try:
            await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
            polled, before = len(answers), events_of(actor_id)
            await served.idle_for(4)
            assert len(answers) > polled  # polled meanwhile
            assert events_of(actor_id) == before and before[-1] == "sleep"
        finally:
            poller.cancel()
            await ws.close()
        last = answers[-1]
        assert last.status_code == 200 and last.json()["runtime"] == "rivetkit"
        assert last.headers["x-rivet-actor"] == actor_id


async def test_the_inspector_socket_across_several_sleeps(served: Served) -> None:
    """Request, sleep, request again, a few times on one socket: every request wakes the
    actor and is answered in order (engine: the socket is reopened with the gateway's message
    numbering each time); closing the socket while the actor sleeps is fine."""
    async with served.client() as client:
        handle = client.ruledozer.get_or_create(key())
        actor_id, token = await token_of(served, handle)
        ws = await open_inspector(served, actor_id, token)
        first_wakes = events_of(actor_id).count("wake")
        try:
            for rid in (1, 2, 3):
                await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
                await ws.send(ip.encode_to_server(ip.StateRequest(rid), 6))
                while True:
                    answer = ip.decode_to_client(await asyncio.wait_for(ws.recv(), WAIT), 6)
                    if isinstance(answer, ip.StateResponse):
                        break
                assert answer.rid == rid and cbor_loads(answer.state) == {"n": 1}
            assert events_of(actor_id).count("wake") == first_wakes + 3
            await eventually(lambda: served.asleep(actor_id), timeout=WAIT)
        finally:
            await ws.close()
        wakes = events_of(actor_id).count("wake")
        await served.idle_for(2)
        assert events_of(actor_id).count("wake") <= wakes + 1  # at most one to see the close
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)


async def test_engine_metadata_polls_count_as_requests(rivet_engine: LocalEngine) -> None:
    """Through the engine, the gateway wakes a sleeping actor for a ``/metadata`` poll; the
    poll then counts like any request (RivetKit's rule), so a dashboard polling every second
    keeps the actor awake instead of waking it after each sleep. Once the polls stop, it
    sleeps."""
    pool = new_pool()
    async with (
        envoy(registry, rivet_engine, pool=pool) as (runtime, _),
        Client(rivet_engine.endpoint, pool=pool, retry=RETRY) as client,
        httpx.AsyncClient() as http,
    ):
        served = Served("engine", rivet_engine.endpoint, runtime, pool)
        handle = client.rulepolled.get_or_create(key())
        actor_id = await handle.resolve()
        url = f"{rivet_engine.endpoint}/gateway/{actor_id}/metadata"
        answers: list[httpx.Response] = []

        async def poll() -> None:
            while True:
                answers.append(await http.get(url))
                await asyncio.sleep(POLL_TIMEOUT / 8)

        poller = asyncio.ensure_future(poll())
        try:
            await eventually(lambda: bool(answers) and not served.asleep(actor_id), timeout=WAIT)
            before = events_of(actor_id)
            await asyncio.sleep(3 * POLL_TIMEOUT)
            assert events_of(actor_id) == before  # polled: it did not sleep meanwhile
        finally:
            poller.cancel()
        assert answers[-1].status_code == 200
        await eventually(lambda: served.asleep(actor_id), timeout=WAIT)  # polls stopped
        assert events_of(actor_id) == [*before, "sleep"]
