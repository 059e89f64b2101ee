"""A large flush of WebSocket frames (a broadcast) is written by two threads.

``send_many`` (both twins) makes one non-blocking ``write`` per socket and reports what did
not leave whole; :class:`rivetkit.server.ws_transport.Flusher` hands half of a large flush to
its helper thread and gives a short write's rest, EAGAIN and errors to the transport's own
``write``. These tests run the real thing: socket pairs, asyncio's and uvloop's transports,
a real server with real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_server_ws import open_conn, recv, send

from conftest import TWIN_IDS, twin
from rivetkit import actor, setup
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Event,
    SubscriptionRequest,
)
from rivetkit.server import _sendmany_py, serve_in_background, ws_transport
from rivetkit.server.ws_transport import CoalescingTransport, direct_fd


@pytest.fixture(params=TWIN_IDS)
def sendmany(request: pytest.FixtureRequest) -> ModuleType:
    """The ``send_many`` twin under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_sendmany", _sendmany_py)


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of non-blocking stream sockets."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def drain(sock: socket.socket) -> bytes:
    """Everything ``sock`` can read now."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def pairs() -> Iterator[Callable[[int], list[tuple[socket.socket, socket.socket]]]]:
    """Make socket pairs; all closed after the test."""
    made: list[socket.socket] = []

    def make(count: int) -> list[tuple[socket.socket, socket.socket]]:
        out = [pair() for _ in range(count)]
        for a, b in out:
            made.extend((a, b))
        return out

    yield make
    for sock in made:
        sock.close()


def fill(sock: socket.socket) -> int:
    """Write to ``sock`` until its buffers are full; the bytes written."""
    total = 0
    while True:
        try:
            total += sock.send(b"f" * 65536)
        except BlockingIOError:
            return total


# -- send_many, both twins ---------------------------------------------------------------------


def test_each_buffer_goes_to_its_socket(sendmany: ModuleType, pairs: Any) -> None:
    made = pairs(5)
    datas = [b"frame %d" % i * (i + 1) for i in range(5)]
    assert sendmany.send_many([a.fileno() for a, _ in made], datas, 0, 5) == []
    assert [drain(b) for _, b in made] == datas


def test_only_the_range_is_written_with_absolute_indexes(sendmany: ModuleType, pairs: Any) -> None:
    made = pairs(4)
    fds = [a.fileno() for a, _ in made]
    made[2][1].close()  # its writes fail: reported by absolute index
    left = sendmany.send_many(fds, [b"x", b"y", b"z", b"w"], 1, 3)
    assert left == [2, -errno.EPIPE]
    assert drain(made[0][1]) == b"" and drain(made[1][1]) == b"y" and drain(made[3][1]) == b""
    assert sendmany.send_many(fds, [b"x"] * 4, 3, 3) == []  # an empty range
    assert sendmany.send_many(fds, [b"x"] * 4, 3, 1) == []


def test_a_full_socket_writes_short_then_not_at_all(sendmany: ModuleType, pairs: Any) -> None:
    ((a, b),) = pairs(1)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 8192  # 2 MiB: more than the socket holds
    index, written = sendmany.send_many([a.fileno()], [big], 0, 1)
    assert index == 0 and 0 < written < len(big)
    assert sendmany.send_many([a.fileno()], [big[written:]], 0, 1) == [0, -errno.EAGAIN]
    assert drain(b) == big[:written]


def test_a_bad_descriptor_is_reported(sendmany: ModuleType) -> None:
    assert sendmany.send_many([-1], [b"x"], 0, 1) == [0, -errno.EBADF]
    assert sendmany.send_many([-1], [b""], 0, 1) == [0, -errno.EBADF]


@pytest.mark.parametrize(
    ("fds", "datas", "start", "stop", "error"),
    [
        ("ok", [b"a", bytearray(b"b")], 0, 2, TypeError),
        ("ok", [b"a", "b"], 0, 2, TypeError),
        ([True, 0], [b"a", b"b"], 0, 2, TypeError),
        (("ok",), [b"a", b"b"], 0, 2, TypeError),
        ("ok", (b"a", b"b"), 0, 2, TypeError),
        ("ok", None, 0, 2, TypeError),
        ("ok", [b"a", b"b"], -1, 2, IndexError),
        ("ok", [b"a", b"b"], 0, 3, IndexError),
        ("ok", [b"a"], 0, 2, IndexError),
    ],
)
def test_bad_arguments_are_refused_before_any_write(
    sendmany: ModuleType, pairs: Any, fds: Any, datas: Any, start: int, stop: int, error: type
) -> None:
    made = pairs(2)
    real = [a.fileno() for a, _ in made]
    if fds == "ok":
        fds = real
    elif fds == ("ok",):
        fds = tuple(real)
    with pytest.raises(error):
        sendmany.send_many(fds, datas, start, stop)
    assert [drain(b) for _, b in made] == [b"", b""]


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["open", "closed", "bad"]), st.binary(max_size=3000)),
        min_size=1,
        max_size=12,
    ),
    st.data(),
)
def test_both_twins_write_and_report_the_same(plan: list[tuple[str, bytes]], data: Any) -> None:
    """The same writes, the same bytes received, the same report, on fresh sockets each."""
    pure, compiled = twin("py", "_sendmany", _sendmany_py), twin("cy", "_sendmany", _sendmany_py)
    start = data.draw(st.integers(0, len(plan)))
    stop = data.draw(st.integers(start, len(plan)))
    results = []
    for module in (pure, compiled):
        made = [pair() for _ in plan]
        try:
            fds = []
            for (kind, _), (a, b) in zip(plan, made, strict=True):
                if kind == "closed":
                    b.close()
                fds.append(-1 if kind == "bad" else a.fileno())
            left = module.send_many(fds, [chunk for _, chunk in plan], start, stop)
            got = [drain(b) if kind != "closed" else None for (kind, _), (_, b) in zip(plan, made)]
            results.append((left, got))
        finally:
            for a, b in made:
                a.close()
                b.close()
    assert results[0] == results[1]
    left, got = results[0]
    expected = []
    for i, (kind, _chunk) in enumerate(plan):
        if start <= i < stop and kind != "open":
            expected += [i, -(errno.EPIPE if kind == "closed" else errno.EBADF)]
    assert left == expected
    for i, (kind, chunk) in enumerate(plan):
        if kind != "closed":
            assert got[i] == (chunk if start <= i < stop and kind == "open" else b"")


# -- the flusher with real transports ----------------------------------------------------------


class _Peer(asyncio.Protocol):
    """The protocol of a transport under test: reads nothing (a closed peer is found by
    writing), records its loss."""

    def __init__(self) -> None:
        self.lost: list[BaseException | None] = []

    def connection_made(self, transport: Any) -> None:
        transport.pause_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


def run_on(loop_kind: str, main: Callable[[], Any]) -> None:
    """Run ``main()`` on asyncio's loop or on uvloop's."""
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


async def transports(
    made: list[tuple[socket.socket, socket.socket]],
) -> tuple[list[CoalescingTransport], list[_Peer]]:
    """Coalescing transports over the first socket of each pair."""
    loop = asyncio.get_running_loop()
    out, peers = [], []
    for a, _ in made:
        real, peer = await loop.connect_accepted_socket(_Peer, a)
        transport = CoalescingTransport(real, loop)  # type: ignore[arg-type]
        assert direct_fd(real) == a.fileno() == transport._fd
        out.append(transport)
        peers.append(peer)
    return out, peers


async def read_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock`` (the loop keeps running meanwhile)."""
    loop = asyncio.get_running_loop()
    chunks, got = [], 0
    while got < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, min(1 << 16, size - got)), 10)
        assert chunk, "closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


