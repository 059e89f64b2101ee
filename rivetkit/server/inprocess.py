"""Serve an ASGI app to a client in the same process, without sockets: the test harness's wire.

:class:`InProcessServer` gives a :class:`rivetkit.client.Client` what it needs to reach a
:class:`~rivetkit.server.RivetApp` without a network:

* HTTP through :meth:`InProcessServer.transport` (:class:`InProcessTransport`, an httpx
  transport: each request is one call of the app in the caller's task, so context variables
  reach the app; the response is buffered whole, so a streamed body arrives at its end);
* WebSockets through :meth:`InProcessServer.ws_connect`, a stand-in for
  ``websockets.asyncio.client.connect``: the app's ASGI websocket path runs in a task and
  talks to an :class:`InProcessWebSocket` with the members of websockets' ``ClientConnection``
  the client uses (``send``, ``recv``, ``async for``, ``close(code, reason)``,
  ``protocol.close_exc``, ``subprotocol``). Close codes and reasons reach each side as over a
  real socket; a refused upgrade raises ``InvalidStatus`` with the app's HTTP answer.

Requests come from ``127.0.0.1`` with a loopback ``Host`` and no ``Origin``, as from a local
non-browser client. :meth:`InProcessServer.aclose` closes every socket still open (code 1001,
as a server going away) and waits for the app's tasks, cancelling those that do not end.

    server = InProcessServer(app)
    client = Client(server.endpoint, transport=server.transport(), ws_connect=server.ws_connect)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import httpx
from websockets.datastructures import Headers as WsHeaders
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import Close
from websockets.http11 import Response as WsResponse
from websockets.protocol import State

from rivetkit.server.asgi_io import Message

__all__ = [
    "ENDPOINT",
    "ClientDisconnected",
    "InProcessServer",
    "InProcessTransport",
    "InProcessWebSocket",
]

log = logging.getLogger("rivetkit.server")

#: The endpoint an in-process client uses (nothing listens there: no socket is opened).
ENDPOINT: Final = "http://127.0.0.1:6420"
#: The peer address the app sees.
CLIENT_ADDRESS: Final = ("127.0.0.1", 50000)
#: Close codes websockets reports as a normal close (``ConnectionClosedOK``).
_OK_CODES: Final = (1000, 1001)
#: How long :meth:`InProcessServer.aclose` waits for the app's socket tasks to end.
_DRAIN_TIMEOUT: Final = 5.0


class ClientDisconnected(OSError):
    """Raised to the app when it sends on a socket the client has closed (as ASGI servers do)."""


class _Protocol:
    """The ``protocol`` member of a connection: only ``close_exc`` and ``state``."""

    def __init__(self, socket: InProcessWebSocket) -> None:
        self._socket = socket

    @property
    def state(self) -> State:
        """The connection's state."""
        return self._socket.state

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception a closed connection raises (its close frames)."""
        return self._socket._close_exc()


class InProcessWebSocket:
    """The client end of an in-process WebSocket, shaped like websockets' ``ClientConnection``.

    Messages the app sent before closing are received before the close is reported; then
    ``recv`` and ``send`` raise ``ConnectionClosedOK`` (codes 1000/1001 both ways) or
    ``ConnectionClosedError``, and ``async for`` ends on a normal close.
    """

    def __init__(self, server: InProcessServer, scope: dict[str, Any]) -> None:
        self._server = server
        self.scope = scope
        #: The subprotocol the app accepted, or None.
        self.subprotocol: str | None = None
        self.protocol = _Protocol(self)
        self.state = State.CONNECTING
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._to_client: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._refusal: list[Message] = []
        self._rcvd: Close | None = None
        self._sent: Close | None = None
        self._rcvd_then_sent: bool | None = None
        self._closed = asyncio.Event()
        self._to_app.put_nowait({"type": "websocket.connect"})
        self.task: asyncio.Task[None] = asyncio.ensure_future(self._run_app())

    # -- the client's side -----------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The close code received (1006 when the connection was lost), None while open."""
        if self.state is not State.CLOSED:
            return None
        return 1006 if self._rcvd is None else self._rcvd.code

    @property
    def close_reason(self) -> str | None:
        """The close reason received, None while open."""
        if self.state is not State.CLOSED:
            return None
        return "" if self._rcvd is None else self._rcvd.reason

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message to the app."""
        if self.state is not State.OPEN:
            raise self._close_exc()
        if isinstance(message, str):
            self._to_app.put_nowait({"type": "websocket.receive", "text": message})
        else:
            self._to_app.put_nowait({"type": "websocket.receive", "bytes": bytes(message)})

    async def recv(self, decode: bool | None = None) -> str | bytes:
        """The next message from the app; raises ``ConnectionClosed`` once closed."""
        data = await self._to_client.get()
        if data is None:
            self._to_client.put_nowait(None)  # every later recv sees the close too
            raise self._close_exc()
        if decode is True and isinstance(data, bytes):
            return data.decode()
        if decode is False and isinstance(data, str):
            return data.encode()
        return data

    async def __aiter__(self) -> Any:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; the app receives ``websocket.disconnect``."""
        if self.state is State.CLOSED or self.state is State.CONNECTING:
            return
        frame = Close(code, reason)
        self._finish(rcvd=frame, sent=frame, rcvd_then_sent=False)  # the app's echo
        self._to_app.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self._closed.wait()

    async def ping(self, data: Any = None) -> asyncio.Future[float]:
        """Answered at once (there is no network): a done future of latency 0."""
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        pong.set_result(0.0)
        return pong

    async def __aenter__(self) -> InProcessWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<InProcessWebSocket {self.scope['path']} {self.state.name}>"

    def _close_exc(self) -> ConnectionClosed:
        rcvd, sent = self._rcvd, self._sent
        if (
            rcvd is not None
            and sent is not None
            and rcvd.code in _OK_CODES
            and sent.code in _OK_CODES
        ):
            return ConnectionClosedOK(rcvd, sent, self._rcvd_then_sent)
        return ConnectionClosedError(rcvd, sent, self._rcvd_then_sent)

    def _finish(
        self, *, rcvd: Close | None, sent: Close | None, rcvd_then_sent: bool | None
    ) -> None:
        if self.state is State.CLOSED:
            return
        self._rcvd, self._sent, self._rcvd_then_sent = rcvd, sent, rcvd_then_sent
        self.state = State.CLOSED
        self._to_client.put_nowait(None)
        self._closed.set()

    # -- the app's side --------------------------------------------------------------------

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if self.state is State.CONNECTING:
            if kind == "websocket.accept":
                self.subprotocol = message.get("subprotocol")
                self.state = State.OPEN
                if not self._opened.done():
                    self._opened.set_result(None)
            elif kind == "websocket.close":  # closed before accepting: an HTTP 403
                self._refuse(403, [], b"")
            elif kind == "websocket.http.response.start":
                self._refusal.append(message)
            elif kind == "websocket.http.response.body":
                self._refusal.append(message)
                if not message.get("more_body", False):
                    start = self._refusal[0]
                    body = b"".join(m.get("body", b"") for m in self._refusal[1:])
                    self._refuse(start["status"], start.get("headers", []), body)
            return
        if self.state is not State.OPEN:
            raise ClientDisconnected("the client has closed the WebSocket")
        if kind == "websocket.send":
            text = message.get("text")
            self._to_client.put_nowait(text if text is not None else bytes(message["bytes"]))
        elif kind == "websocket.close":
            frame = Close(int(message.get("code", 1000)), str(message.get("reason") or ""))
            self._finish(rcvd=frame, sent=frame, rcvd_then_sent=True)  # the client echoes it
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": frame.code})

    def _refuse(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> None:
        self.state = State.CLOSED
        self._closed.set()
        if not self._opened.done():
            try:
                phrase = http.HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            ws_headers = WsHeaders(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
            )
            self._opened.set_exception(InvalidStatus(WsResponse(status, phrase, ws_headers, body)))

    async def _run_app(self) -> None:
        try:
            await self._server.app(self.scope, self._receive, self._send)
        except Exception as exc:
            if self.state is State.CONNECTING:
                self._refuse(500, [], b"")
            elif self.state is State.OPEN:  # as uvicorn: an internal error closes with 1011
                frame = Close(1011, "")
                self._finish(rcvd=frame, sent=frame, rcvd_then_sent=True)
            if not isinstance(exc, ClientDisconnected):
                log.exception("the app failed on WebSocket %s", self.scope["path"])
        finally:
            if self.state is State.CONNECTING:
                self._refuse(500, [], b"")
            elif self.state is State.OPEN:
                # The app returned without closing: the server drops the connection (1006).
                self._finish(rcvd=None, sent=None, rcvd_then_sent=None)


class InProcessTransport(httpx.AsyncBaseTransport):
    """An httpx transport calling an ASGI app directly, in the caller's task.

    As ``httpx.ASGITransport`` (the app's exceptions propagate; the response is buffered
    whole), without its per-request probe for trio, which costs an import attempt per call.
    """

    def __init__(self, app: Any, *, client: tuple[str, int] = CLIENT_ADDRESS) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Run the app on ``request`` and return its whole answer."""
        url = request.url
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port),
            "client": self.client,
            "root_path": "",
        }
        stream = request.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        chunks = stream.__aiter__()
        request_done = False
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        complete = asyncio.Event()
        head = request.method == "HEAD"

        async def receive() -> Message:
            nonlocal request_done
            if request_done:
                await complete.wait()
                return {"type": "http.disconnect"}
            try:
                body = await chunks.__anext__()
            except StopAsyncIteration:
                request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": body, "more_body": True}

        async def send(message: Message) -> None:
            nonlocal status, headers
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
            elif kind == "http.response.body":
                body = message.get("body", b"")
                if body and not head:
                    parts.append(bytes(body))
                if not message.get("more_body", False):
                    complete.set()

        try:
            await self.app(scope, receive, send)
        finally:
            complete.set()
        if status is None:
            raise RuntimeError("the app returned without starting a response")
        return httpx.Response(status, headers=headers, content=b"".join(parts))


class InProcessServer:
    """Serves ``app`` (an ASGI app) to in-process clients: see the module docstring."""

    def __init__(self, app: Any, *, endpoint: str = ENDPOINT) -> None:
        self.app = app
        #: The base URL clients use (its host becomes the requests' ``Host``).
        self.endpoint = endpoint
        self._sockets: set[InProcessWebSocket] = set()
        self._closed = False

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport calling the app directly (one per client)."""
        return InProcessTransport(self.app)

    @property
    def sockets(self) -> frozenset[InProcessWebSocket]:
        """The WebSockets whose app task is still running."""
        return frozenset(self._sockets)

    async def ws_connect(
        self,
        uri: str,
        *,
        subprotocols: Iterable[str] | None = None,
        additional_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        user_agent_header: str | None = None,
        open_timeout: float | None = 10.0,
        **_ignored: Any,
    ) -> InProcessWebSocket:
        """Open a WebSocket to the app, as ``websockets.asyncio.client.connect(uri, ...)``.

        Raises ``InvalidStatus`` when the app refuses the upgrade (its HTTP answer),
        ``InvalidURI`` for a URI that is not ``ws://`` or ``wss://``, ``TimeoutError`` when the
        app neither accepts nor refuses within ``open_timeout`` seconds.
        """
        if self._closed:
            raise ConnectionRefusedError(f"the in-process server of {self.endpoint} is closed")
        parts = urlsplit(uri)
        if parts.scheme not in ("ws", "wss"):
            raise InvalidURI(uri, "the scheme is not ws:// or wss://")
        offered = list(subprotocols or [])
        headers: list[tuple[bytes, bytes]] = [
            (b"host", (parts.netloc.rpartition("@")[2] or "127.0.0.1").encode("latin-1")),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", base64.b64encode(os.urandom(16))),
            (b"sec-websocket-version", b"13"),
        ]
        if offered:
            headers.append((b"sec-websocket-protocol", ", ".join(offered).encode("latin-1")))
        if user_agent_header:
            headers.append((b"user-agent", user_agent_header.encode("latin-1")))
        extra = (
            additional_headers.items()
            if isinstance(additional_headers, Mapping)
            else additional_headers
        )
        for name, value in extra or ():
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        raw_path = (parts.path or "/").encode("latin-1")
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": parts.scheme,
            "path": unquote(parts.path or "/"),
            "raw_path": raw_path,
            "query_string": parts.query.encode("latin-1"),
            "root_path": "",
            "headers": headers,
            "client": CLIENT_ADDRESS,
            "server": (parts.hostname or "127.0.0.1", parts.port or 80),
            "subprotocols": offered,
            "extensions": {"websocket.http.response": {}},
        }
        socket = InProcessWebSocket(self, scope)
        self._sockets.add(socket)
        socket.task.add_done_callback(lambda _task: self._sockets.discard(socket))
        try:
            await asyncio.wait_for(asyncio.shield(socket._opened), open_timeout)
        except BaseException:
            if not socket.task.done():
                socket._to_app.put_nowait({"type": "websocket.disconnect", "code": 1006})
            raise
        return socket

    async def aclose(self) -> None:
        """Close every open socket (1001) and wait for the app's socket tasks (cancelling
        those still running after a few seconds). Later ``ws_connect`` calls are refused."""
        self._closed = True
        sockets = list(self._sockets)
        for socket in sockets:
            if socket.state is State.OPEN:
                await socket.close(1001, "going away")
            elif socket.state is State.CONNECTING:
                socket._to_app.put_nowait({"type": "websocket.disconnect", "code": 1006})
        tasks = [socket.task for socket in sockets if not socket.task.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=_DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
