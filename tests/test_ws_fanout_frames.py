"""A broadcast's frames: built once, the same bytes on every socket.

``DirectWebSocket.send_nowait`` keeps the frame (head and payload) of the last data it sent
and reuses it when the same object comes again (a broadcast hands every socket the same
encoded event); the frames of one loop iteration leave through one flusher per loop. Here:
the frame bytes against the ``websockets`` library's own framing, the reuse by identity only
(never for an equal object, never for a mutable one), the flusher going on past a transport
that fails, and broadcasts over a real server arriving intact on every socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_server_ws import open_conn, recv, send
from websockets.frames import Frame, Opcode

from rivetkit import actor, setup
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Event,
    SubscriptionRequest,
)
from rivetkit.server import serve_in_background, ws_fastpath

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]

fan = actor("fan", state={})


@fan.action
def shout(c: Any, event: str, *args: Any) -> int:
    """Broadcast ``event`` with ``args``; the number of connections."""
    c.broadcast(event, *args)
    return len(c.conns)


@fan.action
def shout_big(c: Any, event: str, size: int) -> int:
    """Broadcast ``event`` with a string of ``size`` characters."""
    c.broadcast(event, "z" * size)
    return len(c.conns)


registry = setup(use=[fan])


class _Recorder:
    """Stands in for the protocol: records what ``send_nowait`` hands it."""

    overflowed = False

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, int]] = []

    def send_built_now(self, frame: bytes, size: int) -> bool:
        self.sent.append((frame, size))
        return True


def websockets_frame(data: str | bytes) -> bytes:
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, bytes(data)).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("size", SIZES)
def test_frames_match_websockets(size: int) -> None:
    for data in (
        "é" * (size // 2) + "x" * (size % 2),
        b"\x00\xff" * (size // 2) + b"!" * (size % 2),
    ):
        recorder = _Recorder()
        ws = ws_fastpath.DirectWebSocket(recorder)
        assert ws.send_nowait(data) is True
        ((frame, payload_size),) = recorder.sent
        expected = websockets_frame(data)
        assert frame == expected
        assert payload_size == len(data.encode() if isinstance(data, str) else data)


def test_frame_reused_for_the_same_object_only() -> None:
    recorder = _Recorder()
    one, two = ws_fastpath.DirectWebSocket(recorder), ws_fastpath.DirectWebSocket(recorder)
    event = "".join(["{", '"tick"', "}"])  # built at run time: not an interned constant
    one.send_nowait(event)
    two.send_nowait(event)
    assert recorder.sent[0][0] is recorder.sent[1][0]  # built once
    equal = "".join(["{", '"tick"', "}"])
    assert equal is not event
    two.send_nowait(equal)
    assert recorder.sent[2][0] == recorder.sent[0][0]
    # A mutable buffer is framed again each time: its contents may have changed.
    buffer = bytearray(b"abc")
    one.send_nowait(buffer)  # type: ignore[arg-type]
    buffer[0:1] = b"z"
    one.send_nowait(buffer)  # type: ignore[arg-type]
    assert recorder.sent[3][0] == websockets_frame(b"abc")
    assert recorder.sent[4][0] == websockets_frame(b"zbc")
    # Another object in between: the first one is framed again, the same bytes.
    one.send_nowait(event)
    assert recorder.sent[5][0] == recorder.sent[0][0]


def test_unencodable_text_is_left_to_send() -> None:
    recorder = _Recorder()
    ws = ws_fastpath.DirectWebSocket(recorder)
    assert ws.send_nowait("\ud800") is False  # send() reports it
    assert recorder.sent == []


class _FakeTransport:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        if self.fail:
            raise RuntimeError("write failed")
        self.written.append(data)


@pytest.mark.asyncio
async def test_flusher_goes_on_past_a_failing_transport() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        fakes = [_FakeTransport(), _FakeTransport(fail=True), _FakeTransport()]
        transports = [ws_fastpath._Transport(fake, loop) for fake in fakes]  # type: ignore[arg-type]
        for i, transport in enumerate(transports):
            transport.queue(b"a%d" % i, 2)
            transport.queue(b"b%d" % i, 2)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert fakes[0].written == [b"a0b0"]
        assert fakes[2].written == [b"a2b2"]
        assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)
        # Each transport queues again afterwards (none is left marked as scheduled).
        fakes[1].fail = False
        for i, transport in enumerate(transports):
            assert transport.pending_size == 0
            transport.queue(b"c%d" % i, 2)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert [fake.written[-1] for fake in fakes] == [b"c0", b"c1", b"c2"]
        # A direct write first sends what is queued, in one write.
        transports[0].queue(b"d", 1)
        transports[0].write(b"e")
        assert fakes[0].written[-1] == b"de"
        await asyncio.sleep(0)
        assert fakes[0].written[-1] == b"de"  # nothing written twice
    finally:
        loop.set_exception_handler(previous)


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["json", "cbor"])
async def test_broadcasts_reach_every_socket_intact(encoding: str) -> None:
    async with serve_in_background(registry) as endpoint:
        key = f"fanout-{encoding}"
        sockets = [(await open_conn(endpoint, "fan", key, encoding))[0] for _ in range(5)]
        for ws in sockets:  # each subscription taken before its socket's answer
            await send(ws, encoding, SubscriptionRequest("e", True))
            await send(ws, encoding, ActionRequest(0, "shout", ["nobody"]))
            assert isinstance(await recv(ws, encoding), ActionResponse)
        shouts: list[list[Any]] = [["é✓", 1], ["second", {"n": 2}], ["é✓", 1]]
        for i, args in enumerate(shouts, start=1):
            await send(sockets[0], encoding, ActionRequest(i, "shout", ["e", *args]))
            for ws in sockets:
                assert await recv(ws, encoding) == Event("e", args)
            assert await recv(sockets[0], encoding) == ActionResponse(i, 5)
        # Over the size whose frame is kept: built per socket, the same on each.
        await send(sockets[0], encoding, ActionRequest(9, "shout_big", ["e", 70_000]))
        for ws in sockets:
            assert await recv(ws, encoding) == Event("e", ["z" * 70_000])
        assert await recv(sockets[0], encoding) == ActionResponse(9, 5)
        for ws in sockets:
            await ws.close()


class _RealTransport:
    """A real transport's stand-in: records each method called and its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any) -> Any:
            self.calls.append((name, args))
            return False if name == "is_closing" else name

        return method


