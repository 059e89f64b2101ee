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
``/metadata``                GET      ``{"runtime": "rivetkit", "version", "type"}``
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

WebSockets: ``/connect`` runs the actor-connect protocol (subprotocol ``rivet`` echoed;
encoding from ``rivet_encoding.*``, default json; params from ``rivet_conn_params.*``; ``Init``
first; actions answered by id, concurrently; subscriptions through the event's
``can_subscribe`` gate, a refusal closing the socket with ``auth.forbidden``; events). With
``hibernatable_connections`` (the embedded server) its connection is hibernatable: the socket
stays open while the actor sleeps, and the next message (or the client's close) wakes the
actor, whose restored connection takes the socket back before handling it; through the
engine tunnel, whose sockets carry their own hibernation (``websocket.hibernation``), the
engine's gateway holds the socket instead (see :mod:`rivetkit.drivers.engine.tunnel`).
Raw sockets hibernate when the actor's ``can_hibernate_websocket`` allows it
(:mod:`rivetkit.dispatch.hibernation`). ``/inspector/*``
is the inspector (:mod:`rivetkit.inspector`: HTTP routes and ``/inspector/connect``, behind
the actor's token), answered before any user handler. Any other path goes to
``on_websocket`` (``/websocket/...`` with the prefix stripped, other paths as they are).

Queues: ``POST /queue/{name}`` decodes and checks the request fully, then sends through the
actor's ``queue`` (an object with ``async send(name, body, *, wait, timeout)`` returning None
or ``{"status", "response"?}``). An actor without one answers ``queue/not_supported`` (400).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import itertools
import json
import logging
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from rivetkit._version import __version__
from rivetkit.dispatch.hibernation import RawSession, can_hibernate_raw, close_left_conn
from rivetkit.dispatch.http import Headers, Request, Response
from rivetkit.dispatch.websocket import RawWebSocket, WebSocket
from rivetkit.drivers.keys import serialize_key
from rivetkit.errors import EncodeError, ProtocolError, RivetError, http_status, to_public
from rivetkit.metrics.server import SERVER_COUNTERS
from rivetkit.protocol.client_protocol import (
    ActionRequest,
    ActorSpecifier,
    Error,
    Event,
    Init,
    SubscriptionRequest,
    ToClient,
)
from rivetkit.protocol.json_compat import (
    ENCODINGS,
    action_request_from,
    decode_to_server,
    encode_action_response,
    encode_to_client,
    http_action_request_from,
    http_action_response_to,
    http_error_to,
    http_queue_send_request_from,
    http_queue_send_response_to,
)
from rivetkit.runtime.connection import Hibernation, new_hibernation_id
from rivetkit.runtime.instance import Phase

if TYPE_CHECKING:
    from rivetkit.runtime.connection import Connection
    from rivetkit.runtime.host import Runtime
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "MAX_CONN_PARAMS_SIZE",
    "Dispatcher",
    "error_response",
    "parse_subprotocols",
]

logger = logging.getLogger("rivetkit.dispatch")

#: Largest connection params (JSON text), as in RivetKit.
MAX_CONN_PARAMS_SIZE: Final = 4096
#: Frames queued for one connection before it is dropped as too slow.
MAX_PENDING_FRAMES: Final = 65536
#: Bytes queued for one connection (frames its socket could not take at once) before it is
#: dropped as too slow: the embedded server's own sockets bound their buffer themselves
#: (``--ws-max-buffer``), this bounds the others (uvicorn's protocol, the engine tunnel).
MAX_PENDING_BYTES: Final = 16 * 1024 * 1024

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
    return f"{_CONN_ID_PREFIX}{next(_conn_serials) & 0xFFFFFFFFFFFF:012x}"


def _invalid_request(message: str, metadata: Any = None) -> RivetError:
    return RivetError("actor", "invalid_request", message, metadata=metadata)


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


def _outgoing_too_long(limit: int) -> RivetError:
    return RivetError(
        "message",
        "outgoing_too_long",
        f"Outgoing message too long (the limit is {limit} bytes)",
        metadata={"limit": limit},
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


def _log_error(
    error: BaseException, instance: ActorInstance | None, what: str, *, traced: bool = False
) -> None:
    """Log an error on its way to a client: internal RivetErrors as a warning line, other
    exceptions with their traceback (unless ``traced``: the runtime logged it already)."""
    log: Any = instance.log if instance is not None else logger
    if isinstance(error, RivetError):
        if to_public(error) is not error:
            log.warning("%s failed: %s", what, error)
        return
    if not traced:
        log.error("%s failed", what, exc_info=error)


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


def parse_subprotocols(headers: Headers) -> list[str]:
    """The subprotocols a WebSocket client offered (``Sec-WebSocket-Protocol``), in order."""
    offered: list[str] = []
    for value in headers.get_all("sec-websocket-protocol"):
        for item in value.split(","):
            item = item.strip()
            if item:
                offered.append(item)
    return offered


def _params_from_json(text: str, where: str, size: int | None = None) -> Any:
    """Decode the JSON ``text`` of connection params; the 4 KiB limit is on its bytes
    (``size``, or its UTF-8 length: a character may take up to 4 bytes)."""
    if size is None and len(text) * 4 > MAX_CONN_PARAMS_SIZE:
        size = (
            len(text)
            if len(text) > MAX_CONN_PARAMS_SIZE
            else len(text.encode("utf-8", "surrogatepass"))
        )
    if size is not None and size > MAX_CONN_PARAMS_SIZE:
        raise _invalid_request(
            f"connection params exceed {MAX_CONN_PARAMS_SIZE} bytes",
            metadata={"limit": MAX_CONN_PARAMS_SIZE},
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid_request(f"connection params in {where} are not valid JSON") from None


def _http_conn_params(headers: Headers) -> Any:
    raw = headers.get("x-rivet-conn-params")
    if raw is None:
        return None
    return _conn_params_bytes(raw.encode("latin-1"))


def _conn_params_bytes(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return _params_from_json(text, "x-rivet-conn-params", len(data))


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


def _ws_conn_params(encoded: str | None) -> Any:
    if encoded is None:
        return None
    if len(encoded) > MAX_CONN_PARAMS_SIZE * 9:  # the longest percent-encoding of 4 KiB
        raise _invalid_request(f"connection params exceed {MAX_CONN_PARAMS_SIZE} bytes")
    try:
        text = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise _invalid_request("connection params are not valid UTF-8") from None
    return _params_from_json(text, "the rivet_conn_params subprotocol")


def _ws_reason(error: RivetError) -> str:
    reason = f"{error.group}.{error.code}"
    return reason if len(reason.encode()) <= 123 else "actor.internal_error"


def _error_frame(error: BaseException, action_id: int | None, encoding: str) -> str | bytes:
    public = to_public(error)
    message = ToClient(
        Error(public.group, public.code, public.message, public.metadata, action_id, None)
    )
    try:
        return encode_to_client(message, encoding)
    except Exception:
        message = ToClient(Error(public.group, public.code, public.message, None, action_id, None))
        return encode_to_client(message, encoding)


class Dispatcher:
    """The actor-level routes of one :class:`~rivetkit.runtime.host.Runtime`."""

    def __init__(self, runtime: Runtime, *, hibernatable_connections: bool = False) -> None:
        self.runtime = runtime
        # actor_id -> (generation, the x-rivet-actor* response headers)
        self._actor_headers: dict[str, tuple[int, list[tuple[bytes, bytes]]]] = {}
        self._success_headers: dict[str, tuple[int, dict[str, list[tuple[bytes, bytes]]]]] = {}
        # With hibernatable_connections (the embedded server, which holds the client sockets
        # itself), /connect sockets survive their actor's sleep: this process is their
        # "gateway" (a random id), each socket a request id, and a restored connection finds
        # its socket through them (conn_alive). Without it (the engine tunnel, whose gateway
        # closes the sockets of a stopping actor), connections keep their actor awake.
        self.hibernatable_connections = hibernatable_connections
        self.gateway_id = new_hibernation_id()
        # request id -> the session holding the socket (_ConnSession, or RawSession)
        self._sessions: dict[bytes, Any] = {}
        if hibernatable_connections:
            runtime.conn_alive = self.conn_alive

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
        """The headers of a successful action or queue response (shared: do not mutate)."""
        cached = self._success_headers.get(instance.actor_id)
        if cached is not None and cached[0] == instance.generation:
            return cached[1][encoding]
        actor_headers = self.headers_of(instance)
        by_encoding = {
            name: [(b"content-type", content_type), *actor_headers]
            for name, content_type in _CONTENT_TYPE.items()
        }
        if len(self._success_headers) >= 10_000:
            self._success_headers.clear()
        self._success_headers[instance.actor_id] = (instance.generation, by_encoding)
        return by_encoding[encoding]

    def headers_of(self, instance: ActorInstance) -> list[tuple[bytes, bytes]]:
        """The ``x-rivet-actor*`` headers of a response from ``instance``."""
        cached = self._actor_headers.get(instance.actor_id)
        if cached is not None and cached[0] == instance.generation:
            return cached[1]
        key = serialize_key(instance.key)
        if not (key.isascii() and key.isprintable()):
            key = quote(key, safe="/\\")
        headers = [
            (b"x-rivet-actor", instance.actor_id.encode("latin-1", "replace")),
            (b"x-rivet-actor-generation", str(instance.generation).encode()),
            (b"x-rivet-actor-key", key.encode()),
        ]
        if len(self._actor_headers) >= 10_000:
            self._actor_headers.clear()
        self._actor_headers[instance.actor_id] = (instance.generation, headers)
        return headers

    def _error(
        self, error: BaseException, instance: ActorInstance | None, what: str, *, traced: bool
    ) -> Response:
        _log_error(error, instance, what, traced=traced)
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
        instance = await self._instance(actor_id)
        if path == "/metadata":
            deployed = os.environ.get("NODE_ENV") == "production"
            kind = "deployed" if deployed else "local"
            body = json.dumps({"runtime": "rivetkit", "version": __version__, "type": kind})
            content_type, data = _JSON, body.encode()
        elif path == "/health":
            content_type, data = _TEXT, b"ok"
        elif path == "/metrics":
            content_type, data = _metrics_text(self.runtime, instance.name)
        else:
            content_type, data = _TEXT, _ROOT_TEXT
        return Response._raw(
            200, [(b"content-type", content_type), *self.headers_of(instance)], data
        )

    async def _action(self, actor_id: str, request: Request, name: str) -> Response:
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
            params = None if raw_params is None else _conn_params_bytes(raw_params)
            conn = await instance.connect(params, conn_id=_ephemeral_conn_id())
            try:
                traced = True  # the runtime logs the failures of actions
                output = await instance.invoke(name, args, conn)
                traced = False
            finally:
                try:
                    await instance.disconnect(conn, None)
                except Exception:
                    instance.log.exception("closing the connection of an HTTP request failed")
            try:
                payload = http_action_response_to(output, encoding)
            except EncodeError as exc:
                raise RivetError(
                    "actor",
                    "invalid_output",
                    f"the output of action {name!r} cannot be encoded: {exc}",
                ) from exc
            if len(payload) > options.max_outgoing_message_size:
                raise _outgoing_too_long(options.max_outgoing_message_size)
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
            params = None if raw_params is None else _conn_params_bytes(raw_params)
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
            conn = await instance.connect(params, conn_id=_ephemeral_conn_id())
            try:
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
                raise _outgoing_too_long(options.max_outgoing_message_size)
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
        try:
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
        except Exception as exc:
            return self._error(exc, instance, "on_request", traced=False)
        finally:
            instance.end_request()
        headers = list(result.headers.raw)
        headers.extend(self.headers_of(instance))
        return Response._raw(result.status, headers, result.body)

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
        _log_error(error, None, f"WebSocket {request.raw_path[:200]}")
        offered = parse_subprotocols(request.headers)
        await websocket.accept("rivet" if "rivet" in offered else None)
        public = to_public(error)
        if request.raw_path == "/connect":
            encoding = _encoding_of(offered)
            if encoding not in ENCODINGS:
                await websocket.close(1003, "actor.unsupported_websocket_encoding")
                return
            await websocket.send(_error_frame(error, None, encoding))
        await websocket.close(1011, _ws_reason(public))

    async def _connect(
        self, actor_id: str, offered: list[str], websocket: WebSocket, request: Request
    ) -> None:
        encoding = _encoding_of(offered)
        if encoding not in ENCODINGS:
            await websocket.close(1003, "actor.unsupported_websocket_encoding")
            return
        instance: ActorInstance | None = None
        try:
            params = _ws_conn_params(_params_of(offered))
            instance = await self._instance(actor_id)
        except Exception as exc:
            _log_error(exc, instance, "WebSocket connect")
            await websocket.send(_error_frame(exc, None, encoding))
            await websocket.close(1011, _ws_reason(to_public(exc)))
            return
        session = _ConnSession(instance, websocket, encoding)
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
            _log_error(exc, None, "raw WebSocket")
            await websocket.close(1011, _ws_reason(to_public(exc)))
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
                    params = _ws_conn_params(_params_of(parse_subprotocols(request.headers)))
                except Exception as exc:
                    _log_error(exc, instance, "raw WebSocket")
                    await websocket.close(1011, _ws_reason(to_public(exc)))
                    return
                session = RawSession(self, actor_id, websocket, request)
                await session.run(instance, params, hibernation)
                return
        raw = RawWebSocket(websocket, request)
        instance.begin_request()

        async def close_on_abort() -> None:
            await instance.abort_event.wait()
            await raw.close(1001, "actor.stopping")

        watcher = asyncio.ensure_future(close_on_abort())
        try:
            result = hook.fn(instance.context, raw)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            _log_error(exc, instance, "on_websocket")
            await raw.close(1011, _ws_reason(to_public(exc)))
        else:
            await raw.close(1000, "")
        finally:
            watcher.cancel()
            instance.end_request()


def _encoding_of(offered: list[str]) -> str:
    for item in offered:
        if item.startswith("rivet_encoding."):
            return item[15:]
    return "json"


def _params_of(offered: list[str]) -> str | None:
    for item in offered:
        if item.startswith("rivet_conn_params."):
            return item[18:]
    return None


class _Resume:
    """Awaitable that runs a coroutine on from where its first step stopped (it yielded
    ``pending``), as if a task had run it from the start (``yield from`` by hand)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        pending = self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # thrown in by the task (a cancellation)
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = coro.send(value)
                except StopIteration:
                    return


# encoding -> (event name, args, frame) of the last event encoded (see send_event).
_EVENT_FRAMES: dict[str, tuple[str, list[Any], str | bytes]] = {}


class _ConnSession:
    """One ``/connect`` WebSocket: the runtime's :class:`ConnTransport` for its connection.

    Every outgoing frame (Init, responses, errors, events) leaves in order, and the runtime
    never waits on the socket: a frame goes straight to the socket when it can take it at
    once (its ``send_nowait``, when it has one) and nothing is queued before it; otherwise
    into one queue drained by one writer task.

    Actions run concurrently, one task each, in the order they arrived; a synchronous action
    runs inline instead (no task: it cannot interleave with anything), unless an action that
    arrived before it has not started yet.
    """

    __slots__ = (
        "_actor_id",
        "_busy",
        "_closing",
        "_dispatcher",
        "_done",
        "_hibernation",
        "_inline",
        "_instance",
        "_loop",
        "_max_in",
        "_max_out",
        "_next_task",
        "_out",
        "_out_bytes",
        "_send_now",
        "_tasks",
        "_unstarted",
        "_wake",
        "_ws",
        "conn",
        "encoding",
    )

    def __init__(self, instance: ActorInstance, websocket: WebSocket, encoding: str) -> None:
        self._instance = instance
        self._ws = websocket
        self.encoding = encoding
        self._max_in = instance.options.max_incoming_message_size
        self._max_out = instance.options.max_outgoing_message_size
        self._out: deque[str | bytes] = deque()
        self._out_bytes = 0
        self._wake = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self._done = False
        self._busy = False  # the writer task is sending a frame
        self._send_now: Callable[[str | bytes], bool] | None = getattr(
            websocket, "send_nowait", None
        )
        # The running action tasks (asyncio keeps only weak references), by a counter.
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._next_task = 0
        self._unstarted = 0  # action tasks created that have not started yet
        self._loop = asyncio.get_running_loop()
        # Sync actions may run inline when the runtime would not await around them either.
        options = instance.options
        self._inline = (
            getattr(instance, "table", None) is not None
            and not options.serial
            and not options.durable_replies
            and instance.definition.hooks.on_before_action_response is None
        )
        self.conn: Connection | None = None
        # Hibernation (see hibernate_with): None for a socket that does not hibernate.
        self._dispatcher: Dispatcher | None = None
        self._actor_id = instance.actor_id
        self._hibernation: Hibernation | None = None

    def hibernate_with(
        self, dispatcher: Dispatcher, actor_id: str, hibernation: Hibernation
    ) -> None:
        """Make the connection hibernatable: the socket stays open while the actor sleeps;
        the next message wakes the actor, whose restored connection takes this socket back
        (through :meth:`Dispatcher.conn_alive`, which calls :meth:`attach`)."""
        self._dispatcher = dispatcher
        self._actor_id = actor_id
        self._hibernation = hibernation

    def attach(self, conn: Connection) -> None:
        """Become the transport of ``conn``, restored by a new instance after a sleep."""
        conn.transport = self
        self.conn = conn
        self._hibernation = conn.hibernation
        if conn.owner is not None:
            self._instance = conn.owner

    # -- ConnTransport ---------------------------------------------------------------------

    def send_event(self, name: str, args: list[Any]) -> None:
        """Queue the event (encoded now, so later changes to ``args`` do not leak in).

        A broadcast hands every connection the same ``args`` list: its frame is encoded once
        per encoding and reused (the last frame per encoding is kept, with a reference to its
        ``args`` so the identity check cannot be fooled by a recycled object).
        """
        if self._closing is not None:
            return
        encoding = self.encoding
        cached = _EVENT_FRAMES.get(encoding)
        if cached is not None and cached[1] is args and cached[0] == name:
            frame = cached[2]
        else:
            try:
                frame = encode_to_client(ToClient(Event(name, args)), encoding)
            except Exception as exc:
                self._instance.log.warning("event %r dropped: it cannot be encoded (%s)", name, exc)
                return
            _EVENT_FRAMES[encoding] = (name, args, frame)
        if len(frame) > self._max_out:
            self._instance.log.warning(
                "event %r dropped: %d bytes is over max_outgoing_message_size (%d)",
                name,
                len(frame),
                self._max_out,
            )
            return
        self._push(frame)

    def close(self, reason: str | None) -> None:
        """Close the socket after the frames already queued (the runtime closed the conn)."""
        self._close_later(1000, (reason or "")[:120])

    # -- the session -----------------------------------------------------------------------

    def _push(self, frame: str | bytes) -> None:
        if self._closing is not None:
            return
        info = self._hibernation
        if info is not None:
            info.client_message_index = (info.client_message_index + 1) & 0xFFFF
        out = self._out
        if not out and not self._busy:
            send_now = self._send_now
            if send_now is not None and send_now(frame):
                return
        out.append(frame)
        self._out_bytes += len(frame)
        if len(out) > MAX_PENDING_FRAMES or self._out_bytes > MAX_PENDING_BYTES:
            out.clear()
            self._out_bytes = 0
            SERVER_COUNTERS.slow_clients_disconnected += 1
            self._instance.log.warning("a connection reads too slowly; closing it")
            self._close_later(1008, "ws.send_buffer_full")
        self._wake.set()

    def _close_later(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._wake.set()

    def _fail(self, error: BaseException, action_id: int | None = None) -> None:
        """A connection-level error: an ``Error`` frame, then a close with ``group.code``."""
        if self._closing is not None:
            return
        self._push(_error_frame(error, action_id, self.encoding))
        self._close_later(1011, _ws_reason(to_public(error)))

    async def _write_loop(self) -> None:
        ws = self._ws
        out = self._out
        wake = self._wake
        try:
            while True:
                while out:
                    self._busy = True
                    frame = out.popleft()
                    self._out_bytes -= len(frame)
                    await ws.send(frame)
                    self._busy = False
                closing = self._closing
                if closing is not None:
                    await ws.close(*closing)
                    return
                wake.clear()
                await wake.wait()
        except Exception as exc:
            logger.debug("connection writer stopped: %r", exc)
        finally:
            self._done = True
            out.clear()
            self._out_bytes = 0

    async def run(self, params: Any, restored: Connection | None = None) -> None:
        """Serve the socket to its end: connect (preflight, hooks, ``Init``), then the
        client's messages. ``restored``: the connection restored by a wake, already
        attached (no connect, no second ``Init``; engine mode, after a sleep)."""
        instance = self._instance
        writer = asyncio.ensure_future(self._write_loop())
        hibernation = self._hibernation
        sessions = None if self._dispatcher is None else self._dispatcher._sessions
        conn: Connection | None = restored
        ws = self._ws
        # The engine's gateway delivers unacknowledged messages again to the next generation.
        redelivers = bool(getattr(ws, "redelivers", False))
        try:
            if conn is None:
                try:
                    conn = await instance.connect(params, transport=self, hibernation=hibernation)
                except Exception as exc:
                    _log_error(exc, instance, "connect")
                    self._fail(exc)
                    return
                self.conn = conn
                init = ToClient(Init(instance.actor_id, conn.id))
                if hibernation is not None and sessions is not None:
                    sessions[hibernation.request_id] = self
                self._push(encode_to_client(init, self.encoding))
            elif hibernation is not None and sessions is not None:
                sessions[hibernation.request_id] = self
            while True:
                data = await ws.receive()
                if data is None:
                    break
                if self._closing is None:
                    conn = self.conn
                    assert conn is not None
                    owner = conn.owner
                    if owner is not None and owner.phase != Phase.STARTED and not conn.disconnected:
                        if redelivers and conn.hibernation is not None:
                            continue  # not handled, not acknowledged: the next one gets it
                        # The actor sleeps (or is going to): wake it; its restored
                        # connection handles the message (never the stopping instance).
                        conn = await self._resume(conn)
                        if conn is None:
                            continue
                    self._on_message(data, conn)
        finally:
            if (
                hibernation is not None
                and sessions is not None
                and sessions.get(hibernation.request_id) is self
            ):
                del sessions[hibernation.request_id]
            self._close_later(1000, "")
            if self.conn is not None and not getattr(ws, "detached", False):
                await self._leave(self.conn)
            with contextlib.suppress(Exception):
                await writer

    async def _resume(self, conn: Connection) -> Connection | None:
        """The connection to handle the next message with, once the actor is awake again:
        waits for a sleep in progress, wakes the actor, and returns the restored connection
        (which the restore attached to this socket). None after a failure (reported to the
        client, whose socket then closes)."""
        dispatcher = self._dispatcher
        if dispatcher is None or conn.hibernation is None:
            return conn  # not hibernatable: the instance answers (or refuses) as it is
        for _ in range(5):
            try:
                instance = await dispatcher._instance(self._actor_id)
            except Exception as exc:
                _log_error(exc, None, "waking the actor of a hibernated connection")
                self._fail(exc)
                return None
            current = self.conn
            if current is None or current.disconnected or self._closing is not None:
                return None
            owner = current.owner
            if owner is not None and owner.phase == Phase.STARTED:
                return current
            if current is conn and instance.phase == Phase.STARTED:
                self._fail(
                    RivetError(
                        "connection",
                        "restore_not_found",
                        "the connection was not restored when its actor woke",
                        metadata={"conn_id": conn.id},
                    )
                )
                return None
            conn = current
        self._fail(RivetError("actor", "stopping", "the actor keeps stopping; reconnect"))
        return None

    async def _leave(self, conn: Connection) -> None:
        """The client closed its socket: close its connection. A hibernated one is not in
        any instance: wake the actor; its restore finds the socket gone and closes the
        connection itself (``on_disconnect``, record deleted)."""
        if conn.disconnected:
            return
        dispatcher = self._dispatcher
        wake = None if conn.hibernation is None or dispatcher is None else dispatcher._instance
        await close_left_conn(conn, self._actor_id, wake, lambda: self.conn)

    def _on_message(self, data: str | bytes, conn: Connection) -> None:
        info = self._hibernation
        if info is not None:  # message indexes of the hibernation record (stored, then acked)
            info.server_message_index = (info.server_message_index + 1) & 0xFFFF
            if conn.owner is not None:
                conn.owner.conn_changed(conn)
        size = len(data)
        if isinstance(data, str) and size * 4 > self._max_in:
            size = len(data.encode("utf-8", "surrogatepass"))
        if size > self._max_in:
            self._fail(
                RivetError(
                    "message",
                    "incoming_too_long",
                    f"Incoming message too long (the limit is {self._max_in} bytes)",
                    metadata={"limit": self._max_in},
                )
            )
            return
        request = action_request_from(data, self.encoding)  # the common case, quickly
        if request is None:
            try:
                message = decode_to_server(data, self.encoding)
            except ProtocolError as exc:
                self._fail(exc)
                return
            body = message.body
            if isinstance(body, SubscriptionRequest):
                self._subscribe(conn, body.event_name, body.subscribe)
                return
            if not isinstance(body, ActionRequest):
                return
            request = body.id, body.name, body.args
        action_id, name, args = request
        if not isinstance(args, list):
            args = [] if args is None else [args]
        if self._inline and not self._unstarted and self._is_sync(name):
            self._run_inline(self._action(conn, action_id, name, args))
        else:
            key = self._next_task = self._next_task + 1
            self._unstarted += 1
            self._tasks[key] = self._loop.create_task(
                self._action(conn, action_id, name, args, key)
            )

    def _subscribe(self, conn: Connection, event: str, subscribe: bool) -> None:
        """A ``SubscriptionRequest``, through the event's ``can_subscribe`` gate; a refusal
        closes the socket with ``group.code`` (``auth.forbidden``), as RivetKit does."""
        instance = conn.owner if conn.owner is not None else self._instance
        try:
            pending = instance.subscribe(conn, event, subscribe)
        except Exception as exc:
            self._refuse_subscription(exc, instance, event)
            return
        if pending is not None:
            key = self._next_task = self._next_task + 1
            self._tasks[key] = self._loop.create_task(
                self._subscribe_later(key, pending, instance, event)
            )

    async def _subscribe_later(
        self, key: int, pending: Awaitable[None], instance: ActorInstance, event: str
    ) -> None:
        try:
            await pending
        except Exception as exc:
            self._refuse_subscription(exc, instance, event)
        finally:
            self._tasks.pop(key, None)

    def _refuse_subscription(
        self, error: BaseException, instance: ActorInstance, event: str
    ) -> None:
        _log_error(error, instance, f"subscription to {event[:100]!r}")
        self._close_later(1011, _ws_reason(to_public(error)))

    def _is_sync(self, name: str) -> bool:
        try:
            return not self._instance.table.is_async(name)
        except Exception:  # an unknown action: the task path reports it
            return False

    def _run_inline(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` now, in a copy of the current context (as a task would); if it
        suspends after all, a task runs it on from there."""
        context = contextvars.copy_context()
        try:
            pending = context.run(coro.send, None)
        except StopIteration:
            return
        except asyncio.CancelledError:
            return  # as its task would: cancelled, no answer
        key = self._next_task = self._next_task + 1
        # The task runs in (a copy of) the context of the first step.
        self._tasks[key] = context.run(
            self._loop.create_task, self._finish(key, _Resume(coro, pending))
        )

    async def _finish(self, key: int, rest: Awaitable[None]) -> None:
        try:
            await rest
        finally:
            self._tasks.pop(key, None)

    async def _action(
        self, conn: Connection, action_id: int, name: str, args: list[Any], key: int = 0
    ) -> None:
        """Run the action and queue its response (``key``: of its task in ``_tasks``)."""
        if key:
            self._unstarted -= 1
        instance = self._instance
        frame: str | bytes
        try:
            output = await instance.invoke(name, args, conn)
        except Exception as exc:
            if isinstance(exc, RivetError) and to_public(exc) is not exc:
                instance.log.warning("action %r failed: %s", name, exc)
            frame = _error_frame(exc, action_id, self.encoding)
        else:
            try:
                frame = encode_action_response(action_id, output, self.encoding)
            except Exception as exc:
                error = RivetError(
                    "actor",
                    "invalid_output",
                    f"the output of action {name!r} cannot be encoded: {exc}",
                )
                instance.log.warning("%s", error.message)
                frame = _error_frame(error, action_id, self.encoding)
            else:
                if len(frame) > self._max_out:
                    frame = _error_frame(
                        _outgoing_too_long(self._max_out), action_id, self.encoding
                    )
        finally:
            if key:
                self._tasks.pop(key, None)
        if not self._done:
            self._push(frame)
