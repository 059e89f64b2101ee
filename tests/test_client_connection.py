"""Client connections against a scripted fake ``/connect`` server: handshake, actions by id,
events and subscriptions, errors before and after Init, reconnects, close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from client_fakes import FakeConnectServer, FakeSocket

from rivetkit.client import ActorConnection, ActorError, Client
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Error,
    Init,
    SubscriptionRequest,
)

ENCODINGS = ["bare", "json", "cbor"]


class QuickSleep:
    """Records the backoff delays and sleeps 10 ms instead."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def setup(
    encoding: str = "bare", server: FakeConnectServer | None = None
) -> AsyncIterator[tuple[FakeConnectServer, Client, QuickSleep]]:
    server = server or FakeConnectServer()
    await server.start()
    client = Client(server.endpoint, encoding=encoding, disable_metadata_lookup=True)
    sleep = QuickSleep()
    client._session.sleep = sleep
    try:
        yield server, client, sleep
    finally:
        await client.close()
        await server.stop()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def of_type(sock: FakeSocket, kind: type) -> list[Any]:
    return [m for m in sock.received if isinstance(m, kind)]


async def server_got_action(server: Any, name: str) -> None:
    """Wait until the fake server's latest socket has received a call of action ``name``."""
    await until(lambda: any(m.name == name for m in of_type(server.sockets[-1], ActionRequest)))


# MARK: handshake and actions


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_handshake_and_actions(encoding: str) -> None:
    async with setup(encoding) as (server, client, _):
        conn = client.counter.get_or_create(["k"]).connect({"tok": "abc"})
        assert conn.status == "connecting"
        assert await conn is conn
        assert conn.status == "connected" and conn.is_connected
        assert (conn.actor_id, conn.connection_id, conn.conn_id) == ("actor-1", "conn-1", "conn-1")
        sock = server.sockets[0]
        assert sock.subprotocols == [
            "rivet",
            f"rivet_encoding.{encoding}",
            "rivet_conn_params.%7B%22tok%22%3A%22abc%22%7D",
        ]
        assert sock.params == {"tok": "abc"}
        assert sock.path == (
            "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate"
            "&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"
        )
        assert await conn.increment(5) == 5
        assert await conn.action("getCount") == 5
        value = {"big": 2**62, "bytes": b"\x00", "nested": [{"a": None}]}
        assert await conn.echo(value) == [value]
        ids = [m.id for m in of_type(sock, ActionRequest)]
        assert ids == [0, 1, 2]
        await conn.close()
        assert conn.status == "idle" and conn.closed
        await until(lambda: sock.ws.close_code is not None)
        assert (sock.ws.close_code, sock.ws.close_reason) == (1000, "Disposed")


@pytest.mark.asyncio
async def test_responses_matched_by_id() -> None:
    async with setup() as (_, client, _), client.get_for_id("counter", "a").connect() as conn:
        results = await asyncio.gather(conn.slow(0.1), conn.slow(0.05), conn.getCount())
        assert results == ["slow", "slow", 0]


@pytest.mark.asyncio
async def test_no_params_no_params_protocol_and_direct_url() -> None:
    async with setup("json") as (server, client, _):
        async with client.get_for_id("counter", "a b").connect() as conn:
            assert conn.status == "connected"
        sock = server.sockets[0]
        assert sock.subprotocols == ["rivet", "rivet_encoding.json"]
        assert sock.path == "/gateway/a%20b/connect"


@pytest.mark.asyncio
async def test_actions_before_init_are_queued() -> None:
    async with setup() as (_server, client, _):
        conn = client.counter.get_or_create(["k"]).connect()
        # Called before Init: queued, then flushed in order after Init.
        results = await asyncio.gather(conn.increment(1), conn.increment(2), conn.getCount())
        assert results == [1, 3, 3]
        await conn.close()


@pytest.mark.asyncio
async def test_action_error_with_id() -> None:
    async with setup() as (_, client, _), client.counter.get_or_create(["k"]).connect() as conn:
        with pytest.raises(ActorError) as info:
            await conn.fail("nope")
        assert (info.value.group, info.value.code, info.value.message) == (
            "user",
            "boom",
            "nope",
        )
        assert info.value.metadata == {"why": "test"}
        with pytest.raises(ActorError) as info:
            await conn.missing()
        assert info.value.code == "action_not_found"
        # The connection is still usable.
        assert await conn.increment(1) == 1


@pytest.mark.asyncio
async def test_unencodable_args_raise_type_error() -> None:
    async with setup() as (_, client, _), client.counter.get_or_create(["k"]).connect() as conn:
        with pytest.raises(TypeError):
            await conn.echo(object())
        assert await conn.increment(1) == 1


