"""The HTTP limits of :mod:`rivetkit.server.limits`, as a mixin of our httptools protocol
(:func:`rivetkit.server.http_fastpath.http_protocol`).

:class:`HeadGuard` watches each request head: it must be complete within ``header_timeout``
(else ``408`` and close), have at most ``max_headers`` fields and ``max_header_bytes`` bytes
(else ``431`` and close); and a connection opened while ``max_connections`` are open is
answered ``503`` once its head arrives (or closed when it does not arrive soon). Refusals are
short RivetError bodies (``request.timeout``, ``request.header_fields_too_large``,
``server.too_many_connections``) with ``connection: close``, counted in
:data:`~rivetkit.metrics.server.SERVER_COUNTERS`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

from rivetkit.metrics.server import SERVER_COUNTERS
from rivetkit.server.http_direct import NO_EVENT, DirectCycle, direct_app, take
from rivetkit.server.limits import ServerLimits

try:
    from httptools import HttpParserError, HttpParserUpgrade, parse_url
    from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
except ImportError:  # pragma: no cover - no httptools, another uvicorn: our protocol unused
    HIGH_WATER_LIMIT = 65536
    HttpParserError = HttpParserUpgrade = Exception  # type: ignore[assignment,misc]

__all__ = ["LIMITS_ATTRIBUTE", "HeadGuard", "limits_of", "split_target"]

logger = logging.getLogger("rivetkit.server")

#: The attribute of uvicorn's ``Config`` holding the server's :class:`ServerLimits`.
LIMITS_ATTRIBUTE: Final = "rivetkit_limits"

#: Seconds a refused connection may take to send its head before it is just closed.
_REFUSED_HEAD_TIMEOUT: Final = 2.0

#: Seconds a refused connection is read (and discarded) before it is closed.
_LINGER: Final = 2.0

_REASONS: Final = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@functools.cache
def _default_limits() -> ServerLimits:
    return ServerLimits().resolved()


def limits_of(config: Any) -> ServerLimits:
    """The :class:`ServerLimits` a uvicorn ``config`` carries (the defaults when none)."""
    limits = getattr(config, LIMITS_ATTRIBUTE, None)
    if isinstance(limits, ServerLimits):
        return limits.resolved()
    return _default_limits()


def refusal(status: int, group: str, code: str, message: str, metadata: dict[str, Any]) -> bytes:
    """A whole ``status`` response with a RivetError body and ``connection: close``."""
    body = json.dumps(
        {"group": group, "code": code, "message": message, "metadata": metadata},
        separators=(",", ":"),
    ).encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
    )


# The bytes that send a request target to httptools' parser (split_target): controls, space,
# "#" (a fragment) and anything beyond ASCII.
_NOT_PLAIN: Final = bytes(range(0x21)) + b"#" + bytes(range(0x7F, 0x100))


def split_target(url: bytes) -> tuple[bytes, bytes]:
    """``(path, query)`` of a request target, as uvicorn takes them from ``httptools.parse_url``
    (the query ``b""`` when there is none). A plain origin-form target (``/``, then printable
    ASCII without ``#``) is split here, without the parser's walk of every byte
    (``tests/test_http_guard_steps.py`` compares them); any other goes to the parser, which
    raises on what it refuses."""
    if url[:1] == b"/" and len(url.translate(None, _NOT_PLAIN)) == len(url):
        path, _, query = url.partition(b"?")
        return path, query
    parsed = parse_url(url)
    return parsed.path, parsed.query or b""


class _Warnings:
    """Refusal warnings, at most one per kind a second (a flood must not flood the log)."""

    last: dict[str, float] = {}  # noqa: RUF012 - one process-wide table on purpose

    @classmethod
    def warn(cls, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - cls.last.get(kind, -10.0) >= 1.0:
            cls.last[kind] = now
            logger.warning(message, *args)


class HeadGuard:
    """Mixin (before uvicorn's ``HttpToolsProtocol`` in the bases) enforcing the head limits
    and the connection cap. It reads the base's ``config``, ``loop``, ``transport``,
    ``connections`` and parser callbacks, and calls through to them, except those called for
    every request (``data_received``, ``on_message_begin``, ``on_url``, ``on_header``,
    ``on_headers_complete``, ``on_body``, ``on_message_complete``): those do the base's few
    steps themselves, a call layer fewer about ten times a request
    (``tests/test_http_guard_steps.py`` compares them with the base's)."""

    _head_due: float | None = None  # when the head being read must be complete
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0  # bytes received while the head is incomplete
    _head_fields = 0  # header fields of the head
    _head_size = 0  # bytes of its request target and header fields
    _refused = False  # over the connection cap: answer 503 once the head arrives
    _rejected = False  # a refusal was written, the connection is closing

    # Attributes of uvicorn's protocol.
    config: Any
    loop: asyncio.AbstractEventLoop
    transport: Any
    connections: set[Any]
    url: bytes
    headers: list[tuple[bytes, bytes]]
    expect_100_continue: bool
    parser: Any
    cycle: Any
    flow: Any
    _should_upgrade: Callable[[], bool]
    _unsupported_upgrade_warning: Callable[[], None]
    _unset_keepalive_if_required: Callable[[], None]
    logger: Any
    scope: Any
    asgi_version: str
    server: Any
    client: Any
    scheme: str
    root_path: str
    app_state: dict[str, Any]
    app: Any
    limit_concurrency: int | None
    tasks: set[Any]
    access_logger: Any
    access_log: bool
    server_state: Any
    pipeline: Any
    on_response_complete: Callable[[], None]
    _start_asgi_task: Callable[[Any, Any], None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits = limits_of(self.config)
        # Read for every header field: plain attributes, not the limits' fields.
        self._max_headers = limits.max_headers
        self._max_header_bytes = limits.max_header_bytes
        # The app the direct road answers for (http_direct.py), or None.
        self._direct_app = direct_app(self.app)

    # -- the connection ----------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        cap = self._limits.max_connections
        if cap is not None and len(self.connections) > cap:
            self._refused = True
            SERVER_COUNTERS.connections_refused += 1
            _Warnings.warn(
                "cap",
                "refusing connections: %d are open (max_connections %d; --max-connections)",
                len(self.connections) - 1,
                cap,
            )
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = self._head_timer
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        self._head_due = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        in_head = self._head_due is not None
        # The base's data_received.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
        except HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if in_head and self._head_due is not None and not self._rejected:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._too_large()

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        # The base's on_message_begin.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []  # (the scope: in on_headers_complete, unless the direct road takes it)
        if self._head_due is None:
            self._begin_head()

    def on_url(self, url: bytes) -> None:
        if self._rejected:
            return
        self._head_size += len(url)
        self.url += url  # the base's on_url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._rejected:
            return
        self._head_fields += 1
        self._head_size += len(name) + len(value) + 4
        if self._head_fields > self._max_headers or self._head_size > self._max_header_bytes:
            self._too_large()
            return
        # The base's on_header: llhttp keeps a value's trailing whitespace (RFC 9110 5.5
        # excludes it).
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._rejected:
            return
        self._head_due = None
        if self._refused:
            cap = self._limits.max_connections
            self._reject(
                503,
                "server",
                "too_many_connections",
                f"the server has its maximum of {cap} connections open; retry later",
                {"max_connections": cap},
            )
            return
        parser = self.parser
        http_version = parser.get_http_version()
        method = parser.get_method()
        target = None
        app = self._direct_app
        if (
            app is not None
            and method == b"POST"
            and http_version == "1.1"
            and not parser.should_upgrade()
        ):
            url = self.url  # split_target's plain case inline (no frame), else its call
            if url[:1] == b"/" and len(url.translate(None, _NOT_PLAIN)) == len(url):
                path, _, query = url.partition(b"?")
                target = (path, query)
            else:
                target = split_target(url)
            if take(self, app, *target):
                return  # the direct road (http_direct.py): no scope, no ASGI cycle
        self._ordinary(method, http_version, target)

    def _ordinary(
        self, method: bytes, http_version: str, target: tuple[bytes, bytes] | None
    ) -> None:
        """The ordinary road of the request whose head was parsed (``target`` its path and
        query when split already): uvicorn's scope, cycle and ASGI task."""
        parser = self.parser
        # The base's on_message_begin's scope, then its on_headers_complete.
        self.scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        scope = self.scope
        scope["method"] = method.decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        raw_path, query = split_target(self.url) if target is None else target
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root_path = self.root_path
        scope["path"] = root_path + path
        scope["raw_path"] = root_path.encode("ascii") + raw_path if root_path else raw_path
        scope["query_string"] = query
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            message = "Exceeded concurrency limit."
            self.logger.warning(message)
        else:
            app = self.app
        existing_cycle = self.cycle
        self.cycle = cycle = RequestResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(cycle, app)  # the standard case
        else:  # pipelined requests wait their turn
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    def ordinary_late(self, direct: DirectCycle) -> None:
        """Hand the direct road's request, its body whole, to the ordinary road (its actor
        stopped while the body came: the ordinary road finds or wakes it)."""
        self.cycle = None  # (the direct road was taken with nothing else in flight)
        self.headers = direct.headers
        parser = self.parser
        self._ordinary(parser.get_method(), parser.get_http_version(), None)
        cycle = self.cycle
        cycle.body += direct.body
        cycle.more_body = False
        cycle.message_event.set()

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        # The base's on_body.
        if (self.parser.should_upgrade() and self._should_upgrade()) or (
            cycle := self.cycle
        ).response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        event = cycle.message_event
        if event is not NO_EVENT:  # (the direct road's: nobody waits, no call)
            event.set()

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        # The base's on_message_complete.
        if (self.parser.should_upgrade() and self._should_upgrade()) or (
            cycle := self.cycle
        ).response_complete:
            return
        cycle.more_body = False
        if cycle.__class__ is DirectCycle:
            cycle.run()  # the direct road's request is whole: answer it
            return
        cycle.message_event.set()

    def handle_websocket_upgrade(self) -> None:
        if not self._rejected:
            # The WebSocket protocol takes the transport: a pending head timer would keep
            # this protocol (parser, scope, headers: ~5 KB) alive until it fires.
            timer = self._head_timer
            if timer is not None:
                timer.cancel()
                self._head_timer = None
            self._head_due = None
            super().handle_websocket_upgrade()  # type: ignore[misc]

    def send_400_response(self, msg: str) -> None:
        if not self._rejected:  # (the parser stops on our refusals with an error)
            super().send_400_response(msg)  # type: ignore[misc]

    # -- the head's clock --------------------------------------------------------------

    def _begin_head(self) -> None:
        timeout = self._limits.header_timeout
        if self._refused:
            timeout = min(timeout, _REFUSED_HEAD_TIMEOUT)
        self._head_due = self.loop.time() + timeout
        self._head_bytes = self._head_fields = self._head_size = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_due, self._head_check)

    def _head_check(self) -> None:
        self._head_timer = None
        due = self._head_due
        if due is None or self._rejected:
            return  # the head arrived: the next one arms the timer again
        if due > self.loop.time():
            self._head_timer = self.loop.call_at(due, self._head_check)
            return
        if self._refused:
            self._rejected = True
            self.transport.close()
            return
        SERVER_COUNTERS.header_timeouts += 1
        timeout = self._limits.header_timeout
        self._reject(
            408,
            "request",
            "timeout",
            f"the request head was not received within {timeout:g} s",
            {"header_timeout": timeout},
        )

    # -- refusals ----------------------------------------------------------------------

    def _too_large(self) -> None:
        SERVER_COUNTERS.headers_too_large += 1
        limits = self._limits
        _Warnings.warn("head", "refusing a request head over the limits (431)")
        self._reject(
            431,
            "request",
            "header_fields_too_large",
            f"the request head is over the limits ({limits.max_headers} header fields, "
            f"{limits.max_header_bytes} bytes)",
            {"max_headers": limits.max_headers, "max_header_bytes": limits.max_header_bytes},
        )

    def _reject(
        self, status: int, group: str, code: str, message: str, metadata: dict[str, Any]
    ) -> None:
        self._rejected = True
        self._head_due = None
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(refusal(status, group, code, message, metadata))
        # A lingering close: closing with unread bytes (the rest of a huge head) would reset
        # the connection, and the client might never read the answer. Send FIN, discard
        # what still comes (data_received), close when the client does or a moment later.
        try:
            transport.write_eof()
        except (NotImplementedError, AttributeError, OSError, RuntimeError):
            transport.close()
            return
        self.loop.call_later(_LINGER, transport.close)
