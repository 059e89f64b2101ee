"""The ASGI side of a request as dispatch's plain objects: the body of an HTTP request
(:class:`BodyChunks`) and a WebSocket (:class:`AsgiWebSocket`), for :mod:`rivetkit.server.app`.

Under our uvicorn protocols the server's app takes faster roads when it can: the whole body at
once (:func:`~rivetkit.server.http_fastpath.take_body`) and the socket itself
(:class:`~rivetkit.server.ws_fastpath.DirectWebSocket`, which behaves as
:class:`AsgiWebSocket` does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from rivetkit.dispatch.http import incoming_too_long
from rivetkit.errors import RivetError
from rivetkit.server.http_fastpath import take_body

__all__ = [
    "AsgiWebSocket",
    "BodyChunks",
    "ClientGone",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "read_body",
]

#: An ASGI connection scope.
Scope = MutableMapping[str, Any]
#: An ASGI event (received or sent).
Message = MutableMapping[str, Any]
#: An ASGI ``receive`` callable.
Receive = Callable[[], Awaitable[Message]]
#: An ASGI ``send`` callable.
Send = Callable[[Message], Awaitable[None]]


class ClientGone(RivetError):
    """The client closed the request before its body was read."""

    def __init__(self) -> None:
        super().__init__("actor", "invalid_request", "the client closed the request")


class BodyChunks:
    """The body of an ASGI HTTP request as an async iterator of chunks, at most ``limit``."""

    __slots__ = ("_cycle", "_done", "_limit", "_receive", "_size")

    def __init__(self, receive: Receive, limit: int, cycle: Any = None) -> None:
        self._receive = receive
        self._limit = limit
        self._size = 0
        self._done = False
        self._cycle = cycle  # our uvicorn protocol's cycle (see take_body), or None

    def __aiter__(self) -> BodyChunks:
        return self

    def __call__(self) -> Awaitable[None]:
        """Wait until the client has gone: the request's ``Request._disconnected`` factory
        (the chunks themselves, so that requests that never wait cost nothing).

        For after the body was read: ASGI's ``receive()`` then answers ``http.disconnect``
        once the client leaves (body chunks still coming meanwhile are dropped).
        """
        return self._gone()

    async def _gone(self) -> None:
        receive = self._receive
        while True:
            message = await receive()
            if message["type"] != "http.request":
                self._done = True
                return

    async def read_all(self, limit: int | None) -> bytes:
        """The whole body (at most ``limit`` bytes, and at most the server's limit)."""
        cap = self._limit if limit is None else min(limit, self._limit)
        if self._done:
            return b""
        if self._cycle is not None:
            whole = take_body(self._cycle)  # all there already: no receive() round
            if whole is not None:
                self._done = True
                if len(whole) > cap:
                    raise incoming_too_long(cap)
                return whole
        message = await self._receive()
        if message["type"] != "http.request":
            self._done = True
            raise ClientGone()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            self._done = True
            if len(body) > cap:
                raise incoming_too_long(cap)
            return body
        parts = [body]
        size = len(body)
        while True:
            if size > cap:
                self._done = True
                raise incoming_too_long(cap)
            message = await self._receive()
            if message["type"] != "http.request":
                self._done = True
                raise ClientGone()
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                self._done = True
                if size > cap:
                    raise incoming_too_long(cap)
                return b"".join(parts)

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        message = await self._receive()
        if message["type"] != "http.request":
            self._done = True
            raise ClientGone()
        if not message.get("more_body", False):
            self._done = True
        chunk: bytes = message.get("body", b"")
        self._size += len(chunk)
        if self._size > self._limit:
            self._done = True
            raise incoming_too_long(self._limit)
        return chunk


class AsgiWebSocket:
    """An ASGI WebSocket as dispatch's plain :class:`~rivetkit.dispatch.WebSocket`."""

    __slots__ = ("_accepted", "_closed", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._accepted = False
        self._closed = False

    async def accept(self, subprotocol: str | None = None) -> None:
        message = await self._receive()
        if message["type"] != "websocket.connect":
            self._closed = True
            return
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
        self._accepted = True

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        try:
            message = await self._receive()
        except Exception:
            self._closed = True
            return None
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            if text is not None:
                return str(text)
            data = message.get("bytes")
            return b"" if data is None else bytes(data)
        self._closed = True
        return None

    async def send(self, data: str | bytes) -> None:
        if self._closed:
            return
        if isinstance(data, str):
            message: Message = {"type": "websocket.send", "text": data}
        else:
            message = {"type": "websocket.send", "bytes": data}
        try:
            await self._send(message)
        except Exception:  # the client is gone (ASGI servers raise OSError-like errors)
            self._closed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body of an ASGI HTTP request, at most ``limit`` bytes."""
    parts = [chunk async for chunk in BodyChunks(receive, limit)]
    return b"".join(parts)
