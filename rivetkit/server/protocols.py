"""uvicorn protocol classes tuned for the server's traffic (``rivetkit serve`` and
:func:`rivetkit.server.serve_in_background` use them, through ``uvicorn_config``).

A small action costs less Python than uvicorn spends around it, and on loopback a ``write``
syscall costs about as much again, so both classes cut per-message work and syscalls while
answering byte for byte as uvicorn does (``tests/test_server_fastpaths.py`` compares them):

* the HTTP protocol (uvicorn's httptools protocol) offers the app :func:`respond`, which
  writes a whole response (head and body) in one ``write`` with uvicorn's bookkeeping, where
  the ASGI messages take two writes and two awaits; and it arms one lazy keep-alive timer
  per connection instead of a new timer after every response.
* the WebSocket protocol (uvicorn's websockets sans-I/O protocol): data frames sent in one
  event-loop iteration leave in one ``write``, at the end of that iteration; complete,
  unfragmented data frames from the client are parsed here, without the generic parser, and
  reading pauses only when the app falls a batch behind; the server's own app gets the socket
  itself (:class:`DirectWebSocket`) instead of an ASGI message dict per frame. Everything
  else (the handshake, control frames, fragments, invalid frames, closing) goes through
  uvicorn and ``websockets`` unchanged, so protocol errors are answered exactly as before.

Both serve any ASGI app: what they offer the server's app travels as ASGI scope extensions
(:data:`HTTP_CYCLE`, :data:`DIRECT_WEBSOCKET`) that other apps ignore, and the app uses them
only when the ``send`` it got is the protocol's own (no middleware in between).
:func:`http_protocol` and :func:`ws_protocol` give these classes when the installed uvicorn
has what they build on, and uvicorn's names otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
from collections import deque
from typing import Any, Final

from rivetkit.server.http_guard import HeadGuard
from rivetkit.server.ws_budget import SendBudget

__all__ = [
    "DIRECT_WEBSOCKET",
    "HTTP_CYCLE",
    "DirectWebSocket",
    "http_protocol",
    "respond",
    "take_body",
    "ws_protocol",
]

#: The ASGI scope extension holding the :class:`DirectWebSocket` of a connection.
DIRECT_WEBSOCKET: Final = "rivetkit.websocket"

#: Bytes of data frames held for the end of a loop iteration before they are written at once.
_FLUSH_AT: Final = 64 * 1024
_PACK_16: Final = struct.Struct("!H").pack
_PACK_64: Final = struct.Struct("!Q").pack


# MARK: HTTP


#: The ASGI scope extension holding the uvicorn request/response cycle of an HTTP request,
#: for :func:`respond`.
HTTP_CYCLE: Final = "rivetkit.http.cycle"

# Header lists already checked and serialized: their head lines, by their items.
_heads: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}
_HEADS_LIMIT: Final = 4096


@functools.cache
def _http_tools() -> tuple[Any, Any, Any] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import (
            HEADER_RE,
            HEADER_VALUE_RE,
            STATUS_LINE,
            HttpToolsProtocol,
            RequestResponseCycle,
        )
    except ImportError:  # no httptools, or another uvicorn
        return None
    if not _assigns(RequestResponseCycle, _CYCLE_FIELDS):
        return None
    return HttpToolsProtocol, STATUS_LINE, (HEADER_RE, HEADER_VALUE_RE)


# What respond() and take_body() read and write on uvicorn's cycle: without them (another
# uvicorn), uvicorn's own protocol serves instead.
_CYCLE_FIELDS: Final = frozenset(
    (
        "access_log",
        "body",
        "chunked_encoding",
        "default_headers",
        "disconnected",
        "expected_content_length",
        "flow",
        "keep_alive",
        "message_event",
        "more_body",
        "on_response",
        "response_complete",
        "response_started",
        "scope",
        "transport",
        "waiting_for_100_continue",
    )
)
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


def _assigns(cls: type[Any], fields: frozenset[str]) -> bool:
    """True when ``cls.__init__`` sets every attribute in ``fields``."""
    code = getattr(getattr(cls, "__init__", None), "__code__", None)
    return code is not None and fields <= set(code.co_names)


def _head_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """``name: value\\r\\n`` lines of ``headers`` as uvicorn writes them; None when uvicorn
    would do more than write them (an invalid header, framing or connection headers)."""
    key = tuple(headers)
    cached = _heads.get(key)
    if cached is not None:
        return cached
    tools = _http_tools()
    assert tools is not None
    header_re, value_re = tools[2]
    parts: list[bytes] = []
    for name, value in headers:
        if header_re.search(name) or value_re.search(value):
            return None  # uvicorn raises: let it
        name = name.lower()
        if name in (b"content-length", b"transfer-encoding", b"connection"):
            return None
        parts.extend((name, b": ", value, b"\r\n"))
    lines = b"".join(parts)
    if len(_heads) >= _HEADS_LIMIT:
        _heads.clear()
    _heads[key] = lines
    return lines


def respond(cycle: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """Send a whole response on uvicorn's ``cycle`` in one write: what the ASGI messages
    ``http.response.start`` (``headers`` plus ``content-length``) and ``http.response.body``
    (``body``, the last) would send, with the same bookkeeping. False when the messages must
    be sent instead (nothing is written then): a ``HEAD`` request, an access log to write,
    a response already started, a paused or closed connection, headers uvicorn would refuse
    or frame itself."""
    if (
        cycle.response_started
        or cycle.disconnected
        or cycle.flow.write_paused
        or cycle.access_log
        or cycle.scope["method"] == "HEAD"
        or status not in _STATUS_LINES
    ):
        return False
    defaults = _head_lines(cycle.default_headers)
    lines = _head_lines(headers)
    if defaults is None or lines is None:
        return False
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = False
    cycle.expected_content_length = 0
    head = b"%s%s%scontent-length: %d\r\n" % (_STATUS_LINES[status], defaults, lines, len(body))
    if not cycle.keep_alive:
        head += b"connection: close\r\n"
    cycle.transport.write(b"%s\r\n%s" % (head, body))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True


_STATUS_LINES: dict[int, bytes] = {}


def take_body(cycle: Any) -> bytes | None:
    """The whole request body when uvicorn's ``cycle`` holds all of it already, taken as
    ``receive()`` would take it as one ``http.request`` message (no coroutines); None
    otherwise (more to come, a ``100 Continue`` to send, a finished or broken exchange)."""
    if (
        cycle.more_body
        or cycle.waiting_for_100_continue
        or cycle.disconnected
        or cycle.response_complete
        or not cycle.message_event.is_set()
    ):
        return None
    cycle.flow.resume_reading()
    cycle.message_event.clear()
    body = bytes(cycle.body)
    cycle.body = b""
    return body


@functools.cache
def _build_http_protocol() -> type[Any] | None:
    tools = _http_tools()
    if tools is None:
        return None
    base, status_lines, _ = tools
    needed = ("_start_asgi_task", "on_response_complete", "_unset_keepalive_if_required")
    if not all(hasattr(base, name) for name in needed):
        return None
    _STATUS_LINES.update(status_lines)

    class Protocol(HeadGuard, base):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol, offering :func:`respond` to the app (through the
        scope extension :data:`HTTP_CYCLE`) and arming its keep-alive timer lazily; with the
        head limits and connection cap of :class:`~rivetkit.server.http_guard.HeadGuard`."""

        _idle_since: float | None = None
        timeout_keep_alive_task: asyncio.TimerHandle | None

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            cycle.scope["extensions"] = {HTTP_CYCLE: cycle}
            super()._start_asgi_task(cycle, app)

        # Keep-alive: uvicorn arms a timer after every response and cancels it on the next
        # request; here one timer, re-armed when it fires early, checks for idleness.

        def _unset_keepalive_if_required(self) -> None:
            self._idle_since = None  # busy: data arrived (or the connection is gone)

        def connection_lost(self, exc: Exception | None) -> None:
            timer = self.timeout_keep_alive_task
            if timer is not None:
                timer.cancel()
                self.timeout_keep_alive_task = None
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self._idle_since = None
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._idle_since = now = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_at(
                    now + self.timeout_keep_alive, self._keep_alive_due
                )

        def _keep_alive_due(self) -> None:
            self.timeout_keep_alive_task = None
            idle_since = self._idle_since
            if idle_since is None:
                return  # busy: the next response arms the timer again
            due = idle_since + self.timeout_keep_alive
            if due > self.loop.time():
                self.timeout_keep_alive_task = self.loop.call_at(due, self._keep_alive_due)
                return
            self.timeout_keep_alive_handler()

    return Protocol


