"""The plain WebSocket that transports hand to dispatch, and the one ``on_websocket`` sees.

A transport (the ASGI server, the engine tunnel, a test) adapts its socket to the
:class:`WebSocket` protocol. Dispatch accepts it (echoing the ``rivet`` subprotocol when the
client offered it), then runs the actor-connect protocol on ``/connect`` or hands a
:class:`RawWebSocket` to the actor's ``on_websocket`` hook for any other path under
``/websocket``::

    @chat.on_websocket
    async def on_websocket(c, ws):
        async for message in ws:          # str or bytes, until the client closes
            await ws.send(message)

The hook's lifetime is the socket's: when it returns, the socket is closed (code 1000) if it
is still open; when it raises, the socket is closed with code 1011 and the error is logged.
While the hook runs the actor stays awake; when the actor begins to stop, the socket is closed
(code 1001) so that the hook ends.

Unless the socket hibernates (the actor's ``can_hibernate_websocket`` allows it; see
:mod:`rivetkit.dispatch.hibernation`): then the hook keeps the actor awake only while it is
not waiting in :meth:`RawWebSocket.receive`, and when the actor begins to sleep,
``receive()`` returns None with :attr:`RawWebSocket.hibernating` True while the socket stays
open; after the wake the hook is called again (:attr:`RawWebSocket.resumed` True), with
``c.conn`` the same connection (its ``state`` kept)::

    @chat.on_websocket
    async def on_websocket(c, ws):
        if not ws.resumed:
            c.conn.state["seen"] = 0
        async for message in ws:
            c.conn.state["seen"] += 1
            await ws.send(f"{c.conn.state['seen']}: {message}")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from rivetkit.dispatch.http import Request

__all__ = ["RawWebSocket", "WebSocket"]


class WebSocket(Protocol):
    """A server-side WebSocket as a transport provides it (not yet accepted)."""

    async def accept(self, subprotocol: str | None = None) -> None:
        """Complete the handshake, answering with ``subprotocol`` (None: no header)."""
        ...

    async def receive(self) -> str | bytes | None:
        """The next message (``str`` for text frames), or None once the socket is closed."""
        ...

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; a no-op once closed."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent)."""
        ...


class RawWebSocket:
    """The socket an ``on_websocket`` hook gets: already accepted.

    :attr:`request` is the upgrade request, its path relative to ``/websocket``
    (``/websocket/room/1`` → ``/room/1``). Iterate it (``async for message in ws``) or call
    :meth:`receive` until it returns None.
    """

    __slots__ = ("_closed", "_socket", "request", "resumed")

    def __init__(self, socket: WebSocket, request: Request) -> None:
        self._socket = socket
        self._closed = False
        #: The upgrade request (path relative to ``/websocket``).
        self.request = request
        #: True when the hook runs again for a hibernated socket, after its actor woke.
        self.resumed = False

    @property
    def hibernating(self) -> bool:
        """True once :meth:`receive` ended because the actor goes to sleep while the socket
        hibernates (it stays open; the hook is called again after the wake)."""
        return bool(getattr(self._socket, "hibernating", False))

    @property
    def closed(self) -> bool:
        """True once either side closed the socket."""
        return self._closed

    async def receive(self) -> str | bytes | None:
        """The next message, or None once the socket is closed."""
        if self._closed:
            return None
        message = await self._socket.receive()
        if message is None:
            self._closed = True
        return message

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; ignored once closed."""
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes, got {type(data).__name__}")
        if self._closed:
            return
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        await self._socket.send(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._socket.close(code, reason)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            message = await self.receive()
            if message is None:
                return
            yield message

    def __repr__(self) -> str:
        state = "hibernating" if self.hibernating else "closed" if self._closed else "open"
        return f"<RawWebSocket {self.request.raw_path} {state}>"
