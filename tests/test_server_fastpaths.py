"""The server's fast paths answer exactly as the generic ones do.

* rivetkit.server.http_fastpath and rivetkit.server.ws_fastpath: our uvicorn protocols (one
  write per HTTP response, a lazy keep-alive timer; WebSocket data frames parsed and written
  in batches) against uvicorn's own, byte for byte, over raw sockets on 127.0.0.1, including split, fragmented, control and
  invalid frames;
* the message and HTTP body fast paths (ActionRequest/ActionResponse/Event, HTTP action bodies)
  against the generic tree walks;
* the /connect session: synchronous actions run inline without overtaking an action that
  arrived before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import struct
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import pytest
import pytest_asyncio
from server_actors import query, registry
from websockets.speedups import apply_mask

from conftest import LoopClock
from rivetkit import ActorOptions, actor, setup
from rivetkit.protocol import http_bodies, messages, trees, values
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Event,
    ToClient,
    ToServer,
)
from rivetkit.server import create_app
from rivetkit.server.http_fastpath import http_protocol
from rivetkit.server.runner import Server, bind_socket, uvicorn_config
from rivetkit.server.ws_fastpath import ws_protocol

pytestmark = pytest.mark.asyncio(loop_scope="module")

# -- servers ---------------------------------------------------------------------------------

# An actor for ordering and large messages.
order = actor(
    "order",
    state={"log": []},
    options=ActorOptions(max_incoming_message_size=1 << 20, max_outgoing_message_size=1 << 20),
)


@order.action
async def slow(c: Any, tag: str) -> str:
    c.state["log"].append(f"{tag}-start")
    await asyncio.sleep(0.02)
    c.state["log"].append(f"{tag}-end")
    return tag


@order.action
def quick(c: Any, tag: str) -> str:
    c.state["log"].append(tag)
    return tag


@order.action(name="takeLog")
def take_log(c: Any) -> list[str]:
    log = list(c.state["log"])
    c.state["log"] = []
    return log


@order.action
def echo(c: Any, value: Any) -> Any:
    return value


test_registry = setup(use=[*registry.actors.values(), order])


class Servers:
    """One app served twice: by our protocols and by uvicorn's own."""

    def __init__(self, ours: str, theirs: str, app: Any) -> None:
        self.ours = ours
        self.theirs = theirs
        self.app = app


@contextlib.asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[tuple[str, int]]:
    sock = bind_socket("127.0.0.1", 0)
    server = Server(uvicorn_config(app, graceful_timeout=2, **options), handle_signals=False)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.005)
        yield sock.getsockname()[:2]
    finally:
        server.request_exit()
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def servers() -> AsyncIterator[Servers]:
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
        app = create_app(test_registry, data_dir=data)
        await app.startup()
        try:
            async with (
                serve(app) as ours,
                serve(app, http="httptools", ws="websockets-sansio") as theirs,
            ):
                yield Servers(f"{ours[0]}:{ours[1]}", f"{theirs[0]}:{theirs[1]}", app)
        finally:
            await app.shutdown()


async def test_our_protocols_are_used() -> None:
    assert not isinstance(http_protocol(), str)
    assert not isinstance(ws_protocol(), str)


# -- raw HTTP --------------------------------------------------------------------------------

_DATE = re.compile(rb"date: [^\r]*\r\n")


