"""The in-process transport (rivetkit/server/inprocess.py): HTTP and WebSockets to the real
ASGI app without sockets, with close codes, refusals and clean-up as over a real network."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from conftest import eventually
from rivetkit import actor, setup
from rivetkit.client import ActorError, Client
from rivetkit.server import RivetApp, create_app
from rivetkit.server.inprocess import ENDPOINT, InProcessServer

pytestmark = pytest.mark.asyncio

room = actor("room", state={"said": []})
ended: list[str] = []


@room.action
def say(c: Any, text: str) -> int:
    c.state["said"].append(text)
    c.broadcast("said", text)
    return len(c.state["said"])


@room.on_websocket
async def room_socket(c: Any, ws: Any) -> None:
    path = ws.request.path
    try:
        if path == "/close":
            await ws.close(4001, "bye now")
            return
        await ws.send(f"hello {path}")
        async for message in ws:
            if message == "quit":
                await ws.close(1000, "done")
                return
            await ws.send(message)
    finally:
        ended.append(path)


registry = setup(use=[room])


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RivetApp, InProcessServer]]:
    with tempfile.TemporaryDirectory() as data:
        app = create_app(registry, data_dir=data, listen_host="127.0.0.1")
        await app.startup()
        server = InProcessServer(app)
        try:
            yield app, server
        finally:
            await server.aclose()
            await app.shutdown()


def client_of(server: InProcessServer, encoding: str = "json") -> Client:
    return Client(
        server.endpoint,
        encoding=encoding,
        transport=server.transport(),
        ws_connect=server.ws_connect,
    )


async def raw_socket_url(client: Client, path: str) -> str:
    actor_id = await client.room.get_or_create(["r"]).resolve()
    return f"ws://127.0.0.1:6420/gateway/{actor_id}/websocket{path}"


async def test_http_and_connect_events(served: tuple[RivetApp, InProcessServer]) -> None:
    _, server = served
    async with client_of(server, "cbor") as client:
        meta = await client.metadata()
        assert "room" in meta["actorNames"]
        handle = client.room.get_or_create(["r"])
        assert await handle.say("a") == 1
        async with handle.connect() as conn:
            stream = conn.events("said")
            assert await conn.say("b") == 2
            await handle.say("c")
            seen = [(await stream.__anext__()).args for _ in range(2)]
            assert seen == [["b"], ["c"]]
        await eventually(lambda: server.sockets == frozenset())  # the app's task ended


async def test_foreign_origin_refused_like_a_server(
    served: tuple[RivetApp, InProcessServer],
) -> None:
    _, server = served
    async with client_of(server) as client:
        url = await raw_socket_url(client, "/x")
        with pytest.raises(InvalidStatus) as refused:
            await server.ws_connect(url, additional_headers={"Origin": "https://evil.example"})
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["code"] == "forbidden_origin"
        # HTTP too: the Origin check runs as for a request from the network.
        transport = server.transport()
        async with httpx.AsyncClient(transport=transport, base_url=ENDPOINT) as http:
            answer = await http.get("/metadata", headers={"Origin": "https://evil.example"})
            assert answer.status_code == 403
            assert (await http.get("/metadata")).status_code == 200


async def test_raw_socket_messages_and_close_codes(
    served: tuple[RivetApp, InProcessServer],
) -> None:
    _, server = served
    async with client_of(server) as client:
        ws = await server.ws_connect(await raw_socket_url(client, "/echo"))
        assert await ws.recv() == "hello /echo"
        await ws.send("ping")
        assert await ws.recv() == "ping"
        await ws.send("quit")
        with pytest.raises(ConnectionClosedOK) as closed:
            await ws.recv()
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "done")
        # The app's own close code and reason reach the client.
        ws = await server.ws_connect(await raw_socket_url(client, "/close"))
        with pytest.raises(ConnectionClosedError) as closed_error:
            await ws.recv()
        assert closed_error.value.rcvd is not None
        assert (closed_error.value.rcvd.code, closed_error.value.rcvd.reason) == (4001, "bye now")
        assert (ws.close_code, ws.close_reason) == (4001, "bye now")


async def test_client_close_reaches_the_app(served: tuple[RivetApp, InProcessServer]) -> None:
    _, server = served
    ended.clear()
    async with client_of(server) as client:
        ws = await server.ws_connect(await raw_socket_url(client, "/leaving"))
        assert await ws.recv() == "hello /leaving"
        await ws.close(1000, "")
        await eventually(lambda: "/leaving" in ended)
        with pytest.raises(ConnectionClosedOK):
            await ws.send("late")


async def test_aclose_closes_open_sockets_and_leaves_no_task(
    served: tuple[RivetApp, InProcessServer],
) -> None:
    _, server = served
    client = client_of(server)
    ws = await server.ws_connect(await raw_socket_url(client, "/open"))
    assert await ws.recv() == "hello /open"
    conn = client.room.get_or_create(["r"]).connect()
    await conn
    await server.aclose()
    with pytest.raises(ConnectionClosedOK) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert server.sockets == frozenset()
    with pytest.raises(ConnectionRefusedError):
        await server.ws_connect(await raw_socket_url(client, "/late"))
    await client.close()
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert left == []


async def test_unknown_actor_on_connect_is_an_actor_error(
    served: tuple[RivetApp, InProcessServer],
) -> None:
    _, server = served
    async with client_of(server) as client:
        conn = client.get_for_id("room", "nosuchactorid").connect()
        with pytest.raises(ActorError) as failed:
            await conn
        assert (failed.value.group, failed.value.code) == ("actor", "not_found")
