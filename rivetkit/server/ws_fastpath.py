"""Our uvicorn WebSocket protocol: uvicorn's websockets sans-I/O protocol, tuned for the
server's traffic (``rivetkit serve`` and :func:`rivetkit.server.serve_in_background` use it,
through ``uvicorn_config``; :mod:`rivetkit.server.http_fastpath` is its HTTP counterpart).

Data frames sent in one event-loop iteration leave in one ``write``, at the end of that
iteration; complete, unfragmented data frames from the client are parsed here, without the
generic parser, and reading pauses only when the app falls a batch behind; the server's own
app gets the socket itself (:class:`DirectWebSocket`) instead of an ASGI message dict per
frame. Everything else (the handshake, control frames, fragments, invalid frames, closing) goes
through uvicorn and ``websockets`` unchanged, so protocol errors are answered exactly as before
(``tests/test_server_fastpaths.py`` compares them). The outgoing buffer is bounded by
:mod:`rivetkit.server.ws_budget`.

It serves any ASGI app: the socket travels as the ASGI scope extension
:data:`DIRECT_WEBSOCKET` that other apps ignore, and the app uses it only when the ``receive``
and ``send`` it got are the protocol's own (no middleware in between). :func:`ws_protocol`
gives the class when the installed uvicorn has what it builds on, and uvicorn's name otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
from collections import deque
from typing import Any, Final

from rivetkit.runtime.lazy_event import LazyEvent
from rivetkit.server import uvicorn_fit
from rivetkit.server.ws_budget import SendBudget
from rivetkit.server.ws_transport import CoalescingTransport, Flusher, flusher_of

__all__ = ["DIRECT_WEBSOCKET", "DirectWebSocket", "ws_protocol"]

#: The ASGI scope extension holding the :class:`DirectWebSocket` of a connection.
DIRECT_WEBSOCKET: Final = "rivetkit.websocket"

#: Bytes of data frames held for the end of a loop iteration before they are written at once.
_FLUSH_AT: Final = 64 * 1024
#: Payloads up to this size have their frame kept for the next identical send (a broadcast).
_REUSE_AT: Final = 64 * 1024
_PACK_16: Final = struct.Struct("!H").pack
_PACK_64: Final = struct.Struct("!Q").pack


# What the WebSocket protocol reads and writes on uvicorn's.
_WS_FIELDS: Final = frozenset(
    (
        "close_sent",
        "conn",
        "disconnected",
        "handshake_complete",
        "initial_response",
        "loop",
        "queue",
        "read_paused",
        "transport",
        "writable",
    )
)


class _Inbox:
    """What the app receives, in order: ASGI messages, or (direct sockets) bare str/bytes.

    Replaces uvicorn's ``asyncio.Queue`` (``put_nowait``, ``get``, ``empty``) with a deque and
    a waiter list: one append per message instead of the queue's bookkeeping. (A list, not a
    deque: there is one reader, and an empty deque costs ~750 B on each idle connection.)
    """

    __slots__ = ("_items", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Made for the first item, dropped once drained: an idle connection keeps no deque.
        self._items: deque[Any] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._loop = loop

    def put_nowait(self, item: Any) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        waiters = self._waiters
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        items = self._items
        return 0 if items is None else len(items)

    def get_nowait(self) -> Any:
        """The next item, or None when there is none (items are never None)."""
        items = self._items
        return self._take(items) if items else None

    def _take(self, items: deque[Any]) -> Any:
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> Any:
        while not self._items:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                items = self._items
                if items and not waiter.cancelled():
                    self.put_nowait(items.popleft())  # pass the wake-up on
                raise
        items = self._items
        assert items is not None
        return self._take(items)


# The coalescing transport (its own module; the old names stay for callers and tests).
_Transport = CoalescingTransport
_Flusher = Flusher
_flusher_of = flusher_of


def _frame_head(opcode: int, length: int) -> bytes:
    """The head of an unmasked, final server frame (RFC 6455 §5.2)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + _PACK_16(length)
    return bytes((0x80 | opcode, 127)) + _PACK_64(length)


