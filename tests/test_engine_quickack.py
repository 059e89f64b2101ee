"""The envoy socket's quick ACKs (rivetkit/drivers/engine/quickack.py): ``TCP_QUICKACK`` is set
again on every read of an :class:`InlineClientConnection`, on asyncio's loop and on uvloop
(which binds ``data_received`` when the connection is made, so only the connection's own
method can do it there), and a read still delivers its messages as before."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from rivetkit.drivers.engine.inline_receive import InlineClientConnection
from rivetkit.drivers.engine.quickack import keep_quick_ack, quick_ack_setter

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's"
)

MESSAGES = [b"\x01" * n for n in (1, 7, 200, 5000)]


def run_on(loop_kind: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


async def _serve_messages(ws: ServerConnection) -> None:
    # One message per request of the client, so that each arrives in a read of its own.
    async for _ in ws:
        await ws.send(MESSAGES[0])


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_every_read_sets_quick_ack_again(loop_kind: str) -> None:
    async def main() -> None:
        async with serve(_serve_messages, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(
                f"ws://127.0.0.1:{port}", create_connection=InlineClientConnection
            ) as ws:
                assert isinstance(ws, InlineClientConnection)
                assert keep_quick_ack(ws)
                rearm = ws.before_read
                assert rearm is not None
                reads = 0

                def counted() -> None:
                    nonlocal reads
                    reads += 1
                    rearm()

                ws.before_read = counted
                inline: list[bytes] = []
                ws.on_binary = lambda data: inline.append(data) or True
                async with asyncio.timeout(30):
                    for i in range(5):
                        await ws.send(b"go")
                        while len(inline) <= i:
                            await asyncio.sleep(0.001)
                assert inline == [MESSAGES[0]] * 5
                assert reads >= 5
                sock = ws.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1

    run_on(loop_kind, main)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_messages_arrive_unchanged_with_quick_ack(loop_kind: str) -> None:
    async def send_all(ws: ServerConnection) -> None:
        for message in MESSAGES:
            await ws.send(message)
        await ws.send("text too")
        await ws.wait_closed()

    async def main() -> None:
        async with serve(send_all, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(
                f"ws://127.0.0.1:{port}", create_connection=InlineClientConnection
            ) as ws:
                assert keep_quick_ack(ws)
                received = [await ws.recv() for _ in range(len(MESSAGES) + 1)]
                assert received == [*MESSAGES, "text too"]

    run_on(loop_kind, main)


def test_another_protocol_gets_its_data_received_wrapped() -> None:
    async def main() -> None:
        async with serve(_serve_messages, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                assert type(ws) is ClientConnection
                assert keep_quick_ack(ws)
                assert "data_received" in vars(ws)  # the wrapper, on the instance
                await ws.send(b"go")
                assert await ws.recv() == MESSAGES[0]

    asyncio.run(main())


def test_no_socket_no_setter() -> None:
    assert quick_ack_setter(None) is None

    class Closed:
        def setsockopt(self, *args: object) -> None:
            raise OSError("closed")

    assert quick_ack_setter(Closed()) is None
    with socket.socket() as sock:  # not connected: the option is still accepted
        rearm = quick_ack_setter(sock)
        assert rearm is not None
        rearm()
    rearm()  # closed since: ignored
