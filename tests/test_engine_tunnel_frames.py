"""The tunnel's direct encodings (rivetkit/drivers/engine/tunnel_frames.py) against the
generated codec; the envoy's coalesced writes (direct_send.py) and inline receives
(inline_receive.py) against a real socket.

Run under both twins of the codec (the suite's compiled pass and its RIVETKIT_PURE=1 pass)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from rivetkit.drivers.engine import tunnel_frames
from rivetkit.drivers.engine.envoy import EnvoyClient
from rivetkit.drivers.engine.tunnel_frames import (
    request_headers,
    response_frame,
    response_headers,
)
from rivetkit.protocol.envoy_protocol import (
    TO_ENVOY,
    TO_RIVET,
    HttpStreamAbortReason,
    HttpStreamAbortReasonKind,
    MessageId,
    ProtocolMetadata,
    ToEnvoyInit,
    ToEnvoyPing,
    ToEnvoyRequestAbort,
    ToEnvoyTunnelMessage,
    ToRivetMetadata,
    ToRivetPong,
    ToRivetResponseStart,
    ToRivetTunnelMessage,
)

NAMES = [b"content-type", b"x-rivet-actor", b"set-cookie", b"content-length", b"connection",
         b"transfer-encoding", b"x-a", b"vary"]  # fmt: skip
VALUES = [b"application/json", b"", b"a=1", b"caf\xe9", b"\xff\x80", b"x" * 200, b"12"]


def reference(gateway_id: bytes, request_id: bytes, status: int, raw: Any, body: bytes) -> bytes:
    """What the tunnel sent before the direct encoding: the codec over the header dict."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        if raw_name in (b"content-length", b"transfer-encoding", b"connection"):
            continue
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    headers["content-length"] = str(len(body))
    message = ToRivetTunnelMessage(
        MessageId(gateway_id, request_id, 0), ToRivetResponseStart(status, headers, body, False)
    )
    return bytes(TO_RIVET.encode(message))


def test_response_frame_matches_the_codec() -> None:
    rng = random.Random(7)
    for case in range(600):
        raw = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randrange(0, 9))]
        body = rng.randbytes(rng.choice([0, 1, 12, 127, 128, 300, 20_000]))
        status = rng.choice([200, 204, 400, 404, 500, 65535, 0])
        gateway_id, request_id = rng.randbytes(4), rng.randbytes(4)
        expected = reference(gateway_id, request_id, status, raw, body)
        for _ in range(2):  # the second call meets the cached header map
            assert response_frame(gateway_id, request_id, status, raw, body) == expected, case
        headers = response_headers(raw, len(body))
        assert list(headers)[-1] == "content-length"
        decoded = TO_RIVET.decode(expected)
        assert decoded.message_kind.headers == headers


def test_response_frame_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tunnel_frames, "CACHE_LIMIT", 8)
    for i in range(50):
        raw = [(b"x-n", str(i).encode())]
        assert response_frame(b"gw00", b"rq00", 200, raw, b"{}") == reference(
            b"gw00", b"rq00", 200, raw, b"{}"
        )
        assert len(tunnel_frames._maps) <= 8
        assert len(tunnel_frames._heads) <= 8
        assert len(tunnel_frames._by_list) <= 8


def test_response_frame_sees_a_list_changed_in_place() -> None:
    """The head cached for a header list (by its id) is not used once the list (or the
    status) differs: the frame always matches the codec's."""
    rng = random.Random(11)
    raw: list[tuple[bytes, bytes]] = []
    for case in range(300):
        roll = rng.random()
        if roll < 0.4 or not raw:
            raw.append((rng.choice(NAMES), rng.choice(VALUES)))
        elif roll < 0.7:
            raw[rng.randrange(len(raw))] = (rng.choice(NAMES), rng.choice(VALUES))
        elif roll < 0.8:
            raw.pop()
        status = rng.choice([200, 200, 400])
        body = rng.randbytes(rng.choice([0, 5, 200]))
        expected = reference(b"gw00", b"rq00", status, raw, body)
        assert response_frame(b"gw00", b"rq00", status, raw, body) == expected, case
        assert response_frame(b"gw00", b"rq00", status, tuple(raw), body) == expected, case


def test_response_frame_keeps_nothing_of_an_actors_first_answer() -> None:
    """An actor's first success brings a OnceHeaders list (no later answer brings it again):
    its frame is the codec's, and no cache keeps its head."""
    from rivetkit.dispatch.http import OnceHeaders

    rng = random.Random(13)
    for case in range(100):
        raw = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randrange(0, 6))]
        raw.append((b"x-rivet-actor", b"actor-%d" % case))
        heads, by_list = dict(tunnel_frames._heads), dict(tunnel_frames._by_list)
        expected = reference(b"gw00", b"rq00", 200, raw, b"{}")
        assert response_frame(b"gw00", b"rq00", 200, OnceHeaders(raw), b"{}") == expected, case
        assert tunnel_frames._heads == heads
        assert tunnel_frames._by_list == by_list
        # The same items in a plain list are kept (a running actor's later answers).
        assert response_frame(b"gw00", b"rq00", 200, raw, b"{}") == expected, case
        assert (200, tuple(raw)) in tunnel_frames._heads


def test_response_frame_refuses_bad_ids() -> None:
    with pytest.raises(ValueError):
        response_frame(b"gw", b"rq00", 200, [], b"")
    with pytest.raises(ValueError):
        response_frame(b"gw00", b"rq00", 70_000, [], b"")