#: The last data sent with :meth:`DirectWebSocket.send_nowait`, its frame and payload size
#: (one tuple, read and replaced whole: servers in several threads share it).
_last_frame: tuple[object, bytes, int] = (None, b"", 0)


#: Our protocol class and websockets' ``State.OPEN`` once built (``send_nowait`` does the
#: class's ``send_built_now`` inline).
_built: tuple[type[Any] | None, object] = (None, None)


def _remember(data: str | bytes, frame: bytes, size: int) -> None:
    global _last_frame
    _last_frame = (data, frame, size)


class DirectWebSocket:
    """A connection's WebSocket for the server's own app (dispatch's ``WebSocket``), over the
    protocol itself: no ASGI message per frame.

    Its behaviour is the ASGI adapter's (:class:`rivetkit.server.asgi_io.AsgiWebSocket`):
    ``receive`` gives None once the socket is closed, ``send`` on a closed socket does nothing.
    """

    __slots__ = ("_closed", "_protocol")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._closed = False

    def owns(self, receive: Any, send: Any) -> bool:
        """True when ``receive`` and ``send`` are this connection's own ASGI callables (no
        middleware in between that the socket would bypass)."""
        protocol = self._protocol
        return (
            getattr(receive, "__self__", None) is protocol
            and getattr(send, "__self__", None) is protocol
        )

    def release_headers(self) -> None:
        """Free the upgrade request's headers held by the ASGI scope for the socket's whole
        life (a ``/connect`` session reads them only at the connect; ~1 KiB per socket)."""
        scope = getattr(self._protocol, "scope", None)
        headers = None if scope is None else scope.get("headers")
        if type(headers) is list:
            headers.clear()

    async def accept(self, subprotocol: str | None = None) -> None:
        protocol = self._protocol
        message = await protocol.receive()
        if message["type"] != "websocket.connect":
            self._closed = True
            return
        await protocol.send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
        protocol.direct = True

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        protocol = self._protocol
        inbox = protocol.queue
        item = inbox.get_nowait()
        if item is None:
            try:
                item = await inbox.get()
            except Exception:
                self._closed = True
                return None
        if protocol.read_paused and inbox.empty():
            protocol.read_paused = False
            protocol.transport.resume_reading()
        kind = type(item)
        if kind is str or kind is bytes:
            return item  # type: ignore[no-any-return]
        if item["type"] == "websocket.receive":
            text = item.get("text")
            if text is not None:
                return str(text)
            data = item.get("bytes")
            return b"" if data is None else bytes(data)
        self._closed = True
        return None

    def send_nowait(self, data: str | bytes) -> bool:
        """Send like :meth:`send` if that needs no waiting (the frame leaves at the end of
        this loop iteration); False when :meth:`send` must be awaited instead.

        The frame built for the last ``data`` sent (by identity: a broadcast hands every
        socket the same encoded event) is reused: server frames are unmasked, so its bytes
        are the same on every socket."""
        if self._closed:
            return True  # dropped, as send() would
        protocol = self._protocol
        if protocol.overflowed:
            return True  # dropped: closing a client that reads too slowly
        last = _last_frame
        if last[0] is data:
            frame, size = last[1], last[2]
        else:
            kind = type(data)
            if kind is str:
                try:
                    payload = data.encode()  # type: ignore[union-attr]
                except UnicodeEncodeError:
                    return False  # send() reports it
                opcode = 0x1
            else:
                payload = data
                opcode = 0x2
            size = len(payload)
            frame = _frame_head(opcode, size) + payload
            if size <= _REUSE_AT and (kind is str or kind is bytes):  # immutable only
                _remember(data, frame, size)
        # Not waiting for the transport to drain: send_built_now bounds what may queue up.
        built = _built
        if type(protocol) is not built[0]:
            return protocol.send_built_now(frame, size)  # type: ignore[no-any-return]
        # protocol.send_built_now(frame, size) inline, its code line for line (once per
        # subscriber of a broadcast: a Python call less each).
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.handshake_complete
            or protocol.initial_response is not None
            or protocol.conn._state is not built[1]
        ):
            return False
        transport: Any = protocol.transport
        max_buffer = protocol.max_buffer
        writable: Any = protocol.writable
        if not (
            writable._value and transport.pending_size + size <= max_buffer and size <= max_buffer
        ) and not protocol.admit(size):
            return True
        transport._pending.append(frame)
        transport.pending_size += size
        if not transport._scheduled:
            transport._scheduled = True
            flusher = transport._flusher
            flusher._dirty.append(transport)
            if not flusher._scheduled:
                flusher._scheduled = True
                transport._loop.call_soon(flusher.run, transport._loop)
        if transport.pending_size >= _FLUSH_AT:
            transport.flush()
        return True

    async def send(self, data: str | bytes) -> None:
        if self._closed:
            return
        protocol = self._protocol
        if not protocol.writable.is_set() and not await protocol.wait_writable(len(data)):
            return  # dropped: closing a client that reads too slowly
        if type(data) is str:
            if protocol.send_frame_now(0x1, data.encode()):
                return
            message: dict[str, Any] = {"type": "websocket.send", "text": data}
        else:
            if protocol.send_frame_now(0x2, data):
                return
            message = {"type": "websocket.send", "bytes": data}
        try:
            await protocol.send(message)
        except Exception:  # the client is gone
            self._closed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._protocol.send({"type": "websocket.close", "code": code, "reason": reason})


