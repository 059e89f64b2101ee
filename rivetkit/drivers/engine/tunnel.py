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
  with ``content-length``; a streamed body is collected whole first); a response beyond the
  engine's ``maxResponsePayloadSize`` is answered ``message/outgoing_too_long`` instead.
  ``RequestAbort`` cancels the handler. A handler failure outside
  dispatch answers 500 with ``x-rivet-error: envoy.fetch_failed`` (as the Rust envoy does).
* ``WebSocketOpen`` becomes a :class:`TunnelWebSocket` (dispatch's plain WebSocket):
  accepting it sends ``WebSocketOpen{canHibernate}``; ``WebSocketMessage``\\ s feed
  :meth:`TunnelWebSocket.receive`; sends and the close go back as ``WebSocketMessage`` and
  ``WebSocketClose`` with our own message indexes (0 for the open, then +1 per message).

Hibernatable WebSockets (``spec/engine.md``, tunnel semantics): ``/connect`` sockets, and raw
ones the actor's ``can_hibernate_websocket`` allows, open with ``canHibernate: true``. The
engine's gateway then keeps the client's socket while the actor sleeps and keeps every
message it forwarded until we acknowledge it:

* the gateway numbers its messages (the open is 0, then 1, 2, ...); a hibernatable socket
  drops a message whose index it has already seen (a re-delivery) and closes the socket
  (1008 ``ws.message_index_skip``) on a gap;
* the connection's record (``Conn`` v4 at ``[2] + conn_id``: gateway id, request id, the
  index of the last message handled) is stored by the runtime (throttled, and when the actor
  stops); once stored, ``WebSocketMessageAck{index}`` tells the gateway it may forget the
  messages up to it;
* a message that reaches a generation that is stopping is not handled nor acknowledged: the
  gateway delivers it again to the next one;
