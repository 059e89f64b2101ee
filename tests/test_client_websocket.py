"""``handle.websocket(path)``: a raw WebSocket to an actor's ``on_websocket`` handler, against a
real server (path, query string, params and extra subprotocols; errors; the ``ws_connect``
seam)."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed

from rivetkit import actor, setup
from rivetkit.client import ActorError, Client
from rivetkit.client.raw_websocket import raw_websocket_path
from rivetkit.server import serve_in_background

echo = actor("echo", state={})


@echo.on_websocket
async def echo_socket(c: Any, ws: Any) -> None:
    request = ws.request
    query = {k: v for k, v in request.query.items() if not k.startswith("rvt-")}
    offered = request.headers.get("sec-websocket-protocol", "")
    await ws.send(json.dumps({"path": request.path, "query": query, "protocols": offered}))
    async for message in ws:
        await ws.send(message)


plain = actor("plain", state={})


@plain.action
def noop(c: Any) -> None:
    return None


registry = setup(use=[echo, plain])


@contextlib.asynccontextmanager
async def served(**options: Any) -> AsyncIterator[Client]:
    async with (
        serve_in_background(registry) as endpoint,
        Client(str(endpoint), **options) as client,
    ):
        yield client


def test_raw_websocket_path() -> None:
    assert raw_websocket_path("") == "/websocket/"
    assert raw_websocket_path("/room/1?x=2") == "/websocket/room/1?x=2"
    assert raw_websocket_path("room") == "/websocket/room"


@pytest.mark.asyncio
async def test_echo_with_path_query_params_and_protocols() -> None:
    async with served() as client:
        handle = client.echo.get_or_create(["k"], params={"user": "ann"})
        ws = await handle.websocket("/room/1?x=2", protocols=["chat.v1"])
        try:
            hello = json.loads(await ws.recv())
            assert hello["path"] == "/room/1"
            assert hello["query"] == {"x": ["2"]}
            offered = [p.strip() for p in hello["protocols"].split(",")]
            assert offered[:2] == ["rivet", "rivet_encoding.bare"]
            assert offered[2].startswith("rivet_conn_params.")
            assert offered[3] == "chat.v1"
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
        finally:
            await ws.close()
        # By actor id too (the direct gateway form).
        by_id = client.get_for_id("echo", await handle.resolve())
        ws = await by_id.websocket()
        try:
            assert json.loads(await ws.recv())["path"] == "/"
        finally:
            await ws.close()


@pytest.mark.asyncio
async def test_goes_through_ws_connect() -> None:
    opened: list[str] = []

    async def recording_connect(url: str, **kw: Any) -> Any:
        opened.append(url)
        return await websockets_connect(url, **kw)

    async with served(ws_connect=recording_connect) as client:
        ws = await client.echo.get_or_create(["w"]).websocket("a")
        await ws.close()
    assert len(opened) == 1
    assert "/gateway/echo/websocket/a?rvt-namespace=default&rvt-method=getOrCreate" in opened[0]


@pytest.mark.asyncio
async def test_actor_without_handler_and_missing_actor() -> None:
    async with served() as client:
        ws = await client.plain.get_or_create(["p"]).websocket()
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (
            1011,
            "handler.websocket_not_defined",
        )
        # Errors found after the upgrade arrive as the close reason ``group.code``.
        ws = await client.get_for_id("echo", "no-such-id").websocket()
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "actor.not_found")


@pytest.mark.asyncio
async def test_dead_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with Client(endpoint, disable_metadata_lookup=True) as client:
        with pytest.raises(ActorError) as info:
            await client.echo.get_or_create(["k"]).websocket("x")
    assert (info.value.group, info.value.code) == ("client", "connection_open_failed")
    assert info.value.message.startswith(f"cannot reach the server at {endpoint}: WebSocket")
