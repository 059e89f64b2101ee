"""The Python client end to end against the real server (``serve_in_background``) with
``examples/counter.py``, ``examples/chat.py`` and a test actor taking an input."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rivetkit import actor, setup
from rivetkit.client import ActorError, Client, RetryOptions, SyncClient

server_module = pytest.importorskip("rivetkit.server")
if not hasattr(server_module, "serve_in_background"):  # pragma: no cover
    pytest.skip("rivetkit.server.serve_in_background is missing", allow_module_level=True)
serve_in_background = server_module.serve_in_background

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENCODINGS = ["bare", "json", "cbor"]


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"_client_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


counter = load_example("counter").counter
chat = load_example("chat").chat

greeter = actor("greeter", create_state=lambda c, input: {"name": (input or {}).get("name")})


@greeter.action
def hello(c: Any) -> str:
    return f"hello {c.state['name']}"


@greeter.action(name="myKey")
def my_key(c: Any) -> list[str]:
    return list(c.key)


registry = setup(use=[counter, chat, greeter])

# get handles give up on a missing actor after 2 tries instead of 24 (2.4 s).
FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def served(encoding: str = "bare", **kw: Any) -> AsyncIterator[tuple[str, Client]]:
    async with (
        serve_in_background(registry, **kw) as endpoint,
        Client(str(endpoint), encoding=encoding, retry=FAST_RETRY) as client,
    ):
        yield str(endpoint), client


# MARK: stateless actions


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_actions_and_errors(encoding: str) -> None:
    async with served(encoding) as (_, client):
        handle = client.counter.get_or_create(["k", encoding])
        assert await handle.increment(5) == 5
        assert await handle.increment() == 6
        assert await handle.action("getCount") == 6
        with pytest.raises(ActorError) as info:
            await handle.increment(-1)
        error = info.value
        assert (error.group, error.code, error.message) == (
            "user",
            "negative_amount",
            "amount must be >= 0",
        )
        assert error.status == 400
        with pytest.raises(ActorError) as info:
            await handle.nope()
        assert (info.value.group, info.value.code, info.value.status) == (
            "actor",
            "action_not_found",
            404,
        )
        # A different key is a different actor.
        assert await client.counter.get_or_create(["other", encoding]).getCount() == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_resolve_get_get_for_id_create(encoding: str) -> None:
    async with served(encoding) as (_, client):
        goc = client.counter.get_or_create("r")
        actor_id = await goc.resolve()
        assert isinstance(actor_id, str) and actor_id
        assert await goc.resolve() == actor_id
        assert await client.counter.get("r").resolve() == actor_id
        await goc.increment(2)
        assert await client.counter.get(["r"]).getCount() == 2
        by_id = client.get_for_id("counter", actor_id)
        assert await by_id.increment(1) == 3
        assert await by_id.resolve() == actor_id

        created = await client.counter.create(["fresh"])
        assert created.actor_id and created.actor_id != actor_id
        assert await created.increment(4) == 4
        assert await client.counter.get(["fresh"]).resolve() == created.actor_id
        assert await client.counter.get_or_create(["fresh"]).getCount() == 4
        with pytest.raises(ActorError):
            await client.counter.create(["fresh"])  # the key is taken


@pytest.mark.asyncio
async def test_missing_actor_and_unknown_name() -> None:
    async with served() as (_, client):
        with pytest.raises(ActorError) as info:
            await client.counter.get(["missing"]).getCount()
        assert (info.value.group, info.value.code) == ("actor", "not_found")
        with pytest.raises(ActorError) as info:
            await client.counter.get(["missing"]).resolve()
        assert info.value.code == "not_found"
        with pytest.raises(ActorError) as info:
            await client.nope.get_or_create(["k"]).anything()
        assert info.value.group != "client"
        with pytest.raises(ActorError):
            await client.get_for_id("counter", "no-such-id").getCount()


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_input(encoding: str) -> None:
    async with served(encoding) as (_, client):
        greeter_handle = client.greeter.get_or_create(["g"], input={"name": "Ada"})
        assert await greeter_handle.hello() == "hello Ada"
        assert await greeter_handle.myKey() == ["g"]
        # The input only applies on creation.
        assert await client.greeter.get_or_create(["g"], input={"name": "Bob"}).hello() == (
            "hello Ada"
        )
        resolved = client.greeter.get_or_create(["g2"], input={"name": "Cy"})
        actor_id = await resolved.resolve()
        assert await client.get_for_id("greeter", actor_id).hello() == "hello Cy"
        created = await client.greeter.create(["g3", "x/y"], input={"name": "Di"})
        assert await created.hello() == "hello Di"
        assert await created.myKey() == ["g3", "x/y"]


@pytest.mark.asyncio
async def test_metadata() -> None:
    async with served() as (_, client):
        metadata = await client.metadata()
        assert metadata.get("runtime") == "rivetkit"
        assert "clientEndpoint" not in metadata


# MARK: connections


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_connection_events_and_subscriptions(encoding: str) -> None:
    async with served(encoding) as (_, client):
        handle = client.counter.get_or_create(["c", encoding])
        async with handle.connect() as conn, handle.connect() as other:
            assert conn.actor_id == await handle.resolve()
            assert conn.connection_id and conn.connection_id != other.connection_id
            mine: list[int] = []
            theirs: list[int] = []
            off = conn.on("newCount", mine.append)
            other.on("newCount", theirs.append)
            stream = other.events("newCount")
            # A round trip on each connection makes sure the subscriptions arrived.
            await conn.getCount()
            await other.getCount()
            assert await conn.increment(1) == 1
            results = await asyncio.gather(conn.increment(1), conn.increment(1), conn.getCount())
            assert sorted(results[:2]) == [2, 3]
            await until(lambda: len(mine) == 3 and len(theirs) == 3)
            assert mine == theirs == [1, 2, 3]
            assert [await stream.__anext__() for _ in range(3)] == [
                ("newCount", [n]) for n in (1, 2, 3)
            ]
            # An HTTP action broadcasts to the connections too.
            assert await handle.increment(10) == 13
            await until(lambda: mine[-1:] == [13])
            # Unsubscribed: no more events for this listener.
            off()
            await conn.getCount()
            await other.increment(1)
            await until(lambda: theirs[-1:] == [14])
            assert mine[-1] == 13
            with pytest.raises(ActorError) as info:
                await conn.increment(-5)
            assert (info.value.group, info.value.code) == ("user", "negative_amount")
            with pytest.raises(ActorError) as info:
                await conn.nope()
            assert info.value.code == "action_not_found"
            assert await conn.getCount() == 14


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_chat(encoding: str) -> None:
    async with served(encoding) as (_, client):
        room = client.chat.get_or_create(["room", encoding])
        async with room.connect({"user": "ann"}) as ann, room.connect({"user": "bob"}) as bob:
            heard: list[tuple[str, str]] = []
            bob.on("message", lambda user, text: heard.append((user, text)))
            await bob.history()
            assert await ann.post("hi") == 1
            assert await bob.post("hey") == 2
            await until(lambda: len(heard) == 2)
            assert heard == [("ann", "hi"), ("bob", "hey")]
            # HTTP actions go through on_before_connect too: they need the params.
            with pytest.raises(ActorError) as info:
                await room.history()
            assert info.value.code == "missing_user"
            as_carl = client.chat.get_or_create(["room", encoding], params={"user": "carl"})
            assert await as_carl.history() == [
                {"user": "ann", "text": "hi"},
                {"user": "bob", "text": "hey"},
            ]
        with pytest.raises(ActorError) as info:
            await room.connect()
        assert (info.value.group, info.value.code) == ("user", "missing_user")


# MARK: reconnect across a server restart


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_connection_survives_server_restart(encoding: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    events: list[int] = []
    statuses: list[str] = []
    server = serve_in_background(registry, data_dir=data_dir)
    endpoint = str(await server.__aenter__())
    port = int(endpoint.rsplit(":", 1)[1])
    async with Client(endpoint, encoding=encoding) as client:
        conn = await client.counter.get_or_create(["restart"]).connect()
        conn.on("newCount", events.append)
        conn.on_status_change(statuses.append)
        await conn.getCount()
        assert await conn.increment(3) == 3
        await until(lambda: events == [3])
        first_conn_id = conn.connection_id
        await server.__aexit__(None, None, None)
        await until(lambda: conn.status != "connected")
        # An action called while the server is down waits for the reconnect.
        pending = asyncio.ensure_future(conn.increment(1))
        await asyncio.sleep(0.3)
        assert not pending.done()
        server = serve_in_background(registry, port=port, data_dir=data_dir)
        await server.__aenter__()
        try:
            assert await asyncio.wait_for(pending, 15) == 4  # state survived the restart
            await until(lambda: conn.status == "connected")
            assert conn.connection_id != first_conn_id
            # The subscription was sent again: events resume.
            assert await conn.increment(1) == 5
            await until(lambda: events[-2:] == [4, 5])
            assert "disconnected" in statuses and statuses[-1] == "connected"
            # HTTP calls of the same client work again too (stale keep-alive connections).
            assert await client.counter.get_or_create(["restart"]).getCount() == 5
            await conn.close()
        finally:
            await server.__aexit__(None, None, None)


# MARK: SyncClient


@contextlib.contextmanager
def threaded_server() -> Iterator[str]:
    """serve_in_background on an event loop in another thread; yields the endpoint."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    manager = serve_in_background(registry)

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    try:
        yield str(run(manager.__aenter__()))
    finally:
        try:
            run(manager.__aexit__(None, None, None))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_sync_client_end_to_end(encoding: str) -> None:
    with (
        threaded_server() as endpoint,
        SyncClient(endpoint, encoding=encoding, retry=FAST_RETRY) as client,
    ):
        counter_handle = client.counter.get_or_create(["sync"])
        assert counter_handle.increment(2) == 2
        actor_id = counter_handle.resolve()
        assert client.get_for_id("counter", actor_id).getCount() == 2
        with pytest.raises(ActorError) as info:
            counter_handle.increment(-1)
        assert info.value.code == "negative_amount"
        created = client.counter.create(["sync2"])
        assert created.increment(1) == 1
        with counter_handle.connect() as conn:
            stream = conn.events("newCount")
            assert conn.increment(1) == 3
            assert stream.next(timeout=5) == ("newCount", [3])
        with client.chat.get_or_create(["sync"]).connect({"user": "sam"}) as chat_conn:
            assert chat_conn.post("yo") == 1
            assert chat_conn.history() == [{"user": "sam", "text": "yo"}]
