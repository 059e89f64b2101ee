"""Fakes for the client's unit tests: a scripted ``/connect`` WebSocket server on 127.0.0.1
and an ``httpx.MockTransport`` that records requests.

The fake WebSocket server speaks the client protocol through
:mod:`rivetkit.protocol.messages` (the server direction), so the client is checked against
the same codecs the real server uses. Its default behaviour is a counter actor; tests replace
``FakeConnectServer.script`` to misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActionResponse,
    Error,
    Event,
    Init,
    SubscriptionRequest,
    ToClient,
)
from rivetkit.protocol.http_bodies import http_action_request_from, http_action_response_to
from rivetkit.protocol.messages import decode_to_server, encode_to_client


@dataclass
class FakeSocket:
    """One accepted connection, as the fake server saw it."""

    ws: ServerConnection
    path: str
    subprotocols: list[str]
    encoding: str
    params: Any
    received: list[Any] = field(default_factory=list)
    subscriptions: set[str] = field(default_factory=set)

    async def send(self, body: Any) -> None:
        await self.ws.send(encode_to_client(ToClient(body), self.encoding))

    async def recv(self) -> Any:
        message = decode_to_server(await self.ws.recv(), self.encoding)
        self.received.append(message.body)
        return message.body


Script = Callable[["FakeConnectServer", FakeSocket], Awaitable[None]]


class FakeConnectServer:
    """A WebSocket server answering ``/gateway/.../connect`` like a counter actor.

    ``sockets`` lists every accepted socket; ``script`` (default :meth:`counter_script`) runs
    each one. ``actor_id`` is what ``Init`` names.
    """

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or FakeConnectServer.counter_script
        self.sockets: list[FakeSocket] = []
        self.count = 0
        self.actor_id = "actor-1"
        self.port = 0
        self._server: Server | None = None
        self.accepted = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FakeConnectServer:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            port,
            subprotocols=None,
            select_subprotocol=lambda conn, offered: "rivet" if "rivet" in offered else None,
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeConnectServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        header = request.headers.get("Sec-WebSocket-Protocol", "")
        offered = [p.strip() for p in header.split(",") if p.strip()]
        encoding = "json"
        params = None
        for proto in offered:
            if proto.startswith("rivet_encoding."):
                encoding = proto[len("rivet_encoding.") :]
            elif proto.startswith("rivet_conn_params."):
                params = json.loads(unquote(proto[len("rivet_conn_params.") :]))
        sock = FakeSocket(ws, request.path, offered, encoding, params)
        self.sockets.append(sock)
        self.accepted.set()
        with contextlib.suppress(ConnectionClosed):
            await self.script(self, sock)

    async def broadcast(self, name: str, args: list[Any]) -> None:
        for sock in self.sockets:
            if name in sock.subscriptions and sock.ws.state.name == "OPEN":
                with contextlib.suppress(ConnectionClosed):
                    await sock.send(Event(name=name, args=args))

    async def counter_script(self, sock: FakeSocket) -> None:
        """Init, then a counter: ``increment(n)``, ``getCount()``, ``fail(msg)``, ``slow()``."""
        await sock.send(Init(actor_id=self.actor_id, connection_id=f"conn-{len(self.sockets)}"))
        await self.serve_actions(sock)

    async def serve_actions(self, sock: FakeSocket) -> None:
        while True:
            body = await sock.recv()
            if isinstance(body, SubscriptionRequest):
                if body.subscribe:
                    sock.subscriptions.add(body.event_name)
                else:
                    sock.subscriptions.discard(body.event_name)
            elif isinstance(body, ActionRequest):
                task = asyncio.ensure_future(self._action(sock, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _action(self, sock: FakeSocket, request: ActionRequest) -> None:
        try:
            if request.name == "increment":
                amount = request.args[0] if request.args else 1
                self.count += amount
                await self.broadcast("newCount", [self.count])
                await sock.send(ActionResponse(id=request.id, output=self.count))
            elif request.name == "getCount":
                await sock.send(ActionResponse(id=request.id, output=self.count))
            elif request.name == "echo":
                await sock.send(ActionResponse(id=request.id, output=request.args))
            elif request.name == "fail":
                await sock.send(
                    Error("user", "boom", str(request.args[0]), {"why": "test"}, request.id, None)
                )
            elif request.name == "slow":
                await asyncio.sleep(float(request.args[0]) if request.args else 0.2)
                await sock.send(ActionResponse(id=request.id, output="slow"))
            elif request.name == "conn_error":
                await sock.send(Error("actor", "kaput", "connection-level", None, None, None))
            elif request.name == "hang":
                pass
            else:
                await sock.send(
                    Error("actor", "action_not_found", "no such action", None, request.id, None)
                )
        except ConnectionClosed:
            pass


@dataclass
class Recorded:
    """A request seen by :class:`RecordingTransport`."""

    method: str
    url: str
    target: str  # path and query, as on the request line
    headers: httpx.Headers
    body: bytes


class RecordingTransport(httpx.MockTransport):
    """``httpx.MockTransport`` that records requests; ``respond(request)`` answers."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[Recorded] = []

        def handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(
                Recorded(
                    request.method,
                    str(request.url),
                    request.url.raw_path.decode("ascii"),
                    request.headers,
                    request.content,
                )
            )
            return respond(request)

        super().__init__(handler)

    def lines(self) -> list[str]:
        """``METHOD /path?query`` of each request."""
        return [f"{r.method} {r.target}" for r in self.requests]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )


def counter_server(
    state: dict[str, Any] | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    """Answers /metadata, /actors and counter actions in the request's encoding."""
    state = state if state is not None else {"count": 0}

    def respond(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/metadata":
            return json_response(200, {"runtime": "rivetkit", "version": "test"})
        if path.startswith("/gateway/") and "/action/" in path:
            encoding = request.headers.get("x-rivet-encoding", "json")
            name = path.rsplit("/", 1)[1]
            args = http_action_request_from(request.content, encoding)
            if name == "increment":
                state["count"] += args[0] if args else 1
                output: Any = state["count"]
            elif name == "echo":
                output = args
            elif name == "fail":
                return json_response(
                    400,
                    {
                        "group": "user",
                        "code": "negative_amount",
                        "message": "no",
                        "metadata": {"a": 1},
                    },
                )
            else:
                return json_response(
                    404, {"group": "actor", "code": "action_not_found", "message": name}
                )
            return httpx.Response(
                200,
                content=http_action_response_to(output, encoding),
                headers={
                    "content-type": "application/json"
                    if encoding == "json"
                    else "application/octet-stream"
                },
            )
        return json_response(404, {"group": "test", "code": "unrouted", "message": path})

    return respond