@pytest.fixture(params=TWIN_IDS)
def flusher_twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Both twins of ``send_many`` in the flusher, large flushes shared even on one core; the
    ranges the helper thread was given are recorded."""
    module = twin(request.param, "_sendmany", _sendmany_py)
    monkeypatch.setattr(ws_transport, "send_many", module.send_many)
    monkeypatch.setattr(ws_transport, "SPLIT", True)
    started: list[Any] = []
    original = ws_transport._HELPER.start

    def start(fds: list[int], datas: list[bytes], begin: int, end: int) -> Any:
        job = original(fds, datas, begin, end)
        started.append((begin, end, job is not None))
        return job

    monkeypatch.setattr(ws_transport._HELPER, "start", start)
    return started


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_large_flush_reaches_every_socket_in_order(
    loop_kind: str, flusher_twin: list[Any], pairs: Any
) -> None:
    count = ws_transport.SPLIT_AT + 72
    made = pairs(count)

    async def main() -> None:
        coalescing, peers = await transports(made)
        full, buffered, short, closing, reset = 3, 5, 150, 7, 160
        # A socket whose buffers are full: its frames wait in the transport (EAGAIN).
        filled = fill(made[full][0])
        # A transport that already buffers bytes: its frames go after them.
        made[buffered][1].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        prefix = b"p" * 600_000
        coalescing[buffered].transport.write(prefix)
        assert coalescing[buffered].transport.get_write_buffer_size() > 0
        # A socket with room for part of its frames: a short write, the rest buffered.
        made[short][0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        before = fill(made[short][0])
        made[short][1].recv(3000)
        coalescing[closing].transport.close()
        # A peer gone after the transport was found open (uvloop notices a closed peer on
        # its own otherwise): the direct write fails, the transport's write reports it.
        twin_send_many = ws_transport.send_many

        def closing_first(*args: Any) -> list[int]:
            if made[reset][1].fileno() >= 0:
                made[reset][1].close()
            return twin_send_many(*args)

        ws_transport.send_many = closing_first
        frames = {}
        for i, transport in enumerate(coalescing):
            head = b"a%d:" % i
            tail = (b"b%d" % i) * (40_000 if i == short else 1)
            transport.queue(head, len(head))
            transport.queue(tail, len(tail))
            frames[i] = head + tail
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        ws_transport.send_many = twin_send_many
        assert flusher_twin and flusher_twin[0][2], "the helper thread took half"
        for i in range(count):
            if i in (full, buffered, short, closing, reset):
                continue
            assert await read_exactly(made[i][1], len(frames[i])) == frames[i]
        assert (await read_exactly(made[full][1], filled))[-1:] == b"f"
        assert await read_exactly(made[full][1], len(frames[full])) == frames[full]
        assert await read_exactly(made[buffered][1], len(prefix)) == prefix
        assert await read_exactly(made[buffered][1], len(frames[buffered])) == frames[buffered]
        assert await read_exactly(made[short][1], before - 3000) == b"f" * (before - 3000)
        assert await read_exactly(made[short][1], len(frames[short])) == frames[short]
        assert drain(made[closing][1]) == b""
        for _ in range(100):  # the reset socket's transport reports the error: it is lost
            if peers[reset].lost:
                break
            await asyncio.sleep(0.01)
        assert peers[reset].lost and isinstance(peers[reset].lost[0], OSError)
        assert all(not peers[i].lost for i in range(count) if i not in (closing, reset))
        # Each transport queues again afterwards; a busy helper: the loop writes all.
        ws_transport._HELPER._busy.acquire()
        try:
            for i, transport in enumerate(coalescing):
                if i not in (closing, reset):
                    transport.queue(b"c%d" % i, 2)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            ws_transport._HELPER._busy.release()
        assert flusher_twin[-1][2] is False
        for i in range(count):
            if i not in (closing, reset):
                assert await read_exactly(made[i][1], len(b"c%d" % i)) == b"c%d" % i
        for transport in coalescing:
            transport.transport.abort()

    run_on(loop_kind, main)


def test_other_transports_are_never_written_directly() -> None:
    class Fake:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            raise AssertionError("not asked")

    assert direct_fd(Fake()) == -1


# -- a real server --------------------------------------------------------------------------------

fan = actor("fan", state={})


@fan.action
def shout(c: Any, event: str, *args: Any) -> int:
    """Broadcast ``event`` with ``args``; the number of connections."""
    c.broadcast(event, *args)
    return len(c.conns)


registry = setup(use=[fan])


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["json", "cbor"])
async def test_a_broadcast_shared_by_two_threads_reaches_every_socket(
    encoding: str, flusher_twin: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_transport, "SPLIT_AT", 4)
    async with serve_in_background(registry) as endpoint:
        key = f"shared-{encoding}"
        sockets = [(await open_conn(endpoint, "fan", key, encoding))[0] for _ in range(24)]
        for ws in sockets:
            await send(ws, encoding, SubscriptionRequest("e", True))
            await send(ws, encoding, ActionRequest(0, "shout", ["nobody"]))
            assert isinstance(await recv(ws, encoding), ActionResponse)
        for i, args in enumerate([["é✓", 1], ["second", {"n": 2}], ["z" * 5000]], start=1):
            await send(sockets[0], encoding, ActionRequest(i, "shout", ["e", *args]))
            for ws in sockets:
                assert await recv(ws, encoding) == Event("e", args)
            assert await recv(sockets[0], encoding) == ActionResponse(i, 24)
        assert any(shared for _, _, shared in flusher_twin)
        for ws in sockets:
            await ws.close()
