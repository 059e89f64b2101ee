"""Hibernatable WebSockets end to end in embedded mode (real server on 127.0.0.1).

A ``/connect`` socket stays open while its actor sleeps; the next client message wakes the
actor, whose restored connection (same id, state, subscriptions) handles it; nothing is lost
or answered twice; a client that leaves while the actor sleeps wakes it for ``on_disconnect``;
records of sockets that no longer exist are dropped on wake.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from rivetkit import ActorOptions, UserError, actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.protocol import actor_persist
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Init,
    SubscriptionRequest,
    ToServer,
)
from rivetkit.protocol.messages import decode_to_client, encode_to_server
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime import keys
from rivetkit.runtime.connection import Connection
from rivetkit.runtime.instance import ActorInstance, Phase
from rivetkit.runtime.live_actors import Runtime
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOG: list[Any] = []

# The chat of DESIGN.md §4 plus what the tests look at; it sleeps after 0.2 s idle.
room = actor(
    "hroom",
    state={"messages": [], "wakes": 0},
    options=ActorOptions(sleep_timeout=0.2, state_save_interval=0.05),
)


@room.on_before_connect
def check_user(c: Any, params: Any) -> None:
    if not isinstance(params, dict) or not params.get("user"):
        raise UserError('connect with params {"user": name}', code="missing_user")


@room.create_conn_state
def conn_state(c: Any, params: Any) -> dict[str, Any]:
    return {"user": params["user"], "posts": 0}


@room.on_wake
def woke(c: Any) -> None:
    c.state["wakes"] += 1
    LOG.append(("wake", sorted(conn.state["user"] for conn in c.conns.values())))


@room.on_sleep
async def sleeping(c: Any) -> None:
    LOG.append(("sleep",))
    await asyncio.sleep(float(c.state.get("slow_sleep", 0)))


@room.on_disconnect
def left(c: Any, conn: Connection) -> None:
    LOG.append(("disconnect", conn.state["user"], conn.state["posts"]))


@room.action
def post(c: Any, text: str) -> list[Any]:
    c.conn.state["posts"] += 1
    c.state["messages"].append({"user": c.conn.state["user"], "text": text})
    c.broadcast("message", c.conn.state["user"], text)
    return [len(c.state["messages"]), c.conn.state["posts"], c.generation]


@room.action
def history(c: Any) -> list[Any]:
    return c.state["messages"]


@room.action
def nap(c: Any, slow: float = 0) -> None:
    c.state["slow_sleep"] = slow
    c.sleep()


def load_example(name: str) -> Any:
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_hibernation_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


registry = setup(use=[room, load_example("chat").chat])
FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


def runtime_of(endpoint: str) -> Runtime:
    return endpoint.app.runtime  # type: ignore[attr-defined,no-any-return]


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def asleep(runtime: Runtime, instance: ActorInstance) -> None:
    await wait_for(lambda: instance.phase == Phase.TERMINATED)
    assert runtime.instances.get(instance.actor_id) is None


async def put_to_sleep(runtime: Runtime, instance: ActorInstance) -> None:
    """``c.sleep()``: open connections keep an actor awake (RivetKit's sleep rule), so the
    actor itself asks to sleep; its hibernatable connections hibernate."""
    instance.context.sleep()
    await asleep(runtime, instance)


async def stored_conns(runtime: Runtime, actor_id: str) -> dict[str, Any]:
    entries = await runtime.driver.kv_list(actor_id, keys.CONN_PREFIX, b"\x03")
    records = [actor_persist.CONN.decode(value) for _, value in entries]
    return {record.id: record for record in records}


@pytest.mark.parametrize("encoding", ["json", "cbor", "bare"])
async def test_connection_stays_open_across_sleep(endpoint: str, encoding: str) -> None:
    runtime = runtime_of(endpoint)
    async with Client(endpoint, encoding=encoding, retry=FAST_RETRY) as client:
        handle = client.hroom.get_or_create(["sleep", encoding])
        async with handle.connect({"user": "ann"}) as ann, handle.connect({"user": "bob"}) as bob:
            heard: list[Any] = []
            bob.on("message", lambda user, text: heard.append((user, text)))
            statuses: list[str] = []
            ann.on_status_change(statuses.append)
            bob_statuses: list[str] = []
            bob.on_status_change(bob_statuses.append)
            await bob.history()  # bob's subscription arrived
            assert await ann.post("before") == [1, 1, 1]
            await wait_for(lambda: heard == [("ann", "before")])
            actor_id = await handle.resolve()
            instance = runtime.instances[actor_id]
            ann_id = ann.connection_id
            # Open connections keep it awake (three idle timeouts of 0.2 s), until c.sleep().
            await asyncio.sleep(0.6)
            assert instance.phase == Phase.STARTED
            await put_to_sleep(runtime, instance)
            records = await stored_conns(runtime, actor_id)
            assert set(records) == {ann_id, bob.connection_id}
            assert cbor_loads(records[ann_id].state) == {"user": "ann", "posts": 1}
            assert [s.event_name for s in records[bob.connection_id].subscriptions] == ["message"]
            # The sockets stayed open: no reconnect, same connection ids.
            assert ann.status == "connected" and statuses == []
            # The next message wakes it; the restored connection answers with its state.
            assert await ann.post("after") == [2, 2, 2]
            assert ann.connection_id == ann_id
            await wait_for(lambda: heard == [("ann", "before"), ("ann", "after")])
            woken = runtime.instances[actor_id]
            assert woken is not instance and woken.generation == 2
            assert sorted(c.state["user"] for c in woken.conns.values()) == ["ann", "bob"]
            assert await bob.history() == [
                {"user": "ann", "text": "before"},
                {"user": "ann", "text": "after"},
            ]
            assert statuses == [] and bob_statuses == []
        # Both closed from the client: on_disconnect ran, the records are gone.
        await wait_for(lambda: not runtime.instances[actor_id].conns)
        assert await stored_conns(runtime, actor_id) == {}


async def test_message_during_sleep_grace_is_answered_once(endpoint: str) -> None:
    runtime = runtime_of(endpoint)
    async with Client(endpoint, retry=FAST_RETRY) as client:
        handle = client.hroom.get_or_create(["grace"])
        async with handle.connect({"user": "cy"}) as cy:
            assert (await cy.post("one"))[:2] == [1, 1]
            actor_id = await handle.resolve()
            instance = runtime.instances[actor_id]
            await cy.nap(0.3)  # on_sleep takes 0.3 s
            await wait_for(lambda: instance.phase != Phase.STARTED)
            # Sent while the actor is in its sleep grace: it waits for the next generation.
            results = await asyncio.gather(cy.post("two"), cy.post("three"))
            assert sorted(r[:2] for r in results) == [[2, 2], [3, 3]]
            assert {r[2] for r in results} == {2}  # answered by the woken generation
            assert [m["text"] for m in await cy.history()] == ["one", "two", "three"]


async def test_client_leaving_while_asleep_wakes_the_actor(endpoint: str) -> None:
    runtime = runtime_of(endpoint)
    async with Client(endpoint, retry=FAST_RETRY) as client:
        handle = client.hroom.get_or_create(["leave"])
        conn = await handle.connect({"user": "dee"})
        assert (await conn.post("hi"))[:2] == [1, 1]
        actor_id = await handle.resolve()
        await put_to_sleep(runtime, runtime.instances[actor_id])
        LOG.clear()
        await conn.close()
        # Woken to run on_disconnect (with the saved state) and delete the record.
        await wait_for(lambda: ("disconnect", "dee", 1) in LOG)
        assert LOG[0] == ("wake", [])  # the dead connection is not restored
        await wait_for(lambda: actor_id in runtime.instances)
        assert await stored_conns(runtime, actor_id) == {}


async def test_raw_protocol_across_sleep(endpoint: str) -> None:
    """The wire view: one socket, Init once, responses by id before and after the wake."""
    runtime = runtime_of(endpoint)
    query = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=raw"
    url = endpoint.replace("http://", "ws://") + f"/gateway/hroom/connect?{query}"
    params = "rivet_conn_params." + quote(json.dumps({"user": "raw"}), safe="")
    async with connect(url, subprotocols=["rivet", "rivet_encoding.json", params]) as ws:  # type: ignore[list-item]

        async def recv() -> Any:
            return decode_to_client(await asyncio.wait_for(ws.recv(), 5), "json").body

        async def send(body: Any) -> None:
            await ws.send(encode_to_server(ToServer(body), "json"))

        init = await recv()
        assert isinstance(init, Init)
        await send(SubscriptionRequest("message", True))
        await send(ActionRequest(1, "post", ["a"]))
        events_and_responses = [await recv(), await recv()]
        response = next(b for b in events_and_responses if isinstance(b, ActionResponse))
        assert response.id == 1 and response.output[:2] == [1, 1]
        instance = runtime.instances[init.actor_id]
        await put_to_sleep(runtime, instance)
        await send(ActionRequest(2, "post", ["b"]))
        got = [await recv(), await recv()]
        response = next(b for b in got if isinstance(b, ActionResponse))
        assert response.id == 2 and response.output == [2, 2, 2]
        assert not any(isinstance(b, Init) for b in got)  # no second Init
        woken = runtime.instances[init.actor_id]
        assert list(woken.conns) == [init.connection_id]
        client_index = woken.conns[init.connection_id].hibernation
        assert client_index is not None and client_index.server_message_index == 3


async def test_records_of_dead_sockets_are_dropped(endpoint: str) -> None:
    """A record whose socket no longer exists (e.g. written by a process that died) is
    dropped on the next wake, with on_disconnect."""
    runtime = runtime_of(endpoint)
    async with Client(endpoint, retry=FAST_RETRY) as client:
        handle = client.hroom.get_or_create(["dead"])
        async with handle.connect({"user": "eve"}) as eve:
            await eve.post("x")
            actor_id = await handle.resolve()
            instance = runtime.instances[actor_id]
            # Forge a record from "another gateway" (another process), as a crash leaves.
            ghost = actor_persist.Conn(
                "ghost", b"\xa1\x64user\x65ghost", b"\xa2\x64user\x65ghost\x65posts\x00", [],
                b"\xde\xad\xbe\xef", b"\x00\x00\x00\x01", 0, 0, "/connect", {},
            )  # fmt: skip
            await runtime.driver.kv_write(
                actor_id, puts=[(keys.conn_key("ghost"), actor_persist.CONN.encode(ghost))]
            )
            await put_to_sleep(runtime, instance)
            LOG.clear()
            assert (await eve.post("y"))[:2] == [2, 2]  # wakes it
            await wait_for(lambda: ("disconnect", "ghost", 0) in LOG)
            assert set(await stored_conns(runtime, actor_id)) == {eve.connection_id}


async def test_chat_example_across_a_forced_sleep(endpoint: str) -> None:
    """examples/chat.py itself: the actor is put to sleep by the runtime (request_sleep)."""
    runtime = runtime_of(endpoint)
    async with Client(endpoint, retry=FAST_RETRY) as client:
        chat = client.chat.get_or_create(["forced"])
        async with chat.connect({"user": "ann"}) as ann, chat.connect({"user": "bob"}) as bob:
            heard: list[Any] = []
            bob.on("message", lambda user, text: heard.append((user, text)))
            await bob.history()
            assert await ann.post("hi") == 1
            actor_id = await handle_id(chat)
            instance = runtime.instances[actor_id]
            instance.request_sleep()
            await asleep(runtime, instance)
            # Sent after the sleep: the actor wakes, ann's connection state (her name) is
            # intact, and bob's subscription too.
            assert await ann.post("again") == 2
            await wait_for(lambda: heard == [("ann", "hi"), ("ann", "again")])
            assert runtime.instances[actor_id] is not instance
            assert await bob.history() == [
                {"user": "ann", "text": "hi"},
                {"user": "ann", "text": "again"},
            ]


async def handle_id(handle: Any) -> str:
    actor_id: str = await handle.resolve()
    return actor_id


# -- raw on_websocket sockets ---------------------------------------------------------------

RAW_LOG: list[Any] = []

rawroom = actor(
    "hraw",
    state={"seen": 0},
    options=ActorOptions(
        sleep_timeout=0.2,
        state_save_interval=0.05,
        # Every raw path hibernates but /awake (a predicate given the upgrade request).
        can_hibernate_websocket=lambda request: request.path != "/awake",
    ),
)


@rawroom.create_conn_state
def raw_conn_state(c: Any, params: Any) -> dict[str, Any]:
    return {"n": 0, "who": (params or {}).get("who", "?")}


@rawroom.on_disconnect
def raw_left(c: Any, conn: Connection) -> None:
    RAW_LOG.append(("disconnect", conn.state["who"], conn.state["n"]))


@rawroom.on_websocket
async def raw_handler(c: Any, ws: Any) -> None:
    # A socket that does not hibernate has no connection (c.conn is None).
    conn_state = c.conn.state if c.conn is not None else {"n": 0, "who": "-"}
    RAW_LOG.append(("start", conn_state["who"], ws.resumed, c.generation))
    async for message in ws:
        if message == "bye":
            return  # done with the socket: it closes (1000)
        if message == "boom":
            raise RuntimeError("boom")  # the socket closes with 1011
        conn_state["n"] += 1
        c.state["seen"] += 1
        await ws.send(f"{conn_state['n']}:{message}:{c.generation}")
    RAW_LOG.append(("end", conn_state["who"], ws.hibernating))


raw_registry = setup(use=[rawroom])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def raw_endpoint() -> AsyncIterator[str]:
    async with serve_in_background(raw_registry) as url:
        yield url


def raw_url(endpoint: str, key: str, path: str = "/room") -> str:
    query = f"rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key={key}"
    return endpoint.replace("http://", "ws://") + f"/gateway/hraw/websocket{path}?{query}"


def raw_protocols(who: str) -> list[Any]:
    return ["rivet", "rivet_conn_params." + quote(json.dumps({"who": who}), safe="")]


async def test_raw_socket_hibernates_and_resumes(raw_endpoint: str) -> None:
    runtime = runtime_of(raw_endpoint)
    RAW_LOG.clear()
    async with connect(raw_url(raw_endpoint, "r1"), subprotocols=raw_protocols("ann")) as ws:

        async def ask(text: str) -> str:
            await ws.send(text)
            reply = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(reply, str)
            return reply

        assert await ask("a") == "1:a:1"
        assert await ask("b") == "2:b:1"
        (actor_id,) = [i for i, inst in runtime.instances.items() if inst.name == "hraw"]
        instance = runtime.instances[actor_id]
        # The handler waits in receive() and its connection keeps the actor awake until
        # c.sleep(), which hibernates it.
        await put_to_sleep(runtime, instance)
        assert ("end", "ann", True) in RAW_LOG  # receive() ended: hibernating
        records = await stored_conns(runtime, actor_id)
        (record,) = records.values()
        assert cbor_loads(record.state) == {"n": 2, "who": "ann"}
        assert record.request_path == "/websocket/room"  # the rvt-* query is the gateway's
        assert record.server_message_index == 2
        # The next message wakes it; the handler runs again with the connection's state.
        assert await ask("c") == "3:c:2"
        assert ("start", "ann", True, 2) in RAW_LOG
        # Several at once: in order, none lost or repeated.
        for text in ("d", "e", "f"):
            await ws.send(text)
        replies = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
        assert replies == ["4:d:2", "5:e:2", "6:f:2"]
        woken = runtime.instances[actor_id]
        assert woken.state["seen"] == 6
        await put_to_sleep(runtime, woken)
        assert await ask("g") == "7:g:3"
    # Closed by the client: on_disconnect once, the record is gone.
    await wait_for(lambda: ("disconnect", "ann", 7) in RAW_LOG)
    assert await stored_conns(runtime, actor_id) == {}
    assert RAW_LOG.count(("disconnect", "ann", 7)) == 1


async def test_raw_client_leaving_while_asleep(raw_endpoint: str) -> None:
    runtime = runtime_of(raw_endpoint)
    RAW_LOG.clear()
    async with connect(raw_url(raw_endpoint, "r2"), subprotocols=raw_protocols("bob")) as ws:
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), 10) == "1:x:1"
        (actor_id,) = [
            i for i, inst in runtime.instances.items() if inst.name == "hraw" and inst.key == ["r2"]
        ]
        await put_to_sleep(runtime, runtime.instances[actor_id])
    # The actor wakes only to close the connection (on_disconnect with the saved state).
    await wait_for(lambda: ("disconnect", "bob", 1) in RAW_LOG)
    assert await stored_conns(runtime, actor_id) == {}
    assert not any(entry[:2] == ("start", "bob") and entry[2] for entry in RAW_LOG)


async def test_raw_socket_that_may_not_hibernate_keeps_the_actor_awake(raw_endpoint: str) -> None:
    runtime = runtime_of(raw_endpoint)
    url = raw_url(raw_endpoint, "r3", "/awake")
    async with connect(url, subprotocols=raw_protocols("cy")) as ws:
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), 10) == "1:x:1"
        (instance,) = [
            inst
            for inst in runtime.instances.values()
            if inst.name == "hraw" and inst.key == ["r3"]
        ]
        await asyncio.sleep(0.6)  # three sleep timeouts
        assert instance.phase == Phase.STARTED
        assert await stored_conns(runtime, instance.actor_id) == {}


@pytest.mark.parametrize(("last", "code"), [("bye", 1000), ("boom", 1011)])
async def test_raw_handler_ending_closes_the_socket(
    raw_endpoint: str, last: str, code: int
) -> None:
    """After a wake too: the handler's return (or failure) closes the socket and the
    connection (on_disconnect once, record deleted)."""
    runtime = runtime_of(raw_endpoint)
    RAW_LOG.clear()
    key = f"r-{last}"
    async with connect(raw_url(raw_endpoint, key), subprotocols=raw_protocols(last)) as ws:
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), 10) == "1:x:1"
        (instance,) = [
            inst for inst in runtime.instances.values() if inst.name == "hraw" and inst.key == [key]
        ]
        await put_to_sleep(runtime, instance)
        await ws.send("y")
        assert await asyncio.wait_for(ws.recv(), 10) == "2:y:2"
        await ws.send(last)
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == code
    await wait_for(lambda: ("disconnect", last, 2) in RAW_LOG)
    assert RAW_LOG.count(("disconnect", last, 2)) == 1
    assert await stored_conns(runtime, instance.actor_id) == {}
