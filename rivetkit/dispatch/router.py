"""The actor-level routes, once for every transport (runtime spec §1, client protocol §1c, §2).

:class:`Dispatcher` answers a plain :class:`~rivetkit.dispatch.http.Request` addressed to one
actor (the part of the URL after ``/gateway/{actor}``) and runs a plain
:class:`~rivetkit.dispatch.websocket.WebSocket`. The ASGI server and the engine tunnel both
resolve the actor first, then call :meth:`Dispatcher.handle_http` or
:meth:`Dispatcher.handle_websocket`; so every route behaves the same on both drivers.

HTTP routes:

============================ ======== ========================================================
path                         method   answer
============================ ======== ========================================================
``/action/{name}``           POST     the action's output (json, cbor or bare, per
                                      ``x-rivet-encoding``), over an ephemeral connection
``/queue/{name}``            POST     a queue send (``{"status", "response"?}``)
``/request``, ``/request/*`` any      the actor's ``on_request`` (path after ``/request``)
``/metadata``                GET      ``{"runtime", "version", "type", ...}``
                                      (:func:`rivetkit.inspector.ui.metadata`)
``/health``                  GET      ``ok``
``/metrics``                 GET      Prometheus text of this actor's name (no auth)
``/inspector/*``             any      the inspector (:mod:`rivetkit.inspector.http`)
``/``                        GET      a line of text
anything else                         ``actor/not_found`` (404); a wrong method on the routes
                                      above is ``actor/method_not_allowed`` (405)
============================ ======== ========================================================

Every response carries ``x-rivet-actor``, ``x-rivet-actor-generation`` and
``x-rivet-actor-key``. Errors are RivetError JSON bodies with ``Content-Type:
application/json`` whatever the request's encoding (the official client reads JSON errors for
every encoding), with the status of :func:`rivetkit.errors.http_status`. Internal errors keep
their group and code but hide the message unless ``RIVET_EXPOSE_ERRORS=1``; their traceback
is logged. Every request counts as activity of the actor while it runs (it cannot fall asleep
mid-request).

WebSockets: ``/connect`` runs the actor-connect protocol (subprotocol ``rivet`` echoed; the
session is :class:`~rivetkit.dispatch.connect.ConnSession`). With ``hibernatable_connections``
(the embedded server) its connection is hibernatable: the socket stays open while the actor
sleeps, and the next message (or the client's close) wakes the actor; through the engine
tunnel, whose sockets carry their own hibernation (``websocket.hibernation``), the engine's
gateway holds the socket instead (see :mod:`rivetkit.drivers.engine.tunnel`). Raw sockets
hibernate when the actor's ``can_hibernate_websocket`` allows it
(:mod:`rivetkit.dispatch.hibernation`). ``/inspector/*`` is the inspector
(:mod:`rivetkit.inspector`: HTTP routes and ``/inspector/connect``, behind the actor's token),
answered before any user handler. Any other path goes to ``on_websocket`` (``/websocket/...``
with the prefix stripped, other paths as they are).

Queues: ``POST /queue/{name}`` decodes and checks the request fully, then sends through the
actor's ``queue`` (an object with ``async send(name, body, *, wait, timeout)`` returning None
or ``{"status", "response"?}``). An actor without one answers ``queue/not_supported`` (400).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import random
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from rivetkit.dispatch import streaming
from rivetkit.dispatch.connect import (
    MAX_CONN_PARAMS_SIZE,
    ConnSession,
    conn_params_bytes,
    encoding_of,
    error_frame,
    log_error,
    outgoing_too_long,
    params_of,
    parse_subprotocols,
    ws_conn_params,
    ws_reason,
)
from rivetkit.dispatch.hibernation import RawSession, can_hibernate_raw
from rivetkit.dispatch.http import OnceHeaders, Request, Response
from rivetkit.dispatch.metadata_route import metadata_response
from rivetkit.dispatch.websocket import RawWebSocket, WebSocket
from rivetkit.errors import EncodeError, ProtocolError, RivetError, http_status, to_public
from rivetkit.protocol.actor_keys import serialize_key
from rivetkit.protocol.client_protocol import ActorSpecifier
from rivetkit.protocol.http_bodies import (
    http_action_request_from,
    http_action_response_to,
    http_error_to,
    http_queue_send_request_from,
    http_queue_send_response_to,
)
from rivetkit.protocol.trees import ENCODINGS
from rivetkit.protocol.value_errors import invalid_output
from rivetkit.runtime.connection import Hibernation, new_hibernation_id
from rivetkit.runtime.instance import Phase
from rivetkit.schemas import conn_params_of
from rivetkit.traces import traced

if TYPE_CHECKING:
    from rivetkit.runtime.connection import Connection
    from rivetkit.runtime.instance import ActorInstance
    from rivetkit.runtime.live_actors import Runtime

__all__ = [
    "MAX_CONN_PARAMS_SIZE",
    "Dispatcher",
    "error_response",
    "parse_subprotocols",
]

_JSON: Final = b"application/json"
_OCTETS: Final = b"application/octet-stream"
_TEXT: Final = b"text/plain; charset=utf-8"
_CONTENT_TYPE: Final = {"json": _JSON, "cbor": _OCTETS, "bare": _OCTETS}
_ROOT_TEXT: Final = b"This is an RivetKit actor.\n\nLearn more at https://rivetkit.org"


# Ids of the ephemeral connections of HTTP requests: never shown to a client (only to the
# action, as c.conn.id), so they need to be unique, not secret: a random prefix per process
# and a serial number, in the UUID-like form of the other connection ids.
_CONN_ID_HEAD = f"{random.Random(os.urandom(32)).getrandbits(80):020x}"
_CONN_ID_PREFIX: Final = (
    f"{_CONN_ID_HEAD[:8]}-{_CONN_ID_HEAD[8:12]}-{_CONN_ID_HEAD[12:16]}-{_CONN_ID_HEAD[16:]}-"
)
_conn_serials = itertools.count(int.from_bytes(os.urandom(6), "big"))


def _metrics_text(runtime: Runtime, actor_name: str) -> tuple[bytes, bytes]:
    """``(content type, body)`` of an actor's ``GET /metrics``: its name's families."""
    if runtime.metrics is None:
        return _TEXT, b"metrics not enabled\n"
    from rivetkit.metrics.exposition import CONTENT_TYPE, render

    return CONTENT_TYPE.encode(), render(runtime.metrics, actor_name)


def _ephemeral_conn_id() -> str:
    return _CONN_ID_PREFIX + "%012x" % (next(_conn_serials) & 0xFFFFFFFFFFFF)


def _not_found(path: str) -> RivetError:
    return RivetError(
        "actor",
        "not_found",
        f"no route {path[:200]!r} on this actor",
        metadata={"resource": "route", "path": path[:200]},
    )


def _method_not_allowed(method: str, path: str) -> RivetError:
    return RivetError(
        "actor",
        "method_not_allowed",
        f"method {method} is not allowed on {path[:200]}",
        metadata={"method": method, "path": path[:200]},
    )


def _unsupported_encoding(encoding: str) -> RivetError:
    return ProtocolError(
        f"unsupported encoding {encoding[:40]!r}; expected json, cbor or bare",
        code="unsupported_encoding",
    )


def _decode_segment(segment: str) -> str:
    """One percent-decoded path segment; strict, as rivetkit-core is."""
    if "%" not in segment:
        return segment
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise ProtocolError(
            "path segment is not valid UTF-8", code="invalid_http_request"
        ) from None


def _single_segment(path: str, prefix_len: int) -> str | None:
    segment = path[prefix_len:]
    if not segment or "/" in segment:
        return None
    return segment


def _actor_specifier(instance: ActorInstance) -> ActorSpecifier:
    return ActorSpecifier(instance.actor_id, instance.generation, serialize_key(instance.key))


def error_response(
    error: BaseException,
    *,
    instance: ActorInstance | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    """The JSON RivetError response for ``error`` (its public form, with its status)."""
    public = to_public(error)
    actor = _actor_specifier(instance) if instance is not None else None
    try:
        body = http_error_to(
            public.group, public.code, public.message, public.metadata, "json", actor=actor
        )
    except Exception:  # metadata that cannot be encoded: drop it
        body = http_error_to(public.group, public.code, public.message, None, "json", actor=actor)
    raw = [(b"content-type", _JSON)]
    if headers:
        raw.extend(headers)
    return Response._raw(http_status(public.group, public.code), raw, body)


def _action_headers(raw: list[tuple[bytes, bytes]]) -> tuple[str, bytes | None]:
    """The encoding (default json) and the raw conn params of a request, in one pass."""
    encoding: str | None = None
    params: bytes | None = None
    for name, value in raw:
        if name == b"x-rivet-encoding":
            if encoding is None:
                encoding = value.decode("latin-1")
        elif name == b"x-rivet-conn-params" and params is None:
            params = value
    return encoding or "json", params


def _made(instance: ActorInstance) -> list[tuple[bytes, bytes]]:
    """The ``x-rivet-actor*`` headers of a response from ``instance``, made anew."""
    key = serialize_key(instance.key)
    if not (key.isascii() and key.isprintable()):
        key = quote(key, safe="/\\")
    return [
        (b"x-rivet-actor", instance.actor_id.encode("latin-1", "replace")),
        (b"x-rivet-actor-generation", str(instance.generation).encode()),
        (b"x-rivet-actor-key", key.encode()),
    ]


class Dispatcher:
    """The actor-level routes of one :class:`~rivetkit.runtime.live_actors.Runtime`."""

    def __init__(self, runtime: Runtime, *, hibernatable_connections: bool = False) -> None:
        self.runtime = runtime
        # actor_id -> (generation, the x-rivet-actor* response headers)
        self._actor_headers: dict[str, tuple[int, list[tuple[bytes, bytes]]]] = {}
        # actor_id -> the generation of its first success (its headers made, not kept: most
        # actors answer once before they sleep), then from the second on (generation,
        # {encoding: its success header list})
        self._success_headers: dict[str, int | tuple[int, dict[str, list[tuple[bytes, bytes]]]]]
        self._success_headers = {}
        # With hibernatable_connections (the embedded server, which holds the client sockets
        # itself), /connect sockets survive their actor's sleep: this process is their
        # "gateway" (a random id), each socket a request id, and a restored connection finds
        # its socket through them (conn_alive). Without it, the engine tunnel decides (its
        # gateway keeps hibernatable sockets). Open connections keep the actor awake either
        # way (RivetKit's sleep rule); only c.sleep() hibernates them.
        self.hibernatable_connections = hibernatable_connections
        self.gateway_id = new_hibernation_id()
        # request id -> the session holding the socket (ConnSession, or RawSession)
        self._sessions: dict[bytes, Any] = {}
        if hibernatable_connections:
            runtime.conn_alive = self.conn_alive
        listeners = getattr(runtime, "stop_listeners", None)  # None: a host of tests
        if listeners is not None:
            listeners.append(self._actor_stopped)

    def response_headers_of(self, actor_id: str) -> list[list[tuple[bytes, bytes]]]:
        """The response header lists cached for ``actor_id`` (a transport that caches
        what it made of them drops that when the actor stops)."""
        cached = self._success_headers.get(actor_id)
        return list(cached[1].values()) if isinstance(cached, tuple) else []

    def _actor_stopped(self, actor_id: str) -> None:
        self._actor_headers.pop(actor_id, None)
        self._success_headers.pop(actor_id, None)

    def conn_alive(self, conn: Connection) -> bool:
        """The runtime's liveness check of a restored hibernatable connection: True when its
        socket is still open here, and then that socket becomes its transport again."""
        info = conn.hibernation
        if info is None or info.gateway_id != self.gateway_id:
            return False
        session = self._sessions.get(info.request_id)
        if session is None or session.conn is None or session.conn.id != conn.id:
            return False
        session.attach(conn)
        return True

    def _new_request_id(self) -> bytes:
        while True:
            request_id = new_hibernation_id()
            if request_id not in self._sessions:
                return request_id

    # -- helpers ---------------------------------------------------------------------------

    async def _instance(self, actor_id: str) -> ActorInstance:
        runtime = self.runtime
        instance = runtime.instances.get(actor_id)
        if instance is not None and instance.phase == Phase.STARTED:
            return instance
        return await runtime.instance(actor_id)

    def success_headers(self, instance: ActorInstance, encoding: str) -> list[tuple[bytes, bytes]]:
        """The headers of a successful action or queue response (shared: do not mutate):
        for an actor's first success a :class:`~rivetkit.dispatch.http.OnceHeaders` made
        for it alone, from its second on a list kept per encoding."""
        success = self._success_headers
        generation = instance.generation
        cached: Any = success.get(instance.actor_id)
        if cached.__class__ is tuple and cached[0] == generation:
            headers: list[tuple[bytes, bytes]] | None = cached[1].get(encoding)
            if headers is None:
                headers = [(b"content-type", _CONTENT_TYPE[encoding]), *self.headers_of(instance)]
                cached[1][encoding] = headers
            return headers
        if cached != generation:  # its first success (of this generation)
            if len(success) >= 10_000:
                success.clear()
            success[instance.actor_id] = generation
            return OnceHeaders([(b"content-type", _CONTENT_TYPE[encoding]), *_made(instance)])
        headers = [(b"content-type", _CONTENT_TYPE[encoding]), *self.headers_of(instance)]
        success[instance.actor_id] = (generation, {encoding: headers})
        return headers

    def headers_of(self, instance: ActorInstance) -> list[tuple[bytes, bytes]]:
        """The ``x-rivet-actor*`` headers of a response from ``instance`` (shared: do not
        mutate)."""
        cached = self._actor_headers.get(instance.actor_id)
        if cached is not None and cached[0] == instance.generation:
            return cached[1]
        headers = _made(instance)
        if len(self._actor_headers) >= 10_000:
            self._actor_headers.clear()
        self._actor_headers[instance.actor_id] = (instance.generation, headers)
        return headers

    def _error(
        self, error: BaseException, instance: ActorInstance | None, what: str, *, traced: bool
    ) -> Response:
        log_error(error, instance, what, traced=traced)
        headers = self.headers_of(instance) if instance is not None else None
        return error_response(error, instance=instance, headers=headers)

    # -- HTTP ------------------------------------------------------------------------------

    async def handle_http(self, actor_id: str, request: Request) -> Response:
        """Answer ``request`` (path relative to the actor) for the actor ``actor_id``."""
        path = request.raw_path
        method = request.method
        try:
            if path.startswith("/action/"):
                segment = _single_segment(path, 8)
                if segment is None:
                    raise _not_found(path)
                if method != "POST":
                    raise _method_not_allowed(method, path)
                return await self._action(actor_id, request, _decode_segment(segment))
            if path == "/request" or path.startswith("/request/"):
                return await self._raw_request(actor_id, request, path[8:] or "/")
            if path.startswith("/queue/"):
                segment = _single_segment(path, 7)
                if segment is None:
                    raise _not_found(path)
                if method != "POST":
                    raise _method_not_allowed(method, path)
                return await self._queue(actor_id, request, _decode_segment(segment))
            if path in ("/metadata", "/health", "/metrics", "/"):
                if method != "GET":
                    raise _method_not_allowed(method, path)
                return await self._framework_get(actor_id, path)
            if path == "/inspector" or path.startswith("/inspector/"):
                from rivetkit.inspector.http import handle_http as inspector_http

                return await inspector_http(self, actor_id, request)
            raise _not_found(path)
        except Exception as exc:
            return self._error(exc, None, f"{method} {path[:200]}", traced=False)

    async def _framework_get(self, actor_id: str, path: str) -> Response:
        if path == "/metadata":  # how it counts toward sleep: see metadata_route
            return await metadata_response(self, actor_id)
        instance = await self._instance(actor_id)
        if path == "/health":
            content_type, data = _TEXT, b"ok"
        elif path == "/metrics":
            content_type, data = _metrics_text(self.runtime, instance.name)
        else:
            content_type, data = _TEXT, _ROOT_TEXT
        return Response._raw(
            200, [(b"content-type", content_type), *self.headers_of(instance)], data
        )

    async def _action(self, actor_id: str, request: Request, name: str) -> Response:
        # rivetkit/server/_action_fast_py.py repeats these steps (its twin too): change both.
        encoding, raw_params = _action_headers(request.headers.raw)
        if encoding not in ENCODINGS:
            raise _unsupported_encoding(encoding)
        instance = self.runtime.instances.get(actor_id)
        if instance is None or instance.phase != Phase.STARTED:
            instance = await self._instance(actor_id)
        traced = False
        instance.begin_request()
        try:
            options = instance.options
            body = await request.read(options.max_incoming_message_size)
            args = http_action_request_from(body, encoding)
            params = None if raw_params is None else conn_params_bytes(raw_params)
            params = conn_params_of(instance.definition, params)
            conn_id = _ephemeral_conn_id()  # without connection hooks: no coroutine
            conn = instance.connections.open_plain(params, conn_id)
            if conn is None:
                conn = await instance.connect(params, conn_id=conn_id)
            try:
                traced = True  # the runtime logs the failures of actions
                output = await instance.invoke(name, args, conn)
                traced = False
            finally:
                try:
                    if not instance.connections.close_plain(conn):
                        await instance.disconnect(conn, None)
                except Exception:
                    instance.log.exception("closing the connection of an HTTP request failed")
            try:
                payload = http_action_response_to(output, encoding)
            except EncodeError as exc:
                raise invalid_output(name, output, encoding, exc) from exc
            if len(payload) > options.max_outgoing_message_size:
                raise outgoing_too_long(options.max_outgoing_message_size)
        except Exception as exc:
            return self._error(exc, instance, f"action {name!r}", traced=traced)
        finally:
            instance.end_request()
        return Response._raw(200, self.success_headers(instance, encoding), payload)

    async def _disconnect_quietly(self, instance: ActorInstance, conn: Connection) -> None:
        try:
            await instance.disconnect(conn, None)
        except Exception:
            instance.log.exception("closing the connection of an HTTP request failed")

    async def _queue(self, actor_id: str, request: Request, name: str) -> Response:
        encoding, raw_params = _action_headers(request.headers.raw)
        if encoding not in ENCODINGS:
            raise _unsupported_encoding(encoding)
        instance = await self._instance(actor_id)
        instance.begin_request()
        try:
            options = instance.options
            body = await request.read(options.max_incoming_message_size)
            send = http_queue_send_request_from(body, encoding)
            params = None if raw_params is None else conn_params_bytes(raw_params)
            queue = getattr(instance, "queue", None)
            sender = getattr(queue, "send", None)
            if sender is None:
                raise RivetError(
                    "queue",
                    "not_supported",
                    "this actor has no queue (queues are not available in this version of "
                    "rivetkit for Python)",
                    metadata={"name": name},
                )
            schemas = instance.definition.schemas
            params = conn_params_of(instance.definition, params)
            conn = await instance.connect(params, conn_id=_ephemeral_conn_id())
            try:
                if schemas is not None:  # declared queues, can_publish (rivetkit/schemas.py)
                    await schemas.gate_send(instance.context.with_conn(conn), name, send.body)
                timeout = None if send.timeout is None else send.timeout / 1000
                sending = sender(name, send.body, wait=bool(send.wait), timeout=timeout)
                gone = request._disconnected if send.wait else None
                if gone is None:
                    result = await sending
                else:
                    # A wait for completion may be long: it ends when the client leaves
                    # (the message stays queued, as when RivetKit drops a waiter).
                    task = asyncio.ensure_future(sending)
                    watcher = asyncio.ensure_future(gone())
                    try:
                        done, _ = await asyncio.wait(
                            (task, watcher), return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        watcher.cancel()
                        task.cancel()
                        await asyncio.wait((task, watcher))
                        for ended in (task, watcher):
                            if not ended.cancelled():
                                ended.exception()  # retrieved; the task's is raised below
                    if task not in done:
                        instance.log.debug(
                            "queue send %r: the client left before the message was completed",
                            name,
                        )
                        return error_response(
                            RivetError(
                                "actor",
                                "aborted",
                                "the client closed the request before the message was completed",
                            ),
                            instance=instance,
                        )
                    result = task.result()
            finally:
                await self._disconnect_quietly(instance, conn)
            if result is None:
                status, response = "completed", None
            else:
                status, response = result["status"], result.get("response")
            try:
                payload = http_queue_send_response_to(status, response, encoding)
            except EncodeError as exc:
                raise RivetError(
                    "queue",
                    "invalid_completion_payload",
                    f"the completion response cannot be encoded: {exc}",
                ) from exc
            if len(payload) > options.max_outgoing_message_size:
                raise outgoing_too_long(options.max_outgoing_message_size)
        except Exception as exc:
            return self._error(exc, instance, f"queue send {name!r}", traced=False)
        finally:
            instance.end_request()
        return Response._raw(200, self.success_headers(instance, encoding), payload)

    async def _raw_request(self, actor_id: str, request: Request, path: str) -> Response:
        instance = await self._instance(actor_id)
        hook = instance.definition.hooks.on_request
        if hook is None:
            raise RivetError(
                "handler",
                "request_not_defined",
                f"actor {instance.name!r} has no on_request handler for raw HTTP requests",
            )
        instance.begin_request()
        end = instance.end_request
        try:
            with traced(instance.traces, "hook", "on_request"):
                result = hook.fn(instance.context, request.with_path(path))
                if inspect.isawaitable(result):
                    timeout = instance.options.action_timeout
                    try:
                        result = await asyncio.wait_for(result, timeout)
                    except asyncio.TimeoutError:
                        raise RivetError(
                            "actor",
                            "action_timed_out",
                            f"on_request did not answer within {timeout:g} s",
                            metadata={"timeout_ms": int(timeout * 1000)},
                        ) from None
            if not isinstance(result, Response):
                raise TypeError(
                    f"on_request must return a rivetkit.Response, got {type(result).__name__}"
                )
            stream = None if result.stream is None else streaming.hold(result, end)
            if stream is not None:  # the request ends with its stream (dispatch/streaming.py)
                end = streaming.no_end
        except Exception as exc:
            return self._error(exc, instance, "on_request", traced=False)
        finally:
            end()
        headers = list(result.headers.raw)
        headers.extend(self.headers_of(instance))
        return Response._raw(result.status, headers, result.body, stream)

    # -- WebSocket -------------------------------------------------------------------------

    async def handle_websocket(self, actor_id: str, request: Request, websocket: WebSocket) -> None:
        """Run ``websocket`` (upgrade ``request``, path relative to the actor) to its end."""
        path = request.raw_path
        if path == "/inspector" or path.startswith("/inspector/"):
            # The inspector (never the user's handler); it picks its own subprotocol.
            from rivetkit.inspector.ws import handle_websocket as inspector_websocket

            await inspector_websocket(self, actor_id, request, websocket)
            return
        offered = parse_subprotocols(request.headers)
        await websocket.accept("rivet" if "rivet" in offered else None)
        if path == "/connect":
            await self._connect(actor_id, offered, websocket, request)
        else:
            if path == "/websocket" or path.startswith("/websocket/"):
                path = path[10:] or "/"
            await self._raw_websocket(actor_id, request.with_path(path), websocket, request)

    async def reject_websocket(
        self, request: Request, websocket: WebSocket, error: BaseException
    ) -> None:
        """Accept ``websocket`` only to report ``error`` (e.g. an actor that was not found).

        On ``/connect`` the client gets an ``Error`` (``actionId`` null) in its encoding, then
        a close with reason ``group.code``; elsewhere only the close.
        """
        log_error(error, None, f"WebSocket {request.raw_path[:200]}")
        offered = parse_subprotocols(request.headers)
        await websocket.accept("rivet" if "rivet" in offered else None)
        if request.raw_path == "/connect":
            encoding = encoding_of(offered)
            if encoding not in ENCODINGS:
                await websocket.close(1003, "actor.unsupported_websocket_encoding")
                return
            await websocket.send(error_frame(error, None, encoding))
        await websocket.close(1011, ws_reason(error))

    async def _connect(
        self, actor_id: str, offered: list[str], websocket: WebSocket, request: Request
    ) -> None:
        encoding = encoding_of(offered)
        if encoding not in ENCODINGS:
            await websocket.close(1003, "actor.unsupported_websocket_encoding")
            return
        instance: ActorInstance | None = None
        try:
            params = ws_conn_params(params_of(offered))
            instance = await self._instance(actor_id)
        except Exception as exc:
            log_error(exc, instance, "WebSocket connect")
            await websocket.send(error_frame(exc, None, encoding))
            await websocket.close(1011, ws_reason(exc))
            return
        session = ConnSession(instance, websocket, encoding)
        hibernation = self.hibernation_for(websocket, "/connect", request)
        if hibernation is not None:  # the socket stays open while the actor sleeps
            session.hibernate_with(self, actor_id, hibernation)
        await session.run(params)

    def hibernation_for(
        self, websocket: WebSocket, path: str, request: Request
    ) -> Hibernation | None:
        """The :class:`Hibernation` of a socket that may hibernate (``path``: the actor path
        stored in its record), or None. A transport whose gateway names its sockets (the
        engine tunnel) makes it (``websocket.hibernation``); this process is the gateway
        otherwise (with ``hibernatable_connections``)."""
        headers: dict[str, str] = {}
        for name, value in request.headers.raw:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        own = getattr(websocket, "hibernation", None)
        if own is not None:
            made: Hibernation | None = own(path, headers)
            return made
        if not self.hibernatable_connections:
            return None
        return Hibernation(
            self.gateway_id, self._new_request_id(), request_path=path, request_headers=headers
        )

    async def _raw_websocket(
        self, actor_id: str, request: Request, websocket: WebSocket, upgrade: Request
    ) -> None:
        try:
            instance = await self._instance(actor_id)
        except Exception as exc:
            log_error(exc, None, "raw WebSocket")
            await websocket.close(1011, ws_reason(exc))
            return
        hook = instance.definition.hooks.on_websocket
        if hook is None:
            await websocket.close(1011, "handler.websocket_not_defined")
            return
        if can_hibernate_raw(instance.options, request):
            query = upgrade.query_string
            actor_path = f"{upgrade.raw_path}?{query}" if query else upgrade.raw_path
            hibernation = self.hibernation_for(websocket, actor_path, upgrade)
            if hibernation is not None:  # the socket survives the actor's sleep
                try:
                    params = ws_conn_params(params_of(parse_subprotocols(request.headers)))
                except Exception as exc:
                    log_error(exc, instance, "raw WebSocket")
                    await websocket.close(1011, ws_reason(exc))
                    return
                session = RawSession(self, actor_id, websocket, request)
                await session.run(instance, params, hibernation)
                return
        if instance.definition.schemas is not None:  # declared conn_params (schemas.py)
            try:
                conn_params_of(
                    instance.definition,
                    ws_conn_params(params_of(parse_subprotocols(request.headers))),
                )
            except Exception as exc:
                log_error(exc, instance, "raw WebSocket")
                await websocket.close(1011, ws_reason(exc))
                return
        raw = RawWebSocket(websocket, request)
        instance.begin_request()

        async def close_on_abort() -> None:
            await instance.abort_event.wait()
            await raw.close(1001, "actor.stopping")

        watcher = asyncio.ensure_future(close_on_abort())
        try:
            with traced(instance.traces, "hook", "on_websocket"):
                result = hook.fn(instance.context, raw)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            log_error(exc, instance, "on_websocket")
            await raw.close(1011, ws_reason(exc))
        else:
            await raw.close(1000, "")
        finally:
            watcher.cancel()
            instance.end_request()