# The fields of our protocol: ours, then those uvicorn 0.3x sets on its own (a name it adds
# later lands in the instance dict as before).
_FIELDS: Final = (
    *("_fast", "_feeds", "_limit", "_need", "_partial", "_usable", "direct"),
    *("max_buffer", "overflowed"),  # ws_budget.SendBudget's
    *sorted(_WS_FIELDS),
    *("app", "app_state", "asgi_version", "client", "close_timeout", "close_timer", "config"),
    *("connections", "curr_msg_data_type", "default_headers", "frames", "handshake_initiated"),
    *("last_ping_rtt", "logger", "pending_ping_payload", "ping_interval", "ping_sent_at"),
    *("ping_timeout", "ping_timer", "pong_timer", "request", "response", "root_path"),
    *("scheme", "scope", "server", "tasks"),
)


def _slot_names(base: type[Any]) -> tuple[str, ...]:
    """The :data:`_FIELDS` that may be slots: none that a base class defines (a class
    attribute, a property) or that a base's ``__slots__`` holds."""
    return tuple(
        name
        for name in _FIELDS
        if not any(name in vars(cls) for cls in (base, SendBudget, *base.__mro__))
    )


@functools.cache
def _build_ws_protocol() -> type[Any] | None:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.protocol import State
    except ImportError:  # an older uvicorn or websockets
        return None
    if not uvicorn_fit.sets_fields(WebSocketsSansIOProtocol, _WS_FIELDS):
        return None
    try:
        from websockets.speedups import apply_mask
    except ImportError:  # pragma: no cover - websockets without its C extension
        from websockets.utils import apply_mask

    from websockets.protocol import Protocol as WsProtocol

    # ``conn.state`` is a property returning ``conn._state``: the send path, once per
    # subscriber of a broadcast, reads the field itself (no property call).
    state = vars(WsProtocol).get("state")
    code = getattr(state.fget, "__code__", None) if isinstance(state, property) else None
    if code is None or code.co_names != ("_state",):
        return None
    OPEN = State.OPEN
    unpack_16 = struct.Struct("!H").unpack_from
    unpack_64 = struct.Struct("!Q").unpack_from

    class Protocol(SendBudget, WebSocketsSansIOProtocol):
        """uvicorn's websockets sans-I/O protocol with coalesced writes, a fast path for
        complete data frames, a :class:`DirectWebSocket` for the server's app, and a bounded
        outgoing buffer (:class:`~rivetkit.server.ws_budget.SendBudget`)."""

        # In slots, not in an instance dict (past 30 names, a 1.6 KB table on each socket).
        __slots__ = _slot_names(WebSocketsSansIOProtocol)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = _Inbox(self.loop)
            # uvicorn's Event, without the waiter deque until a send waits (~750 B each).
            self.writable = LazyEvent()
            self.writable.set()
            #: The app reads through a DirectWebSocket: the fast path queues bare str/bytes.
            self.direct = False
            self._fast = False  # data frames are parsed here (open, nothing pending in conn)
            self._feeds = 0
            self._partial: bytearray | None = None
            self._need = 0
            conn = self.conn
            limit = getattr(conn, "max_message_size", None)
            fragment = getattr(conn, "max_fragment_size", None)
            if fragment is not None:
                limit = fragment if limit is None else min(limit, fragment)
            self._limit = (1 << 63) if limit is None else limit
            # Fields of ``websockets`` this fast path reads; without them it stays off.
            self._usable = hasattr(conn, "current_size") and hasattr(conn, "max_message_size")

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.transport = _Transport(transport, self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            self._fast = False
            transport = self.transport
            if isinstance(transport, _Transport):
                transport.discard()
            super().connection_lost(exc)

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None and self.response.status_code == 101:
                scope["extensions"][DIRECT_WEBSOCKET] = DirectWebSocket(self)

        # -- sending -------------------------------------------------------------------

        def send_frame_now(self, opcode: int, payload: bytes) -> bool:
            """Queue a data frame for the end of this loop iteration, if the connection is
            plainly open; False when the ASGI path must decide (closing, closed). True also when
            the frame is dropped because the client is disconnected for reading too slowly."""
            size = len(payload)
            return self.send_built_now(_frame_head(opcode, size) + payload, size)

        def send_built_now(self, frame: bytes, size: int) -> bool:
            """:meth:`send_frame_now` for a whole frame already built (its head and a
            payload of ``size`` bytes)."""
            # DirectWebSocket.send_nowait has this code inline: change both (a test checks).
            if (
                self.close_sent
                or self.disconnected
                or not self.handshake_complete
                or self.initial_response is not None
                or self.conn._state is not OPEN
            ):
                return False
            transport: Any = self.transport
            max_buffer = self.max_buffer
            writable: Any = self.writable  # a LazyEvent: ``_value`` is its is_set()
            # ``admit``'s cheap case inline.
            if not (
                writable._value
                and transport.pending_size + size <= max_buffer
                and size <= max_buffer
            ) and not self.admit(size):
                return True  # dropped: the client reads too slowly and is disconnected
            # transport.queue(frame, size) inline (once per subscriber of a broadcast), and
            # its flusher.add(transport) too (the first frame of an iteration, so once per
            # subscriber again).
            transport._pending.append(frame)
            transport.pending_size += size
            if not transport._scheduled:
                transport._scheduled = True
                flusher = transport._flusher
                flusher._dirty.append(transport)
                if not flusher._scheduled:
                    flusher._scheduled = True
                    transport._loop.call_soon(flusher.run, transport._loop)
            if transport.pending_size >= _FLUSH_AT:
                # Big frames gain nothing from waiting: out now, so that the transport
                # pauses (and awaited sends wait) as soon as the client falls behind.
                transport.flush()
            return True

        async def send(self, message: Any) -> None:
            if message["type"] == "websocket.send" and self.writable.is_set():
                text = message.get("text")
                data = message.get("bytes")
                if data is not None:
                    if self.send_frame_now(0x2, data):
                        return
                elif text is not None and self.send_frame_now(0x1, text.encode()):
                    return
            await super().send(message)
            if message["type"] == "websocket.accept" and self.handshake_complete:
                # uvicorn reads the handshake's request and response only before this point;
                # kept, they hold two copies of the headers for the socket's whole life.
                self.request = self.response = None  # type: ignore[assignment]
            if (
                not self._fast
                and self._usable
                and message["type"] == "websocket.accept"
                and self.handshake_complete
                and not self.close_sent
                and self._feeds == 1
                and not self.conn.extensions
                and self.conn.state is OPEN
                and not getattr(self.conn.reader, "buffer", b"x")
            ):
                self._fast = True
                self._restart_parser()

        def _restart_parser(self) -> None:
            """Replace ``websockets``' handshake parser by its frame parser.

            ``ServerProtocol.parse`` keeps the handshake request (its headers, ~2.5 KB) in its
            frame for the socket's whole life, though nothing reads it again. Here (the
            accept, nothing received since the handshake) it waits at a frame's start with
            nothing consumed, so a fresh ``Protocol.parse`` takes over in the same state, the
            way ``websockets`` itself swaps parsers (``discard``).
            """
            conn = self.conn
            if isinstance(conn, WsProtocol) and type(conn).parse is not WsProtocol.parse:
                conn.parser = WsProtocol.parse(conn)
                next(conn.parser)

        # -- receiving -----------------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            if self._fast:
                if self.conn.state is OPEN:
                    self._receive_frames(data)
                    return
                # Closing: websockets parses the rest, from a frame boundary.
                self._fast = False
                partial = self._partial
                if partial is not None:
                    self._partial = None
                    data = bytes(partial) + data
            else:
                self._feeds += 1
            super().data_received(data)

        def _slow(self, data: bytes) -> None:
            """Hand ``data`` (whole frames only, unless leaving the fast path for good) to
            uvicorn and ``websockets``."""
            super().data_received(data)

        def _receive_frames(self, data: bytes) -> None:
            partial = self._partial
            if partial is not None:
                partial += data
                if len(partial) < self._need:
                    return
                data = bytes(partial)
                self._partial = None
            conn = self.conn
            limit = self._limit
            size = len(data)
            i = 0
            delivered = False
            # uvicorn pauses reading as soon as a message waits for the app; a direct socket
            # only when a batch arrives before the app took the previous one (no pause and
            # resume, two syscalls, per batch; still at most about two reads buffered).
            backlog = not self.direct or not self.queue.empty()
            while i < size:
                if size - i < 2:
                    self._keep(data, i, 0)
                    break
                head = data[i]
                second = data[i + 1]
                length = second & 0x7F
                start = i + 2
                if length == 126:
                    if size - start < 2:
                        self._keep(data, i, 0)
                        break
                    (length,) = unpack_16(data, start)
                    start += 2
                elif length == 127:
                    if size - start < 8:
                        self._keep(data, i, 0)
                        break
                    (length,) = unpack_64(data, start)
                    start += 8
                opcode = head & 0x0F
                if (
                    not second & 0x80  # unmasked
                    or head & 0x70  # reserved bits
                    or opcode not in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA)
                    or length > limit
                ):
                    # websockets fails the connection on this frame: let it, as always.
                    self._fast = False
                    self._slow(data[i:])
                    return
                end = start + 4 + length
                if end > size:
                    self._keep(data, i, end - i)
                    break
                if head & 0x80 and (opcode == 0x1 or opcode == 0x2) and conn.current_size is None:
                    payload = apply_mask(data[start + 4 : end], data[start : start + 4])
                    if opcode == 0x1:
                        try:
                            message: Any = payload.decode()
                        except UnicodeDecodeError:  # uvicorn closes with 1007
                            self._slow(data[i:end])
                            message = None
                        else:
                            if self.close_sent:
                                message = None
                            elif not self.direct:
                                message = {"type": "websocket.receive", "text": message}
                    else:
                        message = payload
                        if self.close_sent:
                            message = None
                        elif not self.direct:
                            message = {"type": "websocket.receive", "bytes": payload}
                    if message is not None:
                        self.queue.put_nowait(message)
                        delivered = True
                else:
                    # A control frame, a fragment: websockets takes it (whole).
                    self._slow(data[i:end])
                i = end
                if conn.state is not OPEN or conn.parser_exc is not None or not self._fast:
                    self._fast = False
                    if i < size:
                        self._slow(data[i:])
                    break
            if delivered and backlog and not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()

        def _keep(self, data: bytes, start: int, need: int) -> None:
            self._partial = bytearray(data[start:])
            self._need = need

    global _built
    _built = (Protocol, OPEN)
    return Protocol


def ws_protocol() -> Any:
    """The ``ws`` option for uvicorn: our protocol class when the installed uvicorn and
    websockets allow it, else uvicorn's ``websockets-sansio`` or ``websockets``."""
    protocol = _build_ws_protocol()
    if protocol is not None:
        return protocol
    from uvicorn.config import WS_PROTOCOLS

    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