async def exchange(address: str, data: bytes, *, until_closed: bool = False) -> bytes:
    """Send ``data``; read until the server closes or goes quiet for 0.3 s."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        while True:
            timeout = 5 if until_closed else 0.3
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
            except asyncio.TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        writer.close()
    return _DATE.sub(b"date: -\r\n", b"".join(chunks))


def _action(name: str, body: bytes, *, version: str = "1.1", extra: str = "") -> bytes:
    head = (
        f"POST /gateway/counter/action/{name}?{query(key='raw')} HTTP/{version}\r\n"
        f"host: x\r\nx-rivet-encoding: json\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


HTTP_CASES = {
    "keep-alive": _action("getCount", b'{"args":[]}'),
    "http/1.0": _action("getCount", b'{"args":[]}', version="1.0"),
    "connection close": _action("getCount", b'{"args":[]}', extra="connection: close\r\n"),
    "pipelined": _action("getCount", b'{"args":[]}') * 3,
    "error": _action("nope", b'{"args":[]}'),
    "bad json": _action("getCount", b"{"),
    "health": b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n",
    "head": b"HEAD /health HTTP/1.1\r\nhost: x\r\n\r\n",
    "metadata": b"GET /metadata HTTP/1.1\r\nhost: x\r\n\r\n",
    "not found": b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n",
    "raw request": (
        f"POST /gateway/misc/request/echo?{query(key='raw')} HTTP/1.1\r\nhost: x\r\n"
        "content-length: 3\r\n\r\nabc"
    ).encode(),
    "expect 100": _action("getCount", b'{"args":[]}', extra="expect: 100-continue\r\n"),
    "chunked": (
        f"POST /gateway/counter/action/getCount?{query(key='raw')} HTTP/1.1\r\nhost: x\r\n"
        "x-rivet-encoding: json\r\ntransfer-encoding: chunked\r\n\r\n"
        '5\r\n{"arg\r\n6\r\ns":[]}\r\n0\r\n\r\n'
    ).encode(),
    "bad request": b"GARBAGE\r\n\r\n",
}


@pytest.mark.parametrize("case", list(HTTP_CASES))
async def test_http_bytes_as_uvicorn(servers: Servers, case: str) -> None:
    data = HTTP_CASES[case]
    ours = await exchange(servers.ours, data)
    theirs = await exchange(servers.theirs, data)
    assert ours == theirs
    assert ours.startswith(b"HTTP/1.1 ")


async def test_http_keep_alive_timeout() -> None:
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
        app = create_app(test_registry, data_dir=data)
        await app.startup()
        try:
            # Loop time moves only when told (plus the real time the test takes, < 4 s).
            with LoopClock() as clock:
                async with serve(app, timeout_keep_alive=10) as (host, port):
                    reader, writer = await asyncio.open_connection(host, port)
                    request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
                    # Requests 6 s apart (30 s in all) keep a 10 s keep-alive open.
                    for _ in range(5):
                        writer.write(request)
                        response = await asyncio.wait_for(reader.readuntil(b"ok"), 2)
                        assert response.endswith(b"ok")
                        await clock.advance(6.0)
                    assert not reader.at_eof()
                    # Then idle past the timeout: closed.
                    await clock.advance(5.0)
                    assert await asyncio.wait_for(reader.read(), 3) == b""
                    writer.close()
        finally:
            await app.shutdown()


# -- raw WebSockets --------------------------------------------------------------------------


def client_frame(
    payload: bytes, opcode: int = 0x1, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes, *, split: int = 0) -> None:
        if not split:
            self.writer.write(data)
            await self.writer.drain()
            return
        for start in range(0, len(data), split):
            self.writer.write(data[start : start + split])
            await self.writer.drain()
            await asyncio.sleep(0.002)

    async def frame(self) -> tuple[bool, int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(2), 5)
        length = head[1] & 0x7F
        assert not head[1] & 0x80  # server frames are not masked
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return bool(head[0] & 0x80), head[0] & 0x0F, await self.reader.readexactly(length)

    async def message(self) -> Any:
        fin, opcode, payload = await self.frame()
        assert fin and opcode == 0x1, (opcode, payload)
        return json.loads(payload)

    async def close_code(self) -> int:
        while True:
            _, opcode, payload = await self.frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    def close(self) -> None:
        self.writer.close()


async def open_ws(address: str, name: str, key: str, encoding: str = "json") -> RawSocket:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"GET /gateway/{name}/connect?{query(key=key)} HTTP/1.1\r\nhost: x\r\n"
            "upgrade: websocket\r\nconnection: Upgrade\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
            f"sec-websocket-protocol: rivet, rivet_encoding.{encoding}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return RawSocket(reader, writer)


def request(action_id: int, name: str, *args: Any) -> bytes:
    return json.dumps(
        {"body": {"tag": "ActionRequest", "val": {"id": ["$BigInt", str(action_id)],
                                                  "name": name, "args": list(args)}}},
        separators=(",", ":"),
    ).encode()  # fmt: skip


def answer(message: Any) -> tuple[int, Any]:
    body = message["body"]
    assert body["tag"] == "ActionResponse", body
    return int(body["val"]["id"][1]), body["val"]["output"]


async def answers(ws: RawSocket, count: int) -> dict[int, Any]:
    return dict([answer(await ws.message()) for _ in range(count)])


@pytest.fixture(params=["ours", "theirs"])
def side(request: pytest.FixtureRequest, servers: Servers) -> str:
    return str(getattr(servers, request.param))


async def test_ws_many_frames_in_one_write(side: str) -> None:
    ws = await open_ws(side, "order", "batch")
    assert (await ws.message())["body"]["tag"] == "Init"
    await ws.send(b"".join(client_frame(request(i, "echo", i)) for i in range(1, 101)))
    got = await answers(ws, 100)
    assert got == {i: i for i in range(1, 101)}
    ws.close()


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 64])
async def test_ws_frames_split_anywhere(servers: Servers, split: int) -> None:
    ws = await open_ws(servers.ours, "order", f"split{split}")
    await ws.message()
    data = b"".join(client_frame(request(i, "echo", "v" * (i * 50))) for i in range(1, 5))
    await ws.send(data, split=split)
    got = await answers(ws, 4)
    assert got == {i: "v" * (i * 50) for i in range(1, 5)}
    ws.close()


@pytest.mark.parametrize("size", [200, 70_000])
async def test_ws_long_frames(side: str, size: int) -> None:
    ws = await open_ws(side, "order", f"long{size}")
    await ws.message()
    await ws.send(client_frame(request(1, "echo", "x" * size)))
    assert answer(await ws.message()) == (1, "x" * size)
    ws.close()


async def test_ws_fragmented_message_and_ping(side: str) -> None:
    ws = await open_ws(side, "order", "fragments")
    await ws.message()
    text = request(7, "echo", "fragmented")
    await ws.send(
        client_frame(text[:10], fin=False)
        + client_frame(b"p1", 0x9)  # a ping between the fragments
        + client_frame(text[10:30], 0x0, fin=False)
        + client_frame(text[30:], 0x0)
        + client_frame(request(8, "echo", "after"))
    )
    frames = [await ws.frame() for _ in range(3)]
    assert frames[0] == (True, 0xA, b"p1")
    assert [answer(json.loads(f[2])) for f in frames[1:]] == [(7, "fragmented"), (8, "after")]
    ws.close()


@pytest.mark.parametrize(
    "bad, code",
    [
        (client_frame(b"\xff\xfe"), 1007),  # not UTF-8
        (client_frame(b"{}", mask=False), 1002),
        (client_frame(b"{}", rsv=0x40), 1002),
        (client_frame(b"{}", 0x3), 1002),  # reserved opcode
        (client_frame(b"x", 0x0), 1002),  # a continuation of nothing
        (client_frame(b"x" * 126, 0x9), 1002),  # control frame too long
    ],
)
async def test_ws_protocol_errors_as_uvicorn(side: str, bad: bytes, code: int) -> None:
    ws = await open_ws(side, "order", "bad")
    await ws.message()
    await ws.send(client_frame(request(1, "echo", 1)))
    assert answer(await ws.message()) == (1, 1)
    # The bad frame fails the connection at once: what follows it is not read.
    await ws.send(client_frame(request(2, "echo", 2)) + bad + client_frame(request(3, "echo", 3)))
    frames = []
    while True:
        frame = await ws.frame()
        frames.append(frame)
        if frame[1] == 0x8:
            break
    assert struct.unpack("!H", frames[-1][2][:2])[0] == code
    assert all(answer(json.loads(payload))[0] == 2 for _, _, payload in frames[:-1])
    ws.close()


async def test_ws_close_handshake(side: str) -> None:
    ws = await open_ws(side, "order", "bye")
    await ws.message()
    await ws.send(client_frame(request(1, "echo", 1)))
    assert answer(await ws.message()) == (1, 1)
    await ws.send(client_frame(b"\x03\xe8", 0x8))
    assert await ws.close_code() == 1000
    assert await asyncio.wait_for(ws.reader.read(), 5) == b""
    ws.close()


async def test_ws_message_beyond_the_size_limit() -> None:
    with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
        app = create_app(test_registry, data_dir=data)
        await app.startup()
        try:
            async with serve(app, ws_max_size=4096) as (host, port):
                ws = await open_ws(f"{host}:{port}", "order", "limit")
                await ws.message()
                await ws.send(client_frame(request(1, "echo", "x" * 4000)))
                assert answer(await ws.message()) == (1, "x" * 4000)
                await ws.send(client_frame(request(2, "echo", "x" * 5000))[:1000])
                assert await ws.close_code() == 1009
                ws.close()
        finally:
            await app.shutdown()


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """A plain ASGI WebSocket echo app (no direct socket)."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def test_ws_plain_asgi_app() -> None:
    async with serve(echo_app) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        ws = RawSocket(reader, writer)
        await ws.send(
            b"".join(client_frame(b"m%d" % i) for i in range(20))
            + client_frame(b"\x00\x01", 0x2)
            + client_frame(b"x" * 300)
        )
        frames = [await ws.frame() for _ in range(22)]
        assert frames[:20] == [(True, 0x1, b"m%d" % i) for i in range(20)]
        assert frames[20:] == [(True, 0x2, b"\x00\x01"), (True, 0x1, b"x" * 300)]
        ws.close()