# MARK: events


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_events_and_subscriptions(encoding: str) -> None:
    async with setup(encoding) as (server, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        sock = server.sockets[0]
        got: list[int] = []
        got_async: list[int] = []

        async def async_listener(n: int) -> None:
            await asyncio.sleep(0)
            got_async.append(n)

        off1 = conn.on("newCount", got.append)
        off2 = conn.on("newCount", async_listener)
        assert await conn.increment(2) == 2
        await until(lambda: got == [2] and got_async == [2])
        subs = of_type(sock, SubscriptionRequest)
        assert subs == [SubscriptionRequest("newCount", True)]  # one for both listeners
        off1()
        off1()  # idempotent
        await conn.increment(1)
        await until(lambda: got_async == [2, 3])
        assert got == [2]
        off2()
        await until(lambda: len(of_type(sock, SubscriptionRequest)) == 2)
        assert of_type(sock, SubscriptionRequest)[-1] == SubscriptionRequest("newCount", False)
        await conn.close()


@pytest.mark.asyncio
async def test_once_and_event_streams() -> None:
    async with setup() as (_server, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        first: list[int] = []
        conn.once("newCount", first.append)
        stream = conn.events("newCount")
        await conn.increment(1)
        await conn.increment(1)
        assert [await stream.__anext__() for _ in range(2)] == [
            ("newCount", [1]),
            ("newCount", [2]),
        ]
        assert first == [1]
        all_events = conn.iter_events()
        await conn.increment(1)
        event = await asyncio.wait_for(all_events.__anext__(), 5)
        assert (event.name, event.args) == ("newCount", [3])
        assert await stream.__anext__() == ("newCount", [3])
        waiter = asyncio.ensure_future(conn.next_event("newCount", timeout=5))
        await asyncio.sleep(0.01)
        await conn.increment(1)
        assert await waiter == [4]
        await stream.aclose()
        await conn.close()
        # Streams end when the connection closes.
        with pytest.raises(StopAsyncIteration):
            while True:
                await asyncio.wait_for(all_events.__anext__(), 5)


@pytest.mark.asyncio
async def test_async_for_over_events() -> None:
    async with setup() as (_, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        seen: list[Any] = []

        async def consume() -> None:
            async with conn.events("newCount") as events:
                async for name, args in events:
                    seen.append((name, args))
                    if len(seen) == 3:
                        break

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.01)
        for _ in range(3):
            await conn.increment(1)
        await asyncio.wait_for(task, 5)
        assert seen == [("newCount", [1]), ("newCount", [2]), ("newCount", [3])]
        await conn.close()


@pytest.mark.asyncio
async def test_callback_exceptions_are_contained() -> None:
    async with setup() as (_, client, _), client.counter.get_or_create(["k"]).connect() as conn:
        got: list[int] = []

        def bad(n: int) -> None:
            raise RuntimeError("listener bug")

        conn.on("newCount", bad)
        conn.on("newCount", got.append)
        await conn.increment(1)
        await until(lambda: got == [1])
        with pytest.raises(TypeError):
            conn.on("x", 5)  # type: ignore[arg-type]


# MARK: connection-level errors


async def error_before_init(server: FakeConnectServer, sock: FakeSocket) -> None:
    await sock.send(Error("actor", "invalid_request", "no such actor", None, None, None))
    await sock.ws.close(1011, "actor.invalid_request")


@pytest.mark.asyncio
async def test_error_before_init_gives_up() -> None:
    server = FakeConnectServer(error_before_init)
    async with setup(server=server) as (_, client, sleep):
        conn = client.nope.get_or_create(["k"]).connect()
        errors: list[ActorError] = []
        conn.on_error(errors.append)
        pending = asyncio.ensure_future(conn.action("x"))
        with pytest.raises(ActorError) as info:
            await conn
        assert (info.value.group, info.value.code) == ("actor", "invalid_request")
        assert conn.status == "idle" and conn.error is info.value
        assert [e.code for e in errors] == ["invalid_request"]
        with pytest.raises(ActorError):
            await pending
        assert len(server.sockets) == 1 and sleep.delays == []
        with pytest.raises(ActorError):
            await conn.action("y")


def lifecycle_then_counter(failures: int) -> Any:
    async def script(server: FakeConnectServer, sock: FakeSocket) -> None:
        if len(server.sockets) <= failures:
            await sock.send(Error("actor", "starting", "wait", None, None, None))
            await sock.ws.close(1011, "actor.starting")
            return
        await server.counter_script(sock)

    return script


@pytest.mark.asyncio
async def test_lifecycle_error_before_init_is_retried_on_query_handles() -> None:
    server = FakeConnectServer(lifecycle_then_counter(2))
    async with setup(server=server) as (_, client, sleep):
        conn = await client.counter.get_or_create(["k"]).connect()
        assert conn.status == "connected" and len(server.sockets) == 3
        assert sleep.delays == [0.25, 0.5]
        await conn.close()


@pytest.mark.asyncio
async def test_lifecycle_error_before_init_ends_an_id_connection() -> None:
    server = FakeConnectServer(lifecycle_then_counter(2))
    async with setup(server=server) as (_, client, _):
        with pytest.raises(ActorError) as info:
            await client.get_for_id("counter", "x").connect()
        assert info.value.code == "starting"
        assert len(server.sockets) == 1


@pytest.mark.asyncio
async def test_http_error_on_upgrade() -> None:
    server = FakeConnectServer()
    await server.start()
    await server.stop()
    # A plain HTTP server answering every request with a RivetError.
    body = b'{"group":"actor","code":"invalid_request","message":"unknown actor name"}'

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    http = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = http.sockets[0].getsockname()[1]
    try:
        async with Client(f"http://127.0.0.1:{port}", disable_metadata_lookup=True) as client:
            with pytest.raises(ActorError) as info:
                await client.nope.get_or_create("k").connect()
            assert (info.value.group, info.value.code, info.value.status) == (
                "actor",
                "invalid_request",
                400,
            )
    finally:
        http.close()
        await http.wait_closed()


@pytest.mark.asyncio
async def test_error_after_init_rejects_in_flight_and_calls_on_error() -> None:
    async with (
        setup() as (server, client, _),
        client.counter.get_or_create(["k"]).connect() as conn,
    ):
        errors: list[ActorError] = []
        conn.on_error(errors.append)
        hanging = asyncio.ensure_future(conn.hang())
        await server_got_action(server, "hang")
        with pytest.raises(ActorError) as info:
            await conn.conn_error()
        assert info.value.code == "kaput"
        with pytest.raises(ActorError):
            await hanging
        assert [e.code for e in errors] == ["kaput"]
        # The socket stays open.
        assert conn.status == "connected"
        assert await conn.increment(1) == 1


# MARK: reconnect


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.asyncio
async def test_reconnect_after_socket_loss(encoding: str) -> None:
    async with setup(encoding) as (server, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        statuses: list[str] = []
        opened: list[bool] = []
        closed: list[bool] = []
        errors: list[ActorError] = []
        conn.on_status_change(statuses.append)
        conn.on_open(lambda: opened.append(True))
        conn.on_close(lambda: closed.append(True))
        conn.on_error(errors.append)
        got: list[int] = []
        conn.on("newCount", got.append)
        await conn.increment(1)
        hanging = asyncio.ensure_future(conn.hang())
        await server_got_action(server, "hang")
        await server.sockets[0].ws.close(1011, "actor.restarting")
        with pytest.raises(ActorError) as info:
            await hanging
        assert (info.value.group, info.value.code) == ("actor", "restarting")
        await until(lambda: conn.status == "connected")
        assert statuses[:3] == ["disconnected", "connecting", "connected"]
        assert opened == [True] and closed == [True]
        assert [e.code for e in errors] == ["restarting"]
        sock = server.sockets[1]
        # The subscription is sent again on the new socket, before anything else.
        assert await conn.increment(1) == 2
        assert sock.received[0] == SubscriptionRequest("newCount", True)
        await until(lambda: got == [1, 2])
        # Action ids keep counting across sockets.
        assert [m.id for m in of_type(sock, ActionRequest)] == [2]
        await conn.close()


@pytest.mark.asyncio
async def test_unstructured_loss_rejects_with_connection_lost() -> None:
    async with setup() as (server, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        errors: list[ActorError] = []
        conn.on_error(errors.append)
        hanging = asyncio.ensure_future(conn.hang())
        await server_got_action(server, "hang")
        await server.sockets[0].ws.close(1001, "going away")
        with pytest.raises(ActorError) as info:
            await hanging
        assert (info.value.group, info.value.code) == ("client", "connection_lost")
        assert errors == []
        await until(lambda: conn.status == "connected")
        await conn.close()


@pytest.mark.asyncio
async def test_reconnect_with_backoff_when_server_is_down() -> None:
    async with setup() as (server, client, sleep):
        conn = await client.counter.get_or_create(["k"]).connect()
        conn.on("newCount", lambda n: None)
        port = server.port
        await server.stop()  # closes the socket too
        await until(lambda: len(sleep.delays) >= 4)
        assert sleep.delays[:4] == [0.25, 0.5, 1.0, 2.0]
        assert conn.status == "connecting"
        # An action called while disconnected waits for the connection.
        queued = asyncio.ensure_future(conn.increment(7))
        await asyncio.sleep(0.02)
        assert not queued.done()
        await server.start(port)
        assert await asyncio.wait_for(queued, 5) == 7
        sock = server.sockets[-1]
        assert sock.received[0] == SubscriptionRequest("newCount", True)
        await conn.close()


@pytest.mark.asyncio
async def test_backoff_resets_after_connecting() -> None:
    async with setup() as (server, client, sleep):
        conn = await client.counter.get_or_create(["k"]).connect()
        for _ in range(2):
            before = len(server.sockets)
            port = server.port
            await server.stop()
            await until(lambda: len(sleep.delays) >= 2)
            await server.start(port)
            await until(lambda b=before: conn.status == "connected" and len(server.sockets) > b)
            assert sleep.delays[0] == 0.25
            sleep.delays.clear()
        await conn.close()


# MARK: opening and closing


@pytest.mark.asyncio
async def test_open_timeout() -> None:
    async def never_init(server: FakeConnectServer, sock: FakeSocket) -> None:
        await sock.ws.wait_closed()

    server = FakeConnectServer(never_init)
    async with setup(server=server) as (_, client, _):
        conn = client.counter.get_or_create(["k"]).connect(open_timeout=0.2)
        with pytest.raises(ActorError) as info:
            await conn
        assert (info.value.group, info.value.code) == ("client", "connection_open_failed")
        assert conn.closed and conn.status == "idle"


@pytest.mark.asyncio
async def test_open_timeout_when_nothing_listens() -> None:
    server = FakeConnectServer()
    await server.start()
    await server.stop()
    async with Client(server.endpoint, disable_metadata_lookup=True) as client:
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).connect(open_timeout=0.3)
        assert info.value.code == "connection_open_failed"
        assert "WebSocket connect to ws://" in info.value.message


@pytest.mark.asyncio
async def test_close_rejects_pending_and_is_idempotent() -> None:
    async with setup() as (server, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        hanging = asyncio.ensure_future(conn.hang())
        stream = conn.events("newCount")
        await server_got_action(server, "hang")
        await conn.close()
        await conn.close()
        with pytest.raises(ActorError) as info:
            await hanging
        assert info.value.code == "connection_disposed"
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        with pytest.raises(ActorError) as info:
            await conn.increment(1)
        assert info.value.code == "connection_disposed"
        with pytest.raises(ActorError):
            await conn


@pytest.mark.asyncio
async def test_client_close_closes_connections() -> None:
    async with setup() as (server, client, _):
        conns: list[ActorConnection] = [
            await client.counter.get_or_create([str(i)]).connect() for i in range(3)
        ]
        await client.close()
        assert all(c.closed for c in conns)
        await until(lambda: all(s.ws.close_code == 1000 for s in server.sockets))


@pytest.mark.asyncio
async def test_unknown_response_ids_are_ignored() -> None:
    async def script(server: FakeConnectServer, sock: FakeSocket) -> None:
        await sock.send(Init("a", "c"))
        await sock.send(ActionResponse(id=99, output=1))
        await sock.send(Error("user", "x", "y", None, 98, None))
        await server.serve_actions(sock)

    server = FakeConnectServer(script)
    async with (
        setup(server=server) as (_, client, _),
        client.counter.get_or_create("k").connect() as conn,
    ):
        assert await conn.increment(1) == 1


@pytest.mark.asyncio
async def test_init_on_reconnect_updates_ids() -> None:
    async with setup() as (server, client, _):
        conn = await client.counter.get_or_create(["k"]).connect()
        assert conn.connection_id == "conn-1"
        await server.sockets[0].ws.close(1001, "bye")
        await until(lambda: conn.connection_id == "conn-2" and conn.status == "connected")
        assert isinstance(server.sockets[1].received, list)
        await conn.close()


def test_init_message_fields() -> None:
    # Guards the field names the fake server and the client rely on.
    assert Init("a", "c")._fields == ("actor_id", "connection_id")


@pytest.mark.asyncio
async def test_connect_through_a_closed_client() -> None:
    async with setup() as (server, client, _):
        await client.close()
        with pytest.raises(ActorError) as info:
            await client.counter.get_or_create(["k"]).connect()
        assert info.value.code == "client_closed"
        assert server.sockets == []
