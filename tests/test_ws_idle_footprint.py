"""What an idle ``/connect`` socket keeps in the server (10,000 of them in one process).

Once connected and answered, a session whose frames all went out at once has no writer task;
the ASGI scope no longer holds the upgrade request's headers (the hibernation record keeps
its own copy); our WebSocket protocol keeps its fields in slots. Closing still closes: the
close starts the writer, which finishes.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from server_actors import query
from test_server_no_cycles import serving
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from rivetkit.dispatch.connect import ConnSession
from rivetkit.server import ws_fastpath

INCREMENT = (
    '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1"],"name":"increment","args":[2]}}}'
)


def session_of(conn_id: str) -> ConnSession:
    sessions = [
        obj
        for obj in gc.get_objects()
        if type(obj) is ConnSession and obj.conn is not None and obj.conn.id == conn_id
    ]
    assert len(sessions) == 1
    return sessions[0]


@pytest.mark.asyncio
async def test_idle_connect_socket_keeps_little() -> None:
    async with serving() as (host, port):
        url = f"ws://{host}:{port}/gateway/counter/connect?{query(key='idle')}"
        protocols = [Subprotocol("rivet"), Subprotocol("rivet_encoding.json")]
        async with connect(url, subprotocols=protocols, compression=None) as ws:
            init = json.loads(await ws.recv())
            assert init["body"]["tag"] == "Init"
            await ws.send(INCREMENT)
            answer = json.loads(await ws.recv())
            assert answer["body"]["tag"] == "ActionResponse"
            assert answer["body"]["val"]["output"] == 2

            session = session_of(init["body"]["val"]["connectionId"])
            assert session._writer is None  # every frame went out at once
            direct: Any = session._ws
            assert isinstance(direct, ws_fastpath.DirectWebSocket)
            protocol = direct._protocol
            assert protocol.scope["headers"] == []  # released after the connect
            assert "scope" in type(protocol).__slots__
            conn = session.conn
            assert conn is not None and conn.hibernation is not None
            # The record keeps the headers it stores.
            headers = conn.hibernation.request_headers
            assert "rivet_encoding.json" in headers["sec-websocket-protocol"]

            # Still a working socket: another action, answered in order.
            await ws.send(INCREMENT.replace('"1"', '"2"'))
            again = json.loads(await ws.recv())
            assert again["body"]["val"] == {"id": ["$BigInt", "2"], "output": 4}

        for _ in range(500):  # the server sees the close
            if conn.disconnected and session._writer is not None and session._writer.done():
                break
            await asyncio.sleep(0.01)
        assert conn.disconnected
        assert session._writer is not None and session._writer.done()


def test_slot_names_skip_what_a_base_defines() -> None:
    class Base:
        scope = None

        @property
        def tasks(self) -> int:
            return 0

    names = ws_fastpath._slot_names(Base)
    assert "scope" not in names and "tasks" not in names
    assert "conn" in names and "_fast" in names
    assert len(set(names)) == len(names)