# -- the /connect session --------------------------------------------------------------------


async def test_sync_actions_never_overtake_earlier_ones(servers: Servers) -> None:
    ws = await open_ws(servers.ours, "order", "order")
    await ws.message()
    await ws.send(
        client_frame(request(1, "slow", "A"))
        + client_frame(request(2, "quick", "B"))
        + client_frame(request(3, "quick", "C"))
    )
    assert await answers(ws, 3) == {1: "A", 2: "B", 3: "C"}
    await ws.send(client_frame(request(4, "takeLog")))
    assert answer(await ws.message()) == (4, ["A-start", "B", "C", "A-end"])
    # A sync action first runs inline; the async one after it, then a sync one behind it.
    await ws.send(
        client_frame(request(5, "quick", "D"))
        + client_frame(request(6, "slow", "E"))
        + client_frame(request(7, "quick", "F"))
    )
    assert await answers(ws, 3) == {5: "D", 6: "E", 7: "F"}
    await ws.send(client_frame(request(8, "takeLog")))
    assert answer(await ws.message()) == (8, ["D", "E-start", "F", "E-end"])
    ws.close()


# -- message and HTTP body fast paths --------------------------------------------------------

VALUES: list[Any] = [
    0, 1, -1, 2**53 - 1, 2**53, -(2**53), 2**64, 1.5, float("nan"), True, False, None,
    "x", "$x", "é\u2028\ud800", [], [1, 2], ["$a", 1], ["$a"], {"a": [1, {"$": 2}]}, b"ab",
    {1, 2}, [2**60], [[1]], {"k": None}, cbor2.undefined,
]  # fmt: skip


def outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "code", None))


def generic_json(message: ToClient) -> str:
    return trees.json_dumps(messages._to_client_tree(message, trees.json_uint, trees.json_number))


def generic_cbor(message: ToClient) -> bytes:
    return values.cbor_dumps_raw(messages._to_client_tree(message, values.U64, trees.plain))


@pytest.mark.parametrize("value", VALUES, ids=repr)
async def test_encode_fast_paths(value: Any) -> None:
    for action_id in (0, 5, 2**64 - 1, 2**64, -1, True):
        message = ToClient(ActionResponse(action_id, value))
        assert outcome(messages.to_client_json, message) == outcome(generic_json, message)
        assert outcome(messages.to_client_cbor, message) == outcome(generic_cbor, message)
        for encoding in ("json", "cbor", "bare"):
            assert outcome(messages.encode_action_response, action_id, value, encoding) == outcome(
                messages.encode_to_client, message, encoding
            )
    for args in ([value], value):
        event = ToClient(Event("ev", args))
        assert outcome(messages.to_client_json, event) == outcome(generic_json, event)
    generic_http = {
        "json": lambda: trees.json_dumps({"output": values.encode_json_compat(value)}).encode(),
        "cbor": lambda: values.cbor_dumps_raw({"output": values.encode_json_compat(value)}),
    }
    for encoding, generic in generic_http.items():
        assert outcome(http_bodies.http_action_response_to, value, encoding) == outcome(generic)


async def test_encode_fast_paths_catch_errors() -> None:
    assert outcome(messages.action_response_json, 1, float("inf"))[0] == "error"
    assert outcome(messages.action_response_json, 1, [1] * 0 + [object()])[0] == "error"


IDS: list[Any] = [
    0, 5, -1, 2**64 - 1, 2**64, True, 1.0, ["$BigInt", "7"], ["$BigInt", "-7"],
    ["$BigInt", "18446744073709551616"], ["$BigInt", "\u0663"], ["$BigInt", ""],
    ["$BigInt", 7], ["$X", "1"], None, "5",
]  # fmt: skip
ARGS: list[Any] = [
    [1], [], None, 5, "x", [1, "a", None, True, 1.5], ["$BigInt", "5"], ["$$x", 1], ["$x"],
    [["$BigInt", "5"]], [{"a": 1}], {"a": 1}, [["$Set", [1]]], ["$Set", [1, 2]],
]  # fmt: skip


