"""The envoy connection's own frame scan (rivetkit/drivers/engine/inline_receive.py)
against ``websockets``' parser: the same socket data, cut at random points, gives the same
inline messages, the same queued messages, the same answers written and the same state,
whatever frames it holds (binary of every length encoding, text, control frames,
fragmented messages, frames with reserved bits or a mask, frames over ``max_size``)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from websockets.asyncio.connection import Connection
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri

from rivetkit.drivers.engine.inline_receive import KEEP_PARTIAL, InlineClientConnection

MAX_SIZE = 200_000


class Transport(asyncio.Transport):
    """Records what is written; never pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.eof = False
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class Plain(InlineClientConnection):
    """The same connection with every byte through ``websockets``' parser."""

    scan_frames = False


def connection(cls: type[InlineClientConnection]) -> tuple[Any, Transport, list[bytes]]:
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=MAX_SIZE)
    conn = cls(protocol, ping_interval=None, close_timeout=2, max_queue=None)
    transport = Transport()
    conn.connection_made(transport)
    conn.response = Response(101, "Switching Protocols", Headers())  # the handshake is done
    inline: list[bytes] = []

    def on_binary(data: bytes) -> bool:
        if data[:1] == b"\xff":  # declined, as a frame that does not decode
            return False
        inline.append(data)
        return True

    conn.on_binary = on_binary
    return conn, transport, inline


def frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=False)


def payload(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 10, 125, 126, 127, 200, 65535, 65536, KEEP_PARTIAL + 10, 70_000])
    return bytes([rng.randrange(0, 255)]) + rng.randbytes(max(0, size - 1)) if size else b""


def stream(rng: random.Random) -> bytes:
    parts: list[bytes] = []
    for _ in range(rng.randrange(1, 12)):
        kind = rng.random()
        if kind < 0.55:
            parts.append(frame(Opcode.BINARY, payload(rng)))
        elif kind < 0.65:
            parts.append(frame(Opcode.PING, rng.randbytes(rng.randrange(0, 20))))
        elif kind < 0.7:
            parts.append(frame(Opcode.PONG, rng.randbytes(4)))
        elif kind < 0.8:
            parts.append(frame(Opcode.TEXT, b"hello"))
        elif kind < 0.9:  # a fragmented message, maybe with a control frame inside
            parts.append(frame(Opcode.BINARY, b"a" * rng.randrange(1, 300), fin=False))
            if rng.random() < 0.5:
                parts.append(frame(Opcode.PING, b"p"))
            parts.append(frame(Opcode.CONT, b"b" * rng.randrange(0, 300)))
        else:
            parts.append(frame(Opcode.BINARY, b"\xffdeclined"))
    ending = rng.random()
    if ending < 0.1:
        parts.append(b"\xc2\x03rsv")  # a final binary frame with RSV1 set
    elif ending < 0.2:
        parts.append(Frame(Opcode.BINARY, b"masked").serialize(mask=True))
    elif ending < 0.3:
        parts.append(frame(Opcode.BINARY, b"x" * (MAX_SIZE + 1)))
    elif ending < 0.4:
        parts.append(frame(Opcode.CONT, b"unexpected"))
    elif ending < 0.5:
        parts.append(frame(Opcode.CLOSE, b"\x03\xe8bye"))
    parts.append(frame(Opcode.BINARY, b"after"))
    return b"".join(parts)


def cuts(rng: random.Random, data: bytes) -> list[bytes]:
    if rng.random() < 0.2:
        return [data]
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 30))))
    if rng.random() < 0.3:  # some one-byte pieces
        points = sorted(set(points) | {p + 1 for p in points if p + 1 < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def written_frames(chunks: list[bytes]) -> list[tuple[Opcode, bytes]]:
    """The frames a client wrote (masked, each with its own random mask), unmasked."""
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    server.receive_data(b"".join(chunks))
    return [(event.opcode, bytes(event.data)) for event in server.events_received()]


def outcome(conn: Any, transport: Transport, inline: list[bytes]) -> dict[str, Any]:
    protocol = conn.protocol
    return {
        "inline": inline,
        "queued": [(f.opcode, bytes(f.data), f.fin) for f in conn.recv_messages.frames.queue],
        "written": written_frames(transport.written),
        "eof_written": transport.eof,
        "state": protocol.state,
        "close_rcvd": protocol.close_rcvd,
        "close_sent": protocol.close_sent,
        "parser_exc": type(protocol.parser_exc),
        "on_binary": conn.on_binary is None,
    }


@pytest.mark.asyncio
async def test_scan_matches_the_parser_on_random_streams() -> None:
    rng = random.Random(20261206)
    for _ in range(400):
        data = stream(rng)
        pieces = cuts(rng, data)
        with_eof = rng.random() < 0.3
        results = []
        for cls in (InlineClientConnection, Plain):
            conn, transport, inline = connection(cls)
            for piece in pieces:
                conn.data_received(piece)
            if with_eof:
                conn.eof_received()
            results.append(outcome(conn, transport, inline))
        assert results[0] == results[1]


@pytest.mark.asyncio
async def test_scan_delivers_binary_frames_without_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run of binary frames cut anywhere reaches on_binary whole and in order, and the
    parser sees none of it."""
    parsed: list[bytes] = []
    monkeypatch.setattr(Connection, "data_received", lambda self, data: parsed.append(data))
    conn, _, inline = connection(InlineClientConnection)
    messages = [bytes([1]) * n for n in (1, 125, 126, 300, 65535, KEEP_PARTIAL)]
    data = b"".join(frame(Opcode.BINARY, m) for m in messages)
    for at in range(0, len(data), 777):
        conn.data_received(data[at : at + 777])
    assert inline == messages
    assert parsed == []
    assert conn.protocol.state is State.OPEN
    assert not conn.recv_messages.frames
