"""Our uvicorn HTTP protocol: uvicorn's httptools protocol, tuned for the server's traffic
(``rivetkit serve`` and :func:`rivetkit.server.serve_in_background` use it, through
``uvicorn_config``; :mod:`rivetkit.server.ws_fastpath` is its WebSocket counterpart).

A small action costs less Python than uvicorn spends around it, and on loopback a ``write``
syscall costs about as much again, so the protocol cuts per-request work and syscalls while
answering byte for byte as uvicorn does (``tests/test_server_fastpaths.py`` compares them): it
offers the app :func:`respond`, which writes a whole response (head and body) in one ``write``
with uvicorn's bookkeeping, where the ASGI messages take two writes and two awaits; and it
arms one lazy keep-alive timer per connection instead of a new timer after every response.
At the server's shutdown it closes a connection whose response is a stream (see
:mod:`rivetkit.server.asgi_stream`) rather than wait for the stream's end.
The head limits and the connection cap come from :mod:`rivetkit.server.http_guard`.

It serves any ASGI app: what it offers the server's app travels as the ASGI scope extension
:data:`HTTP_CYCLE` that other apps ignore, and the app uses it only when the ``send`` it got
is the protocol's own (no middleware in between). :func:`http_protocol` gives the class when
the installed uvicorn has what it builds on, and uvicorn's name otherwise.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import weakref
from collections.abc import Callable, MutableMapping
from typing import Any, Final

from rivetkit.dispatch.http import OnceHeaders
from rivetkit.server import uvicorn_fit
from rivetkit.server.http_direct import NO_EVENT
from rivetkit.server.http_guard import HeadGuard

__all__ = [
    "HTTP_CYCLE",
    "forget_head",
    "http_protocol",
    "mark_streaming",
    "own_cycle",
    "respond",
    "streaming",
    "take_body",
]


#: The ASGI scope extension holding a weak reference to the uvicorn request/response cycle
#: of an HTTP request, for :func:`respond` (call it to get the cycle; see :func:`cycle_of`).
#: Weak because the cycle holds the scope: a strong one made every request a reference
#: cycle, left for the cyclic garbage collector (about a tenth of the server's time under
#: load went to collecting them).
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
    if not uvicorn_fit.sets_fields(RequestResponseCycle, _CYCLE_FIELDS):
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


def _head_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """``name: value\\r\\n`` lines of ``headers`` as uvicorn writes them; None when uvicorn
    would do more than write them (an invalid header, framing or connection headers). Kept
    by the list's items, but for a :class:`~rivetkit.dispatch.http.OnceHeaders`.

    A name seen fine before (lower case, valid, no framing: :data:`_good_names`) is not
    checked again, and the values are checked in one search of them joined by a tab (which
    uvicorn's value pattern allows): an actor's first answer (its own header list) costs
    one search instead of two per header."""
    if headers.__class__ is OnceHeaders:
        key = None
    else:
        key = tuple(headers)
        cached = _heads.get(key)
        if cached is not None:
            return cached
    tools = _http_tools()
    assert tools is not None
    header_re, value_re = tools[2]
    good = _good_names
    parts: list[bytes] = []
    values: list[bytes] = []
    for name, value in headers:
        if name.__class__ is not bytes or name not in good:  # (a bytearray: unhashable)
            if header_re.search(name):
                return None  # uvicorn raises: let it
            lowered = name.lower()
            if lowered in _FRAMING_NAMES:
                return None
            if lowered == name and name.__class__ is bytes:
                if len(good) >= _HEADS_LIMIT:
                    good.clear()
                good.add(name)
            name = lowered
        values.append(value)
        parts.extend((name, b": ", value, b"\r\n"))
    if value_re.search(b"\t".join(values)):
        return None  # uvicorn raises: let it
    lines = b"".join(parts)
    if key is not None:
        if len(_heads) >= _HEADS_LIMIT:
            _heads.clear()
        _heads[key] = lines
    return lines


# Header names _head_lines found fine (lower case, valid, not framing): not checked again.
_good_names: set[bytes] = set()
_FRAMING_NAMES: Final = (b"content-length", b"transfer-encoding", b"connection")


def forget_head(headers: list[tuple[bytes, bytes]]) -> None:
    """Drop the cached head lines of ``headers`` (an actor's response headers, when it
    stops: a sleeping actor's headers are not kept until the cache fills)."""
    _heads.pop(tuple(headers), None)


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
    global _last_defaults
    default_headers = cycle.default_headers
    last = _last_defaults  # one read: servers in other threads may replace it
    if default_headers is last[0]:
        defaults = last[1]
    else:
        defaults = _head_lines(default_headers)
        _last_defaults = (default_headers, defaults)
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
    event = cycle.message_event
    if event is not NO_EVENT:  # (the direct road's: nobody waits, no call)
        event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True


_STATUS_LINES: dict[int, bytes] = {}

# uvicorn's default headers (the date and the server's own) and their lines: uvicorn puts a
# new list in place every second and never changes one, so the list itself is the key (held
# here: its id cannot be reused meanwhile).
_last_defaults: tuple[Any, bytes | None] = (None, None)

# Set on a cycle whose response is a stream (see mark_streaming).
_STREAMING: Final = "rivetkit_streaming"


def mark_streaming(cycle: Any) -> None:
    """Note that uvicorn's ``cycle`` sends a streamed response: at the server's shutdown our
    protocol closes its connection (which stops the stream) instead of waiting for its end."""
    setattr(cycle, _STREAMING, True)


def streaming(cycle: Any) -> bool:
    """True when :func:`mark_streaming` marked ``cycle``."""
    return bool(getattr(cycle, _STREAMING, False))


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
    if "reset_contextvars" not in base._start_asgi_task.__code__.co_names:
        return None  # another uvicorn: its _start_asgi_task may do other steps
    _STATUS_LINES.update(status_lines)

    class Protocol(HeadGuard, base):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol, offering :func:`respond` to the app (through the
        scope extension :data:`HTTP_CYCLE`) and arming its keep-alive timer lazily; with the
        head limits and connection cap of :class:`~rivetkit.server.http_guard.HeadGuard`."""

        _idle_since: float | None = None
        timeout_keep_alive_task: asyncio.TimerHandle | None

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            cycle.scope["extensions"] = {HTTP_CYCLE: weakref.ref(cycle)}
            # The base's _start_asgi_task.
            if self.config.reset_contextvars:
                task = self.loop.create_task(
                    cycle.run_asgi(app),
                    context=contextvars.Context(),  # type: ignore[call-arg]
                )
            else:
                task = self.loop.create_task(cycle.run_asgi(app))
            tasks = self.tasks
            task.add_done_callback(tasks.discard)
            tasks.add(task)

        # Keep-alive: uvicorn arms a timer after every response and cancels it on the next
        # request; here one timer, re-armed when it fires early, checks for idleness.

        def shutdown(self) -> None:
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and streaming(cycle):
                # A streamed response (an SSE feed) may never end: uvicorn would wait for it
                # until its graceful timeout. Closing stops the stream (asgi_stream.py).
                self.transport.close()
                return
            super().shutdown()

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


def own_cycle(scope: MutableMapping[str, Any], call: Callable[..., Any]) -> Any:
    """Our uvicorn protocol's cycle of this request, when ``call`` (the ``receive`` or
    ``send`` the app got) is the cycle's own: nothing sits between it and us."""
    extensions = scope.get("extensions")
    if extensions is None:
        return None
    ref = extensions.get(HTTP_CYCLE)
    if ref is None:
        return None
    cycle = ref()  # a weak reference (see HTTP_CYCLE)
    if cycle is None or getattr(call, "__self__", None) is not cycle:
        return None
    return cycle
