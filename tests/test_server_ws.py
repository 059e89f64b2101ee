"""The actor-connect WebSocket (/connect) in every encoding, and raw on_websocket, over a
real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from server_actors import query, registry
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Error,
    Event,
    Init,
    SubscriptionRequest,
    ToServer,
)
from rivetkit.protocol.messages import decode_to_client, encode_to_server
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

ENCODINGS = ["json", "cbor", "bare"]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint() -> AsyncIterator[str]:
    async with serve_in_background(registry) as url:
        yield url


def ws_url(endpoint: str, name: str, key: str, path: str = "/connect") -> str:
    return endpoint.replace("http://", "ws://") + f"/gateway/{name}{path}?{query(key=key)}"


def protocols(encoding: str | None, params: Any = None) -> list[str]:
    offered = ["rivet"]
    if encoding is not None:
        offered.append(f"rivet_encoding.{encoding}")
    if params is not None:
        offered.append("rivet_conn_params." + quote(json.dumps(params), safe=""))
    return offered


async def recv(ws: ClientConnection, encoding: str) -> Any:
    data = await asyncio.wait_for(ws.recv(), 5)
    if encoding == "json":
        assert isinstance(data, str)  # rivetkit-core sends json as text frames
    else:
        assert isinstance(data, bytes)
    return decode_to_client(data, encoding).body


async def send(ws: ClientConnection, encoding: str, body: Any) -> None:
    await ws.send(encode_to_server(ToServer(body), encoding))


async def open_conn(
    endpoint: str, name: str, key: str, encoding: str, params: Any = None
) -> tuple[ClientConnection, Init]:
    ws = await connect(ws_url(endpoint, name, key), subprotocols=protocols(encoding, params))
    assert ws.subprotocol == "rivet"
    init = await recv(ws, encoding)
    assert isinstance(init, Init), init
    return ws, init


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_connect_actions_and_events(endpoint: str, encoding: str) -> None:
    key = f"ws-{encoding}"
    ws, init = await open_conn(endpoint, "counter", key, encoding)
    assert init.actor_id and init.connection_id
    await send(ws, encoding, SubscriptionRequest("newCount", True))
    await send(ws, encoding, SubscriptionRequest("newCount", True))  # idempotent
    await send(ws, encoding, ActionRequest(0, "increment", [2]))
    event = await recv(ws, encoding)
    assert event == Event("newCount", [2])
    assert await recv(ws, encoding) == ActionResponse(0, 2)
    await send(ws, encoding, ActionRequest(1, "nope", []))
    error = await recv(ws, encoding)
    assert isinstance(error, Error)
    assert (error.group, error.code, error.action_id) == ("actor", "action_not_found", 1)
    await send(ws, encoding, SubscriptionRequest("newCount", False))
    await send(ws, encoding, ActionRequest(2, "increment", [1]))
    assert await recv(ws, encoding) == ActionResponse(2, 3)  # no event any more
    await ws.close()


async def test_bare_wire_bytes(endpoint: str) -> None:
    ws = await connect(ws_url(endpoint, "counter", "bare-bytes"), subprotocols=protocols("bare"))
    init = await ws.recv()
    assert isinstance(init, bytes) and init[:3] == b"\x04\x00\x00"
    await ws.send(b"\x04\x00\x01\x08newCount\x01")
    await ws.send(b"\x04\x00\x00\x00\x09increment\x02\x81\x02")
    assert await ws.recv() == b"\x04\x00\x03\x08newCount\x02\x81\x02"
    assert await ws.recv() == b"\x04\x00\x02\x00\x01\x02"
    await ws.close()


async def test_cbor_ids_are_64_bit(endpoint: str) -> None:
    ws, _ = await open_conn(endpoint, "counter", "cbor-ids", "cbor")
    await send(ws, "cbor", ActionRequest(7, "getCount", []))
    raw = await ws.recv()
    assert isinstance(raw, bytes)
    assert b"\x62id\x1b\x00\x00\x00\x00\x00\x00\x00\x07" in raw
    await ws.close()


async def test_json_ids_are_bigints(endpoint: str) -> None:
    ws = await connect(ws_url(endpoint, "counter", "json-ids"), subprotocols=["rivet"])
    first = json.loads(await ws.recv())  # no encoding offered: json
    assert first["body"]["tag"] == "Init"
    await ws.send(
        '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"nope","args":[]}}}'
    )
    error = json.loads(await ws.recv())
    assert error["body"]["val"]["actionId"] == ["$BigInt", "0"]
    await ws.send(
        '{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1"],"name":"getCount","args":[]}}}'
    )
    response = json.loads(await ws.recv())
    assert response["body"] == {
        "tag": "ActionResponse",
        "val": {"id": ["$BigInt", "1"], "output": 0},
    }
    await ws.close()


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_chat_broadcast_and_params(endpoint: str, encoding: str) -> None:
    room = f"room-{encoding}"
    ann, _ = await open_conn(endpoint, "chat", room, encoding, {"user": "ann"})
    bob, _ = await open_conn(endpoint, "chat", room, encoding, {"user": "bob"})
    await send(bob, encoding, SubscriptionRequest("message", True))
    await send(ann, encoding, SubscriptionRequest("message", True))
    await asyncio.sleep(0.05)
    await send(ann, encoding, ActionRequest(0, "post", ["hi"]))
    assert await recv(bob, encoding) == Event("message", ["ann", "hi"])
    assert await recv(ann, encoding) == Event("message", ["ann", "hi"])
    assert await recv(ann, encoding) == ActionResponse(0, 1)
    await send(bob, encoding, ActionRequest(0, "history", []))
    assert await recv(bob, encoding) == ActionResponse(0, [{"user": "ann", "text": "hi"}])
    await ann.close()
    await bob.close()


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_refused_connection(endpoint: str, encoding: str) -> None:
    ws = await connect(ws_url(endpoint, "chat", "refused"), subprotocols=protocols(encoding))
    assert ws.subprotocol == "rivet"
    error = await recv(ws, encoding)
    assert isinstance(error, Error)
    assert (error.group, error.code, error.action_id) == ("user", "missing_user", None)
    assert await closed(ws) == (1011, "user.missing_user")


async def test_concurrent_actions_answer_by_id(endpoint: str) -> None:
    ws, _ = await open_conn(endpoint, "misc", "concurrent", "json")
    await send(ws, "json", ActionRequest(0, "slow", [0.3, "slow"]))
    await send(ws, "json", ActionRequest(1, "slow", [0.0, "fast"]))
    await send(ws, "json", ActionRequest(2, "fail", ["bad"]))
    got = [await recv(ws, "json") for _ in range(3)]
    assert got[2] == ActionResponse(0, "slow")  # the slow one does not hold the others up
    assert ActionResponse(1, "fast") in got[:2]
    (error,) = [item for item in got if isinstance(item, Error)]
    assert (error.action_id, error.code, error.metadata) == (2, "bad", {"code": "bad"})
    await ws.close()


async def test_ws_message_size_limits(endpoint: str) -> None:
    ws, _ = await open_conn(endpoint, "misc", "limits", "json")
    await send(ws, "json", ActionRequest(0, "big", [4000]))
    error = await recv(ws, "json")
    assert (error.code, error.action_id) == ("outgoing_too_long", 0)
    await send(ws, "json", ActionRequest(1, "echo", ["y" * 2000]))
    error = await recv(ws, "json")
    assert (error.group, error.code, error.action_id) == ("message", "incoming_too_long", None)
    assert await closed(ws) == (1011, "message.incoming_too_long")


async def test_event_over_limit_is_dropped(endpoint: str) -> None:
    ws, _ = await open_conn(endpoint, "misc", "big-event", "json")
    await send(ws, "json", SubscriptionRequest("e", True))
    await send(ws, "json", ActionRequest(0, "shout_big", ["e", 3000]))
    assert await recv(ws, "json") == ActionResponse(0, 1)
    await send(ws, "json", ActionRequest(1, "shout", ["e", "small"]))
    assert await recv(ws, "json") == Event("e", ["small"])
    assert await recv(ws, "json") == ActionResponse(1, 1)
    await ws.close()


async def test_unsupported_encoding_and_no_rivet_protocol(endpoint: str) -> None:
    ws = await connect(
        ws_url(endpoint, "counter", "enc"), subprotocols=["rivet", "rivet_encoding.xml"]
    )
    assert await closed(ws) == (1003, "actor.unsupported_websocket_encoding")
    # no subprotocol offered: none echoed, json spoken
    ws = await connect(ws_url(endpoint, "counter", "enc"))
    assert ws.subprotocol is None
    assert json.loads(await ws.recv())["body"]["tag"] == "Init"
    await ws.close()


async def test_connect_to_unknown_actor(endpoint: str) -> None:
    url = endpoint.replace("http://", "ws://") + "/gateway/nosuchactorid/connect"
    ws = await connect(url, subprotocols=protocols("bare"))
    error = await recv(ws, "bare")
    assert (error.group, error.code, error.action_id) == ("actor", "not_found", None)
    assert await closed(ws) == (1011, "actor.not_found")
    url = endpoint.replace("http://", "ws://") + f"/gateway/nobody/connect?{query()}"
    ws = await connect(url, subprotocols=protocols("json"))
    error = await recv(ws, "json")
    assert (error.code, error.action_id) == ("invalid_request", None)
    assert await closed(ws) == (1011, "actor.invalid_request")


async def test_disconnect_runs_and_conn_leaves(endpoint: str) -> None:
    runtime = endpoint.app.runtime  # type: ignore[attr-defined]
    ws, init = await open_conn(endpoint, "chat", "leave", "json", {"user": "cy"})
    instance = runtime.instances[init.actor_id]
    assert init.connection_id in instance.conns
    await ws.close()
    for _ in range(100):
        if init.connection_id not in instance.conns:
            break
        await asyncio.sleep(0.01)
    assert init.connection_id not in instance.conns


async def test_raw_websocket(endpoint: str) -> None:
    ws = await connect(
        ws_url(endpoint, "misc", "raw", "/websocket/room/1"),
        subprotocols=["rivet", "rivet_encoding.bare"],
    )
    assert ws.subprotocol == "rivet"
    assert await ws.recv() == "hello /room/1"
    await ws.send("ping")
    assert await ws.recv() == "ping"
    await ws.send(b"\x00\x01")
    assert await ws.recv() == b"\x00\x01"
    await ws.send("bye")
    assert await closed(ws) == (1000, "")
    ws = await connect(ws_url(endpoint, "misc", "raw", "/websocket/fail"))
    code, reason = await closed(ws)
    assert code == 1011 and reason == "core.internal_error"
    ws = await connect(ws_url(endpoint, "counter", "raw", "/websocket/x"))
    assert await closed(ws) == (1011, "handler.websocket_not_defined")
    ws = await connect(ws_url(endpoint, "misc", "raw", "/inspector/connect"))
    assert await closed(ws) == (1008, "inspector.unauthorized")  # the inspector, not raw
    # any other path is raw too, as it is (RivetKit: every path but /connect)
    ws = await connect(ws_url(endpoint, "misc", "raw", "/other"))
    assert await ws.recv() == "hello /other"
    await ws.close()
