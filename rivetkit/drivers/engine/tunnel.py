"""HTTP and WebSocket traffic from the engine's gateway, handed to dispatch.

A client reaches an actor through the engine (``/gateway/{actor}/...``); the engine forwards
the request over the envoy socket as tunnel messages identified by ``(gatewayId, requestId)``.
:class:`Tunnel` turns them into the plain objects of :mod:`rivetkit.dispatch` and runs the
same :class:`~rivetkit.dispatch.Dispatcher` as the ASGI server, so every route behaves the
same on both drivers:

* ``RequestStart`` (+ ``RequestChunk``\\ s when ``stream``) becomes a
  :class:`~rivetkit.dispatch.Request` (path and query split; a streamed body is an async
  iterator that credits the gateway with ``RequestBodyWindowUpdate`` as it is read). The
  :class:`~rivetkit.dispatch.Response` goes back as one ``ResponseStart`` (not streamed,
  with ``content-length``); a response beyond the engine's ``maxResponsePayloadSize`` is
  answered 500 instead. ``RequestAbort`` cancels the handler. A handler failure outside
  dispatch answers 500 with ``x-rivet-error: envoy.fetch_failed`` (as the Rust envoy does).
* ``WebSocketOpen`` becomes a :class:`TunnelWebSocket` (dispatch's plain WebSocket):
  accepting it sends ``WebSocketOpen{canHibernate: false}``; ``WebSocketMessage``\\ s feed
  :meth:`TunnelWebSocket.receive`; sends and the close go back as ``WebSocketMessage`` and
  ``WebSocketClose`` with our own message indexes (0 for the open, then +1 per message).

Hibernatable WebSockets are not offered (``canHibernate: false``): when an actor sleeps, its
sockets close and clients reconnect, as with the embedded driver.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

from rivetkit.dispatch.http import Headers, Request, Response, incoming_too_long
from rivetkit.dispatch.router import error_response
from rivetkit.errors import RivetError
from rivetkit.protocol.envoy_protocol import (
    MessageId,
    ToEnvoyRequestAbort,
    ToEnvoyRequestChunk,
    ToEnvoyRequestStart,
    ToEnvoyTunnelMessage,
    ToEnvoyWebSocketClose,
    ToEnvoyWebSocketMessage,
    ToEnvoyWebSocketOpen,
    ToRivetRequestBodyWindowUpdate,
    ToRivetResponseStart,
    ToRivetTunnelMessage,
    ToRivetTunnelMessageKind,
    ToRivetWebSocketClose,
    ToRivetWebSocketMessage,
    ToRivetWebSocketOpen,
)

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher

    from .envoy import EnvoyClient

__all__ = ["Tunnel", "TunnelWebSocket"]

logger = logging.getLogger("rivetkit.engine")

_FRAMING: Final = (b"content-length", b"transfer-encoding", b"connection")


def _headers(pairs: dict[str, str]) -> Headers:
    raw: list[tuple[bytes, bytes]] = []
    for name, value in pairs.items():
        try:
            raw_value = value.encode("latin-1")
        except UnicodeEncodeError:
            raw_value = value.encode("utf-8")
        raw.append((name.lower().encode("latin-1", "replace"), raw_value))
    return Headers.from_raw(raw)


def _split(path: str) -> tuple[str, str]:
    cut = path.find("?")
    if cut < 0:
        return path or "/", ""
    return path[:cut] or "/", path[cut + 1 :]


class _BodyStream:
    """A streamed request body, fed by ``RequestChunk`` messages, read once by dispatch."""

    __slots__ = ("_chunks", "_consumed", "_done", "_error", "_message_id", "_tunnel", "_waiter")

    def __init__(self, tunnel: Tunnel, message_id: MessageId) -> None:
        self._tunnel = tunnel
        self._message_id = message_id
        self._chunks: deque[bytes] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._consumed = 0

    def feed(self, chunk: bytes, finish: bool) -> None:
        if chunk:
            self._chunks.append(chunk)
        if finish:
            self._done = True
        self._wake()

    def abort(self) -> None:
        self._error = RivetError("actor", "invalid_request", "the client aborted the request")
        self._done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        chunk = self._chunks.popleft()
        self._consumed += len(chunk)
        self._tunnel.send(self._message_id, ToRivetRequestBodyWindowUpdate(self._consumed))
        return chunk

    async def read_all(self, limit: int | None) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if limit is not None and size > limit:
                raise incoming_too_long(limit)
            parts.append(chunk)
        return b"".join(parts)


class TunnelWebSocket:
    """A WebSocket through the engine's gateway, as dispatch's plain WebSocket."""

    __slots__ = (
        "_accepted",
        "_closed",
        "_incoming",
        "_index",
        "_message_id",
        "_remote_closed",
        "_tunnel",
        "_waiter",
        "actor_id",
    )

    def __init__(self, tunnel: Tunnel, message_id: MessageId, actor_id: str) -> None:
        self._tunnel = tunnel
        self._message_id = message_id
        self.actor_id = actor_id
        self._accepted = False
        self._closed = False
        self._remote_closed = False
        self._index = 0
        self._incoming: deque[str | bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        """True once either side closed the socket."""
        return self._closed

    def _send(self, kind: ToRivetTunnelMessageKind) -> None:
        index = self._index
        self._index = (index + 1) & 0xFFFF
        mid = self._message_id
        self._tunnel.send(MessageId(mid.gateway_id, mid.request_id, index), kind)

    # -- dispatch's WebSocket protocol -----------------------------------------------------

    async def accept(self, subprotocol: str | None = None) -> None:
        """Open the socket (the gateway answers the client's handshake)."""
        if self._accepted or self._closed:
            return
        self._accepted = True
        self._send(ToRivetWebSocketOpen(False))

    async def receive(self) -> str | bytes | None:
        """The next message, or None once the socket is closed."""
        incoming = self._incoming
        while not incoming:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = incoming.popleft()
        if message is None:
            self._closed = True
        return message

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; a no-op once closed."""
        if self._closed:
            return
        if isinstance(data, str):
            self._send(ToRivetWebSocketMessage(data.encode("utf-8", "surrogatepass"), False))
        else:
            self._send(ToRivetWebSocketMessage(bytes(data), True))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self._remote_closed:
            self._send(ToRivetWebSocketClose(code, reason or None, False))
        self._push(None)

    # -- fed by the tunnel -----------------------------------------------------------------

    def _push(self, message: str | bytes | None) -> None:
        self._incoming.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message(self, data: bytes, binary: bool) -> None:
        if self._closed:
            return
        if binary:
            self._push(data)
        else:
            self._push(data.decode("utf-8", "replace"))

    def on_close(self) -> None:
        self._remote_closed = True
        self._push(None)


class Tunnel:
    """Runs the tunnel traffic of one envoy through a dispatcher (None: refuse it)."""

    def __init__(
        self, dispatcher: Dispatcher | None, is_local: Callable[[str], bool] | None = None
    ) -> None:
        self.dispatcher = dispatcher
        #: Whether an actor is placed on this envoy (requests for others are refused, as the
        #: Rust envoy does, so that the gateway routes them again).
        self.is_local = is_local
        self._envoy: EnvoyClient | None = None
        self._requests: dict[bytes, asyncio.Task[None]] = {}
        self._streams: dict[bytes, _BodyStream] = {}
        self._sockets: dict[bytes, TunnelWebSocket] = {}
        self._socket_tasks: set[asyncio.Task[None]] = set()
        self.total_requests = 0
        self.total_websockets = 0

    def attach(self, envoy: EnvoyClient) -> None:
        """Send the answers through ``envoy``."""
        self._envoy = envoy

    def counts(self) -> dict[str, int]:
        """Live and total requests and sockets (for ``/metrics``)."""
        return {
            "http_in_flight": len(self._requests),
            "websockets_open": len(self._sockets),
            "http_total": self.total_requests,
            "websockets_total": self.total_websockets,
        }

    def send(self, message_id: MessageId, kind: ToRivetTunnelMessageKind) -> None:
        envoy = self._envoy
        if envoy is not None:
            envoy.send_tunnel(ToRivetTunnelMessage(message_id, kind))

    def close(self) -> None:
        """Cancel the requests in flight and end the sockets (the envoy is closing)."""
        for task in list(self._requests.values()):
            task.cancel()
        for socket in list(self._sockets.values()):
            socket.on_close()

    # -- incoming --------------------------------------------------------------------------

    def handle(self, message: ToEnvoyTunnelMessage) -> None:
        """One tunnel message from the engine."""
        kind: Any = message.message_kind
        kind_type = type(kind)
        message_id = message.message_id
        key = message_id.gateway_id + message_id.request_id
        if kind_type is ToEnvoyRequestStart:
            self._start_http(key, message_id, kind)
        elif kind_type is ToEnvoyWebSocketMessage:
            socket = self._sockets.get(key)
            if socket is not None:
                socket.on_message(kind.data, kind.binary)
        elif kind_type is ToEnvoyRequestChunk:
            stream = self._streams.get(key)
            if stream is not None:
                stream.feed(kind.body, kind.finish)
                if kind.finish:
                    del self._streams[key]
        elif kind_type is ToEnvoyWebSocketOpen:
            self._open_websocket(key, message_id, kind)
        elif kind_type is ToEnvoyWebSocketClose:
            socket = self._sockets.pop(key, None)
            if socket is not None:
                socket.on_close()
        elif kind_type is ToEnvoyRequestAbort:
            stream = self._streams.pop(key, None)
            if stream is not None:
                stream.abort()
            task = self._requests.pop(key, None)
            if task is not None:
                task.cancel()
        else:
            logger.debug("tunnel: ignored %s", kind_type.__name__)

    # -- HTTP ------------------------------------------------------------------------------

    def _start_http(self, key: bytes, message_id: MessageId, start: ToEnvoyRequestStart) -> None:
        self.total_requests += 1
        is_local = self.is_local
        if is_local is not None and not is_local(start.actor_id):
            logger.warning("tunnel: request for actor %s, which is not here", start.actor_id)
            text = b"Actor not found"
            self.send(
                MessageId(message_id.gateway_id, message_id.request_id, 0),
                ToRivetResponseStart(
                    503,
                    {"x-rivet-error": "envoy.actor_not_found", "content-length": str(len(text))},
                    text,
                    False,
                ),
            )
            return
        path, query = _split(start.path)
        body: Any
        if start.stream:
            stream = _BodyStream(self, MessageId(message_id.gateway_id, message_id.request_id, 0))
            self._streams[key] = stream
            if start.body:
                stream.feed(start.body, False)
            body = stream
        else:
            body = start.body or b""
        request = Request(
            start.method, path, query_string=query, headers=_headers(start.headers), body=body
        )
        task = asyncio.get_running_loop().create_task(
            self._serve_http(key, message_id, start.actor_id, request)
        )
        self._requests[key] = task

    async def _serve_http(
        self, key: bytes, message_id: MessageId, actor_id: str, request: Request
    ) -> None:
        try:
            dispatcher = self.dispatcher
            if dispatcher is None:
                response = error_response(
                    RivetError("envoy", "no_dispatcher", "this envoy serves no actors")
                )
            else:
                try:
                    response = await dispatcher.handle_http(actor_id, request)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "tunnel: request %s %s failed", request.method, request.raw_path
                    )
                    response = Response._raw(
                        500,
                        [(b"x-rivet-error", b"envoy.fetch_failed")],
                        b"Internal Server Error",
                    )
            self._respond(message_id, response)
        except asyncio.CancelledError:
            pass  # aborted by the gateway: nothing to answer
        finally:
            if self._requests.get(key) is asyncio.current_task():
                del self._requests[key]
            self._streams.pop(key, None)

    def _respond(self, message_id: MessageId, response: Response) -> None:
        body = response.body
        envoy = self._envoy
        limit = envoy.protocol_metadata.max_response_payload_size if envoy is not None else 0
        if limit and len(body) > limit:
            logger.warning(
                "tunnel: a %d-byte response exceeds the engine's %d-byte limit", len(body), limit
            )
            response = error_response(
                RivetError(
                    "message",
                    "outgoing_too_long",
                    f"Outgoing message too long (the engine's limit is {limit} bytes)",
                    metadata={"limit": limit},
                )
            )
            body = response.body
        headers: dict[str, str] = {}
        for raw_name, raw_value in response.headers.raw:
            if raw_name in _FRAMING:
                continue
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            previous = headers.get(name)
            headers[name] = value if previous is None else f"{previous}, {value}"
        headers["content-length"] = str(len(body))
        self.send(
            MessageId(message_id.gateway_id, message_id.request_id, 0),
            ToRivetResponseStart(response.status, headers, body, False),
        )

    # -- WebSocket -------------------------------------------------------------------------

    def _open_websocket(
        self, key: bytes, message_id: MessageId, open_: ToEnvoyWebSocketOpen
    ) -> None:
        self.total_websockets += 1
        socket = TunnelWebSocket(self, message_id, open_.actor_id)
        is_local = self.is_local
        if is_local is not None and not is_local(open_.actor_id):
            logger.warning("tunnel: WebSocket for actor %s, which is not here", open_.actor_id)
            socket._send(ToRivetWebSocketClose(1011, "Actor not found", False))
            return
        previous = self._sockets.get(key)
        if previous is not None:
            previous.on_close()
        self._sockets[key] = socket
        path, query = _split(open_.path)
        request = Request("GET", path, query_string=query, headers=_headers(open_.headers))
        task = asyncio.get_running_loop().create_task(
            self._serve_websocket(key, socket, open_.actor_id, request)
        )
        self._socket_tasks.add(task)
        task.add_done_callback(self._socket_tasks.discard)

    async def _serve_websocket(
        self, key: bytes, socket: TunnelWebSocket, actor_id: str, request: Request
    ) -> None:
        try:
            dispatcher = self.dispatcher
            if dispatcher is None:
                await socket.close(1011, "envoy.no_dispatcher")
                return
            await dispatcher.handle_websocket(actor_id, request, socket)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("tunnel: WebSocket %s failed", request.raw_path)
            await socket.close(1011, "actor.internal_error")
        finally:
            if not socket.closed:
                await socket.close(1000, "")
            if self._sockets.get(key) is socket:
                del self._sockets[key]