def test_request_headers() -> None:
    pairs = {"Content-Type": "application/json", "X-Name": "caf\xe9", "X-Emoji": "\u2603", "a": ""}
    for _ in range(2):  # the names are cached after the first call
        headers = request_headers(pairs)
        assert headers.raw == [
            (b"content-type", b"application/json"),
            (b"x-name", b"caf\xe9"),
            (b"x-emoji", "\u2603".encode()),
            (b"a", b""),
        ]
        assert headers.get("content-type") == "application/json"
    headers.append("x-more", "1")  # a request's headers are its own
    assert len(request_headers(pairs).raw) == 4


@pytest.mark.asyncio
async def test_coalesced_writes_arrive_whole_and_in_order() -> None:
    """Frames pushed in bursts (some large enough to pause the transport, so the writer
    task takes over) reach the engine's side complete and in order."""
    received: list[bytes] = []
    count = 3000
    done = asyncio.get_running_loop().create_future()

    async def session(ws: ServerConnection) -> None:
        await ws.recv()  # ToRivetMetadata
        await ws.send(TO_ENVOY.encode(ToEnvoyInit(ProtocolMetadata(60_000, 60_000, 20 << 20))))
        async for frame in ws:
            assert isinstance(frame, bytes)
            received.append(frame)
            if len(received) == 10:
                await asyncio.sleep(0.5)  # a slow reader: the envoy's transport pauses
            if len(received) == count and not done.done():
                done.set_result(None)

    class Handler:
        def on_commands(self, commands: Any) -> None: ...
        def on_tunnel_message(self, message: Any) -> None: ...
        def on_connection(self, connected: bool) -> None: ...
        def on_lost(self) -> None: ...
        def on_evicted(self, reason: str) -> None: ...

    async with serve(session, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        envoy = EnvoyClient(
            f"http://127.0.0.1:{port}",
            namespace="default",
            pool="p",
            envoy_key="test-envoy",
            version=1,
            token=None,
            metadata=ToRivetMetadata(None, None),
            handler=Handler(),
        )
        await envoy.start(timeout=10)
        try:
            rng = random.Random(3)
            sent = paused = 0
            while sent < count:
                for _ in range(rng.randrange(1, 40)):
                    if sent == count:
                        break
                    size = 4_000_000 if sent % 300 == 7 else rng.randrange(1, 300)
                    envoy.send_tunnel_frame(sent.to_bytes(4, "little") * (size // 4 + 1))
                    ws = envoy._ws
                    paused += ws is not None and ws.paused
                    sent += 1
                await asyncio.sleep(0)
            await asyncio.wait_for(done, 30)
        finally:
            await envoy.close()
    assert [int.from_bytes(frame[:4], "little") for frame in received] == list(range(count))
    assert envoy.stats["frames_out"] >= count + 1
    assert paused, "the transport never paused: the writer task's path was not exercised"


class Handler:
    def __init__(self) -> None:
        self.connections: list[bool] = []
        self.fail = False

    def on_commands(self, commands: Any) -> None: ...
    def on_lost(self) -> None: ...
    def on_evicted(self, reason: str) -> None: ...

    def on_connection(self, connected: bool) -> None:
        self.connections.append(connected)

    def on_tunnel_message(self, message: Any) -> None:
        if self.fail:
            self.fail = False
            raise RuntimeError("a bug in the handler")


def envoy_for(port: int, handler: Handler) -> EnvoyClient:
    return EnvoyClient(
        f"http://127.0.0.1:{port}",
        namespace="default",
        pool="p",
        envoy_key="test-envoy",
        version=1,
        token=None,
        metadata=ToRivetMetadata(None, None),
        handler=handler,
    )


INIT = TO_ENVOY.encode(ToEnvoyInit(ProtocolMetadata(60_000, 60_000, 20 << 20)))


@pytest.mark.asyncio
async def test_inline_receive_keeps_order_with_queued_frames() -> None:
    """Pings sent in a burst, handled as they are parsed, are each answered once, in
    order."""
    pongs: list[int] = []
    count = 2000

    async def session(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(INIT)
        for ts in range(count):
            await ws.send(TO_ENVOY.encode(ToEnvoyPing(ts)))
        async for frame in ws:
            assert isinstance(frame, bytes)
            message = TO_RIVET.decode(frame)
            if isinstance(message, ToRivetPong):
                pongs.append(message.ts)
                if len(pongs) == count:
                    return

    async with serve(session, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        envoy = envoy_for(port, Handler())
        await envoy.start(timeout=10)
        try:
            for _ in range(500):
                if len(pongs) == count:
                    break
                await asyncio.sleep(0.01)
        finally:
            await envoy.close()
    assert pongs == list(range(count))
    assert envoy.stats["frames_in"] == count + 1


@pytest.mark.asyncio
async def test_inline_handler_failure_closes_and_reconnects() -> None:
    """A handler that raises on an inline message: logged, the socket closed with 1011
    (as the receive loop does), and the envoy connects again."""
    handler = Handler()
    sessions: list[int | None] = []
    abort = ToEnvoyTunnelMessage(
        MessageId(b"gw00", b"rq00", 0),
        ToEnvoyRequestAbort(
            None, None, HttpStreamAbortReason(HttpStreamAbortReasonKind.CANCELLED, None)
        ),
    )

    async def session(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(INIT)
        if not sessions:
            handler.fail = True
            await ws.send(TO_ENVOY.encode(abort))
        await ws.wait_closed()
        sessions.append(ws.close_code)

    async with serve(session, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        envoy = envoy_for(port, handler)
        await envoy.start(timeout=10)
        try:
            for _ in range(500):
                if handler.connections[-1:] == [True] and len(handler.connections) >= 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            await envoy.close()
    assert handler.connections[:3] == [True, False, True]
    assert sessions[0] == 1011