def http_protocol() -> Any:
    """The ``http`` option for uvicorn: our protocol class when the installed uvicorn and
    httptools allow it, else uvicorn's own ``httptools`` or ``h11``."""
    protocol = _build_http_protocol()
    if protocol is not None:
        return protocol
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


# MARK: WebSocket


class _Inbox:
    """What the app receives, in order: ASGI messages, or (direct sockets) bare str/bytes.

    Replaces uvicorn's ``asyncio.Queue`` (``put_nowait``, ``get``, ``empty``) with a deque and
    a waiter list: one append per message instead of the queue's bookkeeping.
    """

    __slots__ = ("_items", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop = loop

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def get_nowait(self) -> Any:
        """The next item, or None when there is none (items are never None)."""
        items = self._items
        return items.popleft() if items else None

    async def get(self) -> Any:
        items = self._items
        while not items:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if items and not waiter.cancelled():
                    self.put_nowait(items.popleft())  # pass the wake-up on
                raise
        return items.popleft()


class _Transport:
    """The connection's transport, coalescing the data frames of one loop iteration.

    :meth:`queue` adds bytes to send at the end of the iteration (``call_soon``); every other
    write (handshake, pong, close frame) first sends what is queued, in the same syscall, so
    the bytes keep their order.
    """

    __slots__ = ("_loop", "_pending", "_scheduled", "pending_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False
        #: Payload bytes queued for the end of this iteration (see ``ws_budget``).
        self.pending_size = 0

    def queue(self, head: bytes, payload: bytes) -> None:
        pending = self._pending
        pending.append(head)
        pending.append(payload)
        self.pending_size += len(payload)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        pending = self._pending
        if pending:
            data = b"".join(pending)
            pending.clear()
            self.pending_size = 0
            if not self.transport.is_closing():
                self.transport.write(data)

    def discard(self) -> None:
        self._pending.clear()
        self.pending_size = 0

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending:
            pending.append(data)
            self.flush()
        else:
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def _frame_head(opcode: int, length: int) -> bytes:
    """The head of an unmasked, final server frame (RFC 6455 §5.2)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + _PACK_16(length)
    return bytes((0x80 | opcode, 127)) + _PACK_64(length)


class DirectWebSocket:
    """A connection's WebSocket for the server's own app (dispatch's ``WebSocket``), over the
    protocol itself: no ASGI message per frame.

    Its behaviour is the ASGI adapter's (``rivetkit.server.app._AsgiWebSocket``): ``receive``
    gives None once the socket is closed, ``send`` on a closed socket does nothing.
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
        this loop iteration); False when :meth:`send` must be awaited instead."""
        if self._closed:
            return True  # dropped, as send() would
        protocol = self._protocol
        if protocol.overflowed:
            return True  # dropped: closing a client that reads too slowly
        # Not waiting for the transport to drain: send_frame_now bounds what may queue up.
        if type(data) is str:
            try:
                payload = data.encode()
            except UnicodeEncodeError:
                return False  # send() reports it
            return protocol.send_frame_now(0x1, payload)  # type: ignore[no-any-return]
        return protocol.send_frame_now(0x2, data)  # type: ignore[no-any-return]

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


@functools.cache
def _build_ws_protocol() -> type[Any] | None:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.protocol import State
    except ImportError:  # an older uvicorn or websockets
        return None
    if not _assigns(WebSocketsSansIOProtocol, _WS_FIELDS):
        return None
    try:
        from websockets.speedups import apply_mask
    except ImportError:  # pragma: no cover - websockets without its C extension
        from websockets.utils import apply_mask

    OPEN = State.OPEN
    unpack_16 = struct.Struct("!H").unpack_from
    unpack_64 = struct.Struct("!Q").unpack_from

    class Protocol(SendBudget, WebSocketsSansIOProtocol):
        """uvicorn's websockets sans-I/O protocol with coalesced writes, a fast path for
        complete data frames, a :class:`DirectWebSocket` for the server's app, and a bounded
        outgoing buffer (:class:`~rivetkit.server.ws_budget.SendBudget`)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = _Inbox(self.loop)
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
            if (
                self.close_sent
                or self.disconnected
                or not self.handshake_complete
                or self.initial_response is not None
                or self.conn.state is not OPEN
            ):
                return False
            if not self.admit(len(payload)):
                return True  # dropped: the client reads too slowly and is disconnected
            transport: Any = self.transport
            transport.queue(_frame_head(opcode, len(payload)), payload)
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

    return Protocol


def ws_protocol() -> Any:
    """The ``ws`` option for uvicorn: our protocol class when the installed uvicorn and
    websockets allow it, else uvicorn's ``websockets-sansio`` or ``websockets``."""
    protocol = _build_ws_protocol()
    if protocol is not None:
        return protocol
    from uvicorn.config import WS_PROTOCOLS

    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
