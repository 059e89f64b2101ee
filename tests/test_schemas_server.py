"""Declared schemas on a real server (``serve_in_background``, 127.0.0.1) with the Python
client in the three encodings: queue sends over HTTP, connection params over HTTP and
WebSocket, events over WebSocket (valid, invalid, undeclared; see tests/schemas_checks.py)."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from rivetkit.client import Client
from rivetkit.server import serve_in_background
from tests.schemas_app import registry
from tests.schemas_checks import check_conn_params, check_events, check_queues

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("encoding", ["json", "cbor", "bare"])
async def test_schemas_on_a_real_server(encoding: str) -> None:
    async with (
        serve_in_background(registry) as endpoint,
        Client(endpoint, encoding=encoding) as client,
    ):
        await check_queues(client, encoding)
        await check_conn_params(client, encoding)
        await check_events(client, encoding)


async def test_raw_websocket_conn_params() -> None:
    async with serve_in_background(registry) as endpoint, Client(endpoint) as client:
        ws = await client.raw.get_or_create(["r"], params={"user": "ann", "x": 1}).websocket()
        try:
            assert await ws.recv() == "hello"
            await ws.send("ping")
            assert await ws.recv() == "ping"
        finally:
            await ws.close()
        ws = await client.raw.get_or_create(["r"], params={"user": 5}).websocket()
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (
            1011,
            "actor.validation_error",
        )