* when the actor stops, its hibernatable sockets are dropped here without a close (the
  gateway keeps the client's socket and wakes the actor on its next message);
* when the engine starts the actor again (here or on another envoy), ``CommandStartActor``
  lists the sockets still open (``hibernatingRequests``): the runtime restores each stored
  connection whose socket is listed (:meth:`Tunnel.conn_alive`) with a new
  :class:`TunnelWebSocket` and session, and closes the others (``on_disconnect``); after
  ``Running`` each restored socket sends ``WebSocketOpen{canHibernate: true}`` again, and a
  listed socket without a record is closed (1000 ``ws.meta_not_found_during_restore``);
* that list lags: the engine builds it from records its gateway writes for each socket up to
  ~128 ms (a random delay, plus a transaction) after the socket opens or starts hibernating,
  so a start that follows the stop closely can omit a socket the gateway still keeps (seen
  with two clients, one waking the actor right after it fell asleep: the other one's events
  were lost). A socket this envoy detached less than :data:`LISTING_LAG` ago therefore counts
  as kept even when unlisted, once: if it is unlisted at the next start too, it is closed
  (a client that closed during such a short sleep gets its ``on_disconnect`` one generation
  late, never a live connection dropped); a socket the gateway reported closed after its
  actor stopped here is never restored, listed or not (the engine keeps listing a socket
  closed before its gateway hibernated it);
* the 2.3.19 gateway drops what reaches a kept socket while it moves that socket from the
  stopped generation to the new one (about 128 ms after it sees the stop), so a restored
  socket holds back what it sends for :data:`RESUME_HOLD` after ``Running``, or until the
  gateway sends on it (:meth:`TunnelWebSocket.hold`): the first events after a wake reach
  the other clients up to that much later, and are not lost;
* the gateway may also open a kept socket again after the wake (a ``WebSocketOpen`` with the
  same ids, its numbering starting over): the restored socket answers
  ``WebSocketOpen{canHibernate: true}`` and goes on serving the same connection
  (:meth:`TunnelWebSocket.reopen`), as the Rust envoy does.

Bodies: the engine 2.3.19 gateway buffers a request body and sends it in one
``RequestStart`` (observed with 5 MiB), and sets ``responseStream`` false on the requests
(a streamed answer then reaches the client empty), so a response always goes back in one
``ResponseStart``, up to the engine's ``maxResponsePayloadSize`` (20 MiB). A request that
does arrive streamed (``stream: true``) is read chunk by chunk, as above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from rivetkit.dispatch.connect import log_error
from rivetkit.dispatch.hibernation import can_hibernate_raw, restore_session
from rivetkit.dispatch.http import Request, Response, incoming_too_long
from rivetkit.dispatch.router import error_response
from rivetkit.dispatch.streaming import buffer_stream
from rivetkit.errors import RivetError
from rivetkit.protocol.envoy_protocol import (
    HibernatingRequest,
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
    ToRivetWebSocketOpen,
)

from .inspector_sockets import PATH as INSPECTOR_PATH
from .inspector_sockets import InspectorSocket, KeptInspectors
from .tunnel_direct import take as take_direct
from .tunnel_frames import request_headers, response_frame, response_headers
from .tunnel_websocket import TunnelWebSocket

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.runtime.connection import Connection

    from .envoy import EnvoyClient

__all__ = ["LISTING_LAG", "RESUME_HOLD", "Tunnel", "TunnelWebSocket"]

logger = logging.getLogger("rivetkit.engine")

#: Seconds after its actor stopped here during which a hibernatable socket that the next
#: ``CommandStartActor`` does not list still counts as kept by the gateway (whose record of
#: it may not be written yet: up to ~128 ms plus a transaction after the gateway sees the
#: socket open or the actor stop, in engine 2.3.19; the gateway sees the stop when the
#: engine's workflow gets to it, which a loaded machine delays by seconds). Generous: erring
#: long only delays the ``on_disconnect`` of a client that closed during a sleep this short.
LISTING_LAG: Final = 5.0
#: Seconds a detached socket the gateway reported closed is remembered as such (the
#: engine's record of a socket lasts 90 s after the gateway last refreshed it).
GONE_MEMORY: Final = 120.0
#: Seconds a restored socket holds back what it sends after its actor runs again, unless
#: the gateway sends on it first (see :meth:`TunnelWebSocket.hold`).
RESUME_HOLD: Final = 1.0


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


class Tunnel:
    """Runs the tunnel traffic of one envoy through a dispatcher (None: refuse it)."""

    def __init__(
        self,
        dispatcher: Dispatcher | None,
        is_local: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatcher = dispatcher
        #: Monotonic seconds (tests inject a clock): when sockets were detached here.
        self.clock = clock
        #: Whether an actor is placed on this envoy (requests for others are refused, as the
        #: Rust envoy does, so that the gateway routes them again).
        self.is_local = is_local
        self._envoy: EnvoyClient | None = None
        self._requests: dict[bytes, asyncio.Task[None]] = {}
        self._streams: dict[bytes, _BodyStream] = {}
        self._sockets: dict[bytes, TunnelWebSocket] = {}
        self._socket_tasks: set[asyncio.Task[None]] = set()
        # actor id -> (generation, gateway id + request id of the sockets the engine kept
        # while it slept and that no stored connection claimed yet)
        self._hibernating: dict[str, tuple[int, set[bytes]]] = {}
        # actor id -> the sockets restored by its start (they re-open once it runs)
        self._restored: dict[str, list[TunnelWebSocket]] = {}
        # gateway id + request id -> (actor id, clock) of the hibernatable sockets detached
        # here within LISTING_LAG (see socket_kept)
        self._detached: dict[bytes, tuple[str, float]] = {}
        # sockets restored though their start did not list them (not granted twice)
        self._unlisted: set[bytes] = set()
        # detached sockets the gateway reported closed -> clock (see handle)
        self._gone: dict[bytes, float] = {}
        # inspector sockets detached from stopped actors (restored when a wake lists them)
        self._inspectors = KeptInspectors()
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
                socket.on_message(kind.data, kind.binary, message_id.message_index)
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
            elif key in self._detached:
                # The client left while its actor stops or sleeps; the engine may still list
                # the socket at the next start (its record outlives a close seen before the
                # gateway hibernated it): never restore it.
                self._gone[key] = self.clock()
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
        if take_direct(self, key, message_id, start):
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
            start.method,
            path,
            query_string=query,
            headers=request_headers(start.headers),
            body=body,
        )
        loop = self._loop_now()
        task = loop.create_task(self._serve_http(key, message_id, start.actor_id, request, loop))
        self._requests[key] = task

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        """The envoy's event loop, where every tunnel message arrives (without
        ``asyncio.get_running_loop``'s ``getpid`` call of Python 3.11 on each request); the
        running loop when no started envoy is attached."""
        envoy = self._envoy
        if envoy is not None:
            loop = envoy.loop
            if loop is not None:
                return loop
        return asyncio.get_running_loop()

    async def _serve_http(
        self,
        key: bytes,
        message_id: MessageId,
        actor_id: str,
        request: Request,
        loop: asyncio.AbstractEventLoop,
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
            if response.stream is not None:
                response = await self._buffered(request, response)
            self._respond(message_id, response)
        except asyncio.CancelledError:
            pass  # aborted by the gateway: nothing to answer
        finally:
            if self._requests.get(key) is asyncio.current_task(loop):
                del self._requests[key]
            self._streams.pop(key, None)

    async def _buffered(self, request: Request, response: Response) -> Response:
        """A streamed response made whole: the 2.3.19 gateway takes no streamed answer.

        Up to the engine's ``maxResponsePayloadSize``; beyond it the stream is closed and
        the answer is ``message/outgoing_too_long``. A failing stream is answered as a
        failing ``on_request`` (its RivetError, or ``core/internal_error``)."""
        envoy = self._envoy
        limit = envoy.protocol_metadata.max_response_payload_size if envoy is not None else 0
        try:
            body = await buffer_stream(response.stream, limit)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, RivetError) and exc.code == "outgoing_too_long":
                logger.warning(
                    "tunnel: the streamed response of %s %s exceeds the engine's %d-byte "
                    "limit (the gateway buffers responses)",
                    request.method,
                    request.raw_path[:200],
                    limit,
                )
            else:
                log_error(exc, None, f"streamed response of {request.method} {request.raw_path}")
            return error_response(exc)
        return Response._raw(response.status, list(response.headers.raw), body)

    def _respond(self, message_id: MessageId, response: Response) -> None:
        self._answer(message_id, response.status, response.headers.raw, response.body)

    def _answer(
        self,
        message_id: MessageId,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        """Send the answer of a request (the direct road's too: see tunnel_direct)."""
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
            status, headers, body = response.status, response.headers.raw, response.body
        if envoy is None:
            return
        gateway_id, request_id = message_id.gateway_id, message_id.request_id
        if len(gateway_id) == 4 and len(request_id) == 4:
            envoy.send_tunnel_frame(response_frame(gateway_id, request_id, status, headers, body))
            return
        self.send(  # ids of another size: the codec reports them
            MessageId(gateway_id, request_id, 0),
            ToRivetResponseStart(status, response_headers(headers, len(body)), body, False),
        )

    # -- WebSocket -------------------------------------------------------------------------

    def _open_websocket(
        self, key: bytes, message_id: MessageId, open_: ToEnvoyWebSocketOpen
    ) -> None:
        self.total_websockets += 1
        inspector = _split(open_.path)[0] == INSPECTOR_PATH
        socket = (InspectorSocket if inspector else TunnelWebSocket)(
            self, message_id, open_.actor_id
        )
        is_local = self.is_local
        if is_local is not None and not is_local(open_.actor_id):
            logger.warning("tunnel: WebSocket for actor %s, which is not here", open_.actor_id)
            socket._send(ToRivetWebSocketClose(1011, "Actor not found", False))
            return
        previous = self._sockets.get(key)
        if previous is not None:
            if previous.can_hibernate and not previous.closed:
                # A hibernated socket the gateway opens again after the wake.
                logger.debug("tunnel: WebSocket of actor %s opened again", open_.actor_id)
                previous.reopen(message_id.message_index)
                return
            previous.on_close()
        self._sockets[key] = socket
        path, query = _split(open_.path)
        request = Request("GET", path, query_string=query, headers=request_headers(open_.headers))
        if isinstance(socket, InspectorSocket):
            socket.request = request
        socket.can_hibernate = self._can_hibernate(open_.actor_id, request)
        task = asyncio.get_running_loop().create_task(
            self._serve_websocket(key, socket, open_.actor_id, request)
        )
        self._socket_tasks.add(task)
        task.add_done_callback(self._socket_tasks.discard)

    async def _serve_websocket(
        self, key: bytes, socket: TunnelWebSocket, actor_id: str, request: Request
    ) -> None:
        dispatcher = self.dispatcher
        serving = (
            socket.close(1011, "envoy.no_dispatcher")
            if dispatcher is None
            else dispatcher.handle_websocket(actor_id, request, socket)
        )
        await self._serve(key, socket, serving, request.raw_path)

    # -- hibernation -----------------------------------------------------------------------

    def _can_hibernate(self, actor_id: str, request: Request) -> bool:
        """Whether a socket opened with ``request`` (path relative to the actor) may
        hibernate: ``/connect`` always, a raw one as its actor's option says."""
        dispatcher = self.dispatcher
        if dispatcher is None:
            return False
        path = request.raw_path
        if path == "/connect" or path == INSPECTOR_PATH:  # see inspector_sockets
            return True
        if path == "/inspector" or path.startswith("/inspector/"):
            return False
        instance = dispatcher.runtime.instances.get(actor_id)
        if instance is None or instance.definition.hooks.on_websocket is None:
            return False
        if path == "/websocket" or path.startswith("/websocket/"):
            path = path[10:] or "/"
        return can_hibernate_raw(instance.options, request.with_path(path))

    def start_actor(
        self, actor_id: str, generation: int, requests: list[HibernatingRequest]
    ) -> None:
        """The engine starts ``actor_id`` with the sockets it kept while the actor slept."""
        self._hibernating[actor_id] = (
            generation,
            {bytes(r.gateway_id) + bytes(r.request_id) for r in requests},
        )
        self._restored[actor_id] = []

    def conn_alive(self, conn: Connection) -> bool:
        """The runtime's check of a restored connection (during its actor's start): True
        when the engine kept its socket; the connection then gets a new socket and session
        (which resume once the actor runs)."""
        info = conn.hibernation
        owner = conn.owner
        dispatcher = self.dispatcher
        if info is None or owner is None or dispatcher is None:
            return False
        key = info.gateway_id + info.request_id
        if not self.socket_kept(owner.actor_id, owner.generation, key):
            return False
        socket = TunnelWebSocket(
            self, MessageId(info.gateway_id, info.request_id, 0), owner.actor_id
        )
        socket.can_hibernate = True
        socket._accepted = True
        socket._last_in = info.server_message_index & 0xFFFF
        socket._index = (info.client_message_index + 1) & 0xFFFF
        info.ack = socket.ack
        socket._info = info
        previous = self._sockets.get(key)
        if previous is not None:
            previous.detach()
        self._sockets[key] = socket
        try:
            serving = restore_session(dispatcher, conn, socket)
        except Exception:
            logger.exception("tunnel: restoring a hibernated connection failed")
            del self._sockets[key]
            return False
        task = asyncio.get_running_loop().create_task(
            self._serve(key, socket, serving, "(restored)")
        )
        self._socket_tasks.add(task)
        task.add_done_callback(self._socket_tasks.discard)
        self._restored.setdefault(owner.actor_id, []).append(socket)
        return True

    def socket_kept(self, actor_id: str, generation: int, key: bytes) -> bool:
        """Whether the gateway keeps the socket ``key`` (gateway id + request id) of a stored
        connection of ``actor_id``, being started as ``generation``: listed by its
        ``CommandStartActor``, or detached here less than :data:`LISTING_LAG` ago (the list
        can miss such a socket; granted once per socket, see the module docstring)."""
        kept = self._hibernating.get(actor_id)
        if kept is None or kept[0] != generation:
            return False
        if self._gone.pop(key, None) is not None:
            kept[1].discard(key)
            self._detached.pop(key, None)
            return False
        if key in kept[1]:
            kept[1].discard(key)
            self._unlisted.discard(key)
            self._detached.pop(key, None)
            return True
        detached = self._detached.pop(key, None)
        if detached is None or detached[0] != actor_id:
            return False
        age = self.clock() - detached[1]
        if age >= LISTING_LAG:
            return False
        logger.info(
            "tunnel: restoring a socket of actor %s that its start did not list "
            "(detached %.3f s ago: the engine may not have recorded it yet)",
            actor_id,
            age,
        )
        self._unlisted.add(key)
        return True

    async def _serve(
        self, key: bytes, socket: TunnelWebSocket, serving: Coroutine[Any, Any, None], what: str
    ) -> None:
        """Run ``serving`` (the socket's handler); then the socket is closed and forgotten."""
        try:
            await serving
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("tunnel: WebSocket %s failed", what)
            await socket.close(1011, "actor.internal_error")
        finally:
            if not socket.closed:
                await socket.close(1000, "")
            if self._sockets.get(key) is socket:
                del self._sockets[key]
            if not socket.detached:  # closed: nothing to restore any more
                self._unlisted.discard(key)

    def actor_started(self, actor_id: str) -> None:
        """The actor runs (``Running`` was sent): its restored sockets open again; the kept
        sockets no stored connection claimed are closed."""
        for socket in self._restored.pop(actor_id, []):
            if not socket.closed:
                socket._send(ToRivetWebSocketOpen(True))
                socket.hold(RESUME_HOLD)
        kept = self._hibernating.pop(actor_id, None)
        for key in () if kept is None else kept[1]:
            if self._inspectors.restore(self, key, actor_id):
                continue
            logger.debug("tunnel: closing a kept socket of actor %s with no record", actor_id)
            self.send(
                MessageId(key[:4], key[4:], 0),
                ToRivetWebSocketClose(1000, "ws.meta_not_found_during_restore", False),
            )

    def actor_stopped(self, actor_id: str, generation: int) -> None:
        """A generation of the actor stopped: drop its hibernatable sockets without a close
        (the gateway keeps them while the actor sleeps)."""
        now = self.clock()
        for key, (_, at) in list(self._detached.items()):
            if now - at >= LISTING_LAG and key not in self._gone:
                del self._detached[key]
        for key, at in list(self._gone.items()):
            if now - at >= GONE_MEMORY:
                del self._gone[key]
                self._detached.pop(key, None)
        for key, socket in list(self._sockets.items()):
            if socket.actor_id == actor_id and socket.can_hibernate:
                del self._sockets[key]
                socket.detach()
                self._inspectors.detached(key, socket)
                if key in self._unlisted:  # unlisted at its last start too: not again
                    self._unlisted.discard(key)
                else:
                    self._detached[key] = (actor_id, now)
        kept = self._hibernating.get(actor_id)
        if kept is not None and kept[0] == generation:
            del self._hibernating[actor_id]
            self._restored.pop(actor_id, None)