@pytest.mark.asyncio
async def test_coalescing_transport_forwards_the_whole_transport_api() -> None:
    """No ``__getattr__`` (it would slow every read of the transport's fields): each public
    method of ``asyncio.Transport`` is spelled out and reaches the real transport."""
    from rivetkit.server.ws_transport import CoalescingTransport

    assert "__getattr__" not in vars(CoalescingTransport)
    public = {name for name in dir(asyncio.Transport) if not name.startswith("_")}
    assert public <= set(vars(CoalescingTransport))
    real = _RealTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    assert transport.get_extra_info("peername", 1) == "get_extra_info"
    assert transport.get_write_buffer_size() == "get_write_buffer_size"  # type: ignore[comparison-overlap]
    transport.set_write_buffer_limits(10)
    transport.queue(b"ab", 2)
    transport.writelines([b"c", b"d"])  # after what is queued, in one write
    transport.queue(b"e", 1)
    transport.write_eof()  # the queued frame first
    transport.abort()
    assert real.calls == [
        ("get_extra_info", ("peername", 1)),
        ("get_write_buffer_size", ()),
        ("set_write_buffer_limits", (10, None)),
        ("is_closing", ()),
        ("write", (b"abcd",)),
        ("is_closing", ()),
        ("write", (b"e",)),
        ("write_eof", ()),
        ("abort", ()),
    ]


def test_send_nowait_inlines_send_built_now_line_for_line() -> None:
    """``DirectWebSocket.send_nowait`` does our protocol's ``send_built_now`` inline (a
    Python call less per subscriber of a broadcast): the same statements, ``self`` being the
    protocol and ``OPEN`` the ``State.OPEN`` kept in ``_built``."""
    import ast
    import inspect
    import textwrap

    protocol = ws_fastpath._build_ws_protocol()
    if protocol is None:
        pytest.skip("uvicorn's protocol in use")
    assert ws_fastpath._built[0] is protocol
    method = ast.parse(textwrap.dedent(inspect.getsource(protocol.send_built_now))).body[0]
    assert isinstance(method, ast.FunctionDef)
    expected = ast.unparse(ast.Module(method.body[1:], []))  # after the docstring
    expected = expected.replace("self.", "protocol.").replace(" OPEN", " built[1]")
    nowait = ast.parse(textwrap.dedent(inspect.getsource(ws_fastpath.DirectWebSocket.send_nowait)))
    body = nowait.body[0].body  # type: ignore[attr-defined]
    start = next(
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.If) and "built[0]" in ast.unparse(node.test)
    )
    assert ast.unparse(ast.Module(body[start + 1 :], [])) == expected