def _trees() -> list[Any]:
    trees: list[Any] = [
        {"body": {"tag": "ActionRequest", "val": {"id": i, "name": n, "args": a}}}
        for i, a, n in itertools.product(IDS, ARGS, ["increment", 5, None])
    ]
    trees += [
        {"body": {"tag": "ActionRequest", "val": {"id": 1, "name": "x"}}},
        {"body": {"tag": "ActionRequest", "val": []}},
        {"body": {"tag": "ActionRequest"}},
        {"body": [], "x": 1},
        {"body": {"tag": "SubscriptionRequest", "val": {"eventName": "a", "subscribe": True}}},
        {"body": {"tag": "ActionRequest", "val": {"id": 1, "name": "x", "args": [1], "z": 2}}},
        [],
        "text",
    ]
    return trees


async def test_decode_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    trees = _trees()
    fast = [
        (outcome(messages._to_server_from_tree, t, revive_args=r), r, t)
        for t in trees
        for r in (True, False)
    ]
    texts = [json.dumps(t) for t in trees] + [" {} ", "{} x", "NaN", "[", "", '{"a": 1}']
    fast_text = [
        (
            outcome(messages.decode_to_server, text, "json"),
            messages.action_request_from(text, "json"),
        )
        for text in texts
    ]
    fast_http = [
        outcome(http_bodies.http_action_request_from, json.dumps({"args": a}).encode(), "json")
        for a in [*ARGS, [{"$": 1}]]
    ]
    monkeypatch.setattr(messages, "_fast_action_request", lambda tree, revive: None)
    monkeypatch.setattr(messages, "plain_args", lambda args: False)
    monkeypatch.setattr(http_bodies, "plain_args", lambda args: False)
    for result, revive, tree in fast:
        assert result == outcome(messages._to_server_from_tree, tree, revive_args=revive), tree
    for (result, quick), text in zip(fast_text, texts):
        assert result == outcome(messages.decode_to_server, text, "json"), text
        if quick is not None:  # the session's shortcut gives the same message
            assert result == ("ok", ToServer(ActionRequest(*quick)))
    for result, a in zip(fast_http, [*ARGS, [{"$": 1}]]):
        assert result == outcome(
            http_bodies.http_action_request_from, json.dumps({"args": a}).encode(), "json"
        )


async def test_cbor_shared_references_still_refused() -> None:
    # Tag 28/29 (shared references) bytes make the decoder walk the value, as always.
    cyclic = bytes.fromhex("d81c81d81d00")  # a list holding itself
    assert outcome(values.cbor_loads_raw, cyclic)[0] == "error"
    assert values.cbor_loads_raw(cbor2.dumps({"id": 28, "x": [29]})) == {"id": 28, "x": [29]}


async def test_fast_paths_are_taken(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests above compare our protocols with uvicorn's: make sure ours took their fast
    paths (a direct socket, frames parsed here, one-write responses)."""
    import rivetkit.server.app as app_module

    calls = {"frames": 0, "respond": 0}
    protocol = ws_protocol()
    receive_frames = protocol._receive_frames
    respond = app_module.respond

    def counting_frames(self: Any, data: bytes) -> None:
        calls["frames"] += 1
        receive_frames(self, data)

    def counting_respond(*args: Any) -> bool:
        calls["respond"] += 1
        return bool(respond(*args))

    monkeypatch.setattr(protocol, "_receive_frames", counting_frames)
    monkeypatch.setattr(app_module, "respond", counting_respond)
    ws = await open_ws(servers.ours, "order", "fast")
    await ws.message()
    await ws.send(client_frame(request(1, "echo", 1)))
    assert answer(await ws.message()) == (1, 1)
    ws.close()
    assert calls["frames"] == 1
    assert (await exchange(servers.ours, HTTP_CASES["keep-alive"])).startswith(b"HTTP/1.1 200")
    assert calls["respond"] == 1


async def test_uvicorn_protocols_when_ours_do_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another uvicorn (fields missing): uvicorn's own protocols serve instead."""
    from rivetkit.server import http_fastpath, uvicorn_fit, ws_fastpath

    def clear() -> None:
        for builder in (http_fastpath._http_tools, http_fastpath._build_http_protocol):
            builder.cache_clear()
        ws_fastpath._build_ws_protocol.cache_clear()

    monkeypatch.setattr(uvicorn_fit, "sets_fields", lambda cls, fields: False)
    clear()
    try:
        assert http_protocol() == "httptools"
        assert ws_protocol() == "websockets-sansio"
        with tempfile.TemporaryDirectory(prefix="rivetkit-") as data:
            config = uvicorn_config(create_app(test_registry, data_dir=data))
        assert (config.http, config.ws) == ("httptools", "websockets-sansio")
    finally:
        monkeypatch.undo()
        clear()
    assert not isinstance(http_protocol(), str)
