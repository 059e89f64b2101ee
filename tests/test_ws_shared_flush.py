"""A large flush of WebSocket frames (a broadcast) is written by two threads.

``SendJob`` (both twins) makes one non-blocking ``write`` per socket, shared by the threads that
run it, and reports what did not leave whole; :class:`rivetkit.server.ws_transport.Flusher`
runs a large flush's job on the loop's thread and its helper thread and gives a short write's rest, EAGAIN and errors to the transport's own
``write``. These tests run the real thing: socket pairs, asyncio's and uvloop's transports,
a real server with real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
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
    """The ``SendJob`` twin under test: ``py`` (pure) or ``cy`` (compiled)."""
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


# -- SendJob, both twins -------------------------------------------------------------------------


def run_job(module: ModuleType, fds: list[int], datas: list[bytes]) -> list[int]:
    """One job run by this thread alone: what did not leave whole."""
    job = module.SendJob(fds, datas)
    job.run()
    return job.left()  # type: ignore[no-any-return]


def test_each_buffer_goes_to_its_socket(sendmany: ModuleType, pairs: Any) -> None:
    made = pairs(40)  # more than one chunk
    datas = [b"frame %d" % i * (i + 1) for i in range(40)]
    assert run_job(sendmany, [a.fileno() for a, _ in made], datas) == []
    assert [drain(b) for _, b in made] == datas
    assert run_job(sendmany, [], []) == []


def test_failed_writes_are_reported_by_index(sendmany: ModuleType, pairs: Any) -> None:
    made = pairs(20)
    made[2][1].close()
    made[17][1].close()
    left = run_job(sendmany, [a.fileno() for a, _ in made], [b"x"] * 20)
    assert left == [2, -errno.EPIPE, 17, -errno.EPIPE]
    assert [drain(b) for i, (_, b) in enumerate(made) if i not in (2, 17)] == [b"x"] * 18


def test_a_full_socket_writes_short_then_not_at_all(sendmany: ModuleType, pairs: Any) -> None:
    ((a, b),) = pairs(1)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 8192  # 2 MiB: more than the socket holds
    index, written = run_job(sendmany, [a.fileno()], [big])
    assert index == 0 and 0 < written < len(big)
    assert run_job(sendmany, [a.fileno()], [big[written:]]) == [0, -errno.EAGAIN]
    assert drain(b) == big[:written]


def test_a_bad_descriptor_is_reported(sendmany: ModuleType) -> None:
    assert run_job(sendmany, [-1], [b"x"]) == [0, -errno.EBADF]
    assert run_job(sendmany, [-1], [b""]) == [0, -errno.EBADF]


def test_each_write_is_made_once_and_only_by_run(sendmany: ModuleType, pairs: Any) -> None:
    made = pairs(3)
    job = sendmany.SendJob([a.fileno() for a, _ in made], [b"a", b"b", b"c"])
    assert job.left() == []  # nothing tried yet
    assert [drain(b) for _, b in made] == [b"", b"", b""]
    job.run()
    job.run()  # nothing left to claim
    assert job.left() == []
    assert [drain(b) for _, b in made] == [b"a", b"b", b"c"]


def test_threads_share_one_job(sendmany: ModuleType, pairs: Any) -> None:
    """Several threads run the same job: every socket gets its bytes exactly once."""
    made = pairs(600)
    datas = [b"%d;" % i * (1 + i % 7) for i in range(600)]
    job = sendmany.SendJob([a.fileno() for a, _ in made], datas)
    threads = [threading.Thread(target=job.run) for _ in range(4)]
    for thread in threads:
        thread.start()
    job.run()
    for thread in threads:
        thread.join()
    assert job.left() == []
    assert [drain(b) for _, b in made] == datas


@pytest.mark.parametrize(
    ("fds", "datas", "error"),
    [
        ("ok", [b"a", bytearray(b"b")], TypeError),
        ("ok", [b"a", "b"], TypeError),
        ([True, 0], [b"a", b"b"], TypeError),
        (("ok",), [b"a", b"b"], TypeError),
        ("ok", (b"a", b"b"), TypeError),
        ("ok", None, TypeError),
        ("ok", [b"a"], IndexError),
        ("ok", [b"a", b"b", b"c"], IndexError),
    ],
)
def test_bad_arguments_are_refused_before_any_write(
    sendmany: ModuleType, pairs: Any, fds: Any, datas: Any, error: type
) -> None:
    made = pairs(2)
    real = [a.fileno() for a, _ in made]
    if fds == "ok":
        fds = real
    elif fds == ("ok",):
        fds = tuple(real)
    with pytest.raises(error):
        sendmany.SendJob(fds, datas)
    assert [drain(b) for _, b in made] == [b"", b""]


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["open", "closed", "bad"]), st.binary(max_size=3000)),
        max_size=40,
    )
)
def test_both_twins_write_and_report_the_same(plan: list[tuple[str, bytes]]) -> None:
    """The same writes, the same bytes received, the same report, on fresh sockets each."""
    pure, compiled = twin("py", "_sendmany", _sendmany_py), twin("cy", "_sendmany", _sendmany_py)
    results = []
    for module in (pure, compiled):
        made = [pair() for _ in plan]
        try:
            fds = []
            for (kind, _), (a, b) in zip(plan, made, strict=True):
                if kind == "closed":
                    b.close()
                fds.append(-1 if kind == "bad" else a.fileno())
            left = run_job(module, fds, [chunk for _, chunk in plan])
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
        if kind != "open":
            expected += [i, -(errno.EPIPE if kind == "closed" else errno.EBADF)]
    assert left == expected
    for (kind, chunk), received in zip(plan, got, strict=True):
        assert received == {"open": chunk, "bad": b"", "closed": None}[kind]


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
def flusher_twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Both twins of ``SendJob`` in the flusher, large flushes shared even on one core;
    whether the helper thread took part in each large flush is recorded."""
    module = twin(request.param, "_sendmany", _sendmany_py)
    monkeypatch.setattr(ws_transport, "SendJob", module.SendJob)
    monkeypatch.setattr(ws_transport, "SPLIT", True)
    started: list[bool] = []
    original = ws_transport._HELPER.start

    def start(job: Any) -> Any:
        help = original(job)
        started.append(help is not None)
        return help

    monkeypatch.setattr(ws_transport._HELPER, "start", start)
    return started


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_large_flush_reaches_every_socket_in_order(
    loop_kind: str, flusher_twin: list[bool], pairs: Any
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
        twin_job = ws_transport.SendJob

        def closing_first(*args: Any) -> Any:
            made[reset][1].close()
            return twin_job(*args)

        ws_transport.SendJob = closing_first  # type: ignore[misc,assignment]
        frames = {}
        for i, transport in enumerate(coalescing):
            head = b"a%d:" % i
            tail = (b"b%d" % i) * (40_000 if i == short else 1)
            transport.queue(head, len(head))
            transport.queue(tail, len(tail))
            frames[i] = head + tail
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        ws_transport.SendJob = twin_job  # type: ignore[misc]
        assert flusher_twin == [True], "the helper thread took part"
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
        assert flusher_twin == [True, False]
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
    encoding: str, flusher_twin: list[bool], monkeypatch: pytest.MonkeyPatch
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
        assert any(flusher_twin)
        for ws in sockets:
            await ws.close()
