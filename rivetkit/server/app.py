"""The ASGI application of embedded mode: metadata, the manager API, the gateway, dispatch.

No web framework: one small router in front of :class:`~rivetkit.dispatch.Dispatcher`.

======================================== ===================================================
route                                    answer
======================================== ===================================================
``GET /metadata``                        ``{"runtime", "version", "speedups", "actorNames"}``
``GET /health``                          ``ok``
``GET /metrics``                         Prometheus text (:mod:`rivetkit.metrics`); 403 when
                                         off, 401 without ``RIVETKIT_METRICS_TOKEN``'s bearer
``PUT /actors``                          get or create: ``{"actor": Actor, "created"}``
``POST /actors``                         create: ``{"actor": Actor}``
``GET /actors?name=&key=``               ``{"actors": [Actor]}`` (empty when none)
``GET /actors?actor_ids=a,b``            ``{"actors": [Actor...]}`` (destroyed ones too)
``GET /actors?name=``                    every live actor of that name
``DELETE /actors/{id}``                  destroy: ``{}``
``/gateway/{actor_id}[@token]/...``      the actor route ``...`` of that actor
``/gateway/{name}/...?rvt-...``          the same, the actor found (or created) by name+key
======================================== ===================================================

The ``namespace`` query parameter (and ``rvt-namespace``) is accepted and ignored: embedded
mode has one namespace. The ``Actor`` JSON is the engine's (``actor_id``, ``name``, ``key``
serialized, ``namespace_id``, ``datacenter``, ``runner_name_selector``, ``crash_policy``,
``create_ts``, ``start_ts``, ``pending_allocation_ts``, ``connectable_ts``, ``sleep_ts``,
``reschedule_ts``, ``destroy_ts``, ``error``), its lifecycle moments in ms as the engine
reports them (:mod:`rivetkit.runtime.lifecycle_times`): a running actor has
``connectable_ts`` set and ``sleep_ts`` None, a sleeping one the reverse. Errors are JSON
RivetErrors; an unknown actor *name* is ``actor/invalid_request`` (400), never
``actor/not_found``, which the official client retries for seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import rivetkit
from rivetkit._version import __version__
from rivetkit.client import Client
from rivetkit.dispatch.http import Headers, Request, Response
from rivetkit.dispatch.router import Dispatcher, error_response, parse_subprotocols
from rivetkit.dispatch.websocket import WebSocket
from rivetkit.drivers.base import ActorRecord, Driver
from rivetkit.errors import RivetError, to_public
from rivetkit.protocol.actor_keys import deserialize_key, serialize_key
from rivetkit.runtime.lifecycle_times import LifecycleTimes
from rivetkit.runtime.live_actors import Runtime
from rivetkit.server import address_hints, gateway
from rivetkit.server.asgi_io import (
    AsgiWebSocket,
    BodyChunks,
    Receive,
    Scope,
    Send,
    read_body,
)
from rivetkit.server.asgi_stream import send_stream
from rivetkit.server.cors import OriginPolicy, preflight, refuse_websocket, with_cors
from rivetkit.server.gateway import invalid_request, split_path
from rivetkit.server.http_fastpath import forget_head, own_cycle, respond
from rivetkit.server.local_client import LocalClient
from rivetkit.server.request_log import (
    RequestContext,
    log_access,
    request_id_of,
    reset_request_context,
    set_actor_context,
    set_request_context,
)
from rivetkit.server.ws_fastpath import DIRECT_WEBSOCKET

__all__ = ["RivetApp", "actor_json"]

logger = logging.getLogger("rivetkit.server")

#: Largest request body the server reads (raw ``on_request`` bodies included); action and
#: queue bodies are further bounded by the actor's ``max_incoming_message_size``.
MAX_BODY_SIZE: Final = 16 * 1024 * 1024
#: Largest manager API body (an input of 4 MiB in base64, plus the rest).
MAX_MANAGER_BODY: Final = 8 * 1024 * 1024

_JSON: Final = [(b"content-type", b"application/json")]
_TEXT: Final = [(b"content-type", b"text/plain; charset=utf-8")]
_ROUTE_CACHE_SIZE: Final = 10_000


def actor_json(record: ActorRecord, lifecycle: LifecycleTimes | None = None) -> dict[str, Any]:
    """An actor as the manager API (the engine's) shows it; ``lifecycle`` gives its
    ``start_ts``, ``connectable_ts``, ``sleep_ts`` and ``pending_allocation_ts`` (without it
    they are None)."""
    if lifecycle is not None:
        times = lifecycle.fields(record.actor_id, record.create_ts, record.destroy_ts)
    else:
        times = dict.fromkeys(
            ("start_ts", "pending_allocation_ts", "connectable_ts", "sleep_ts"), None
        )
    return {
        "actor_id": record.actor_id,
        "name": record.name,
        "key": serialize_key(record.key),
        "namespace_id": "default",
        "datacenter": "default",
        "runner_name_selector": "default",
        "crash_policy": "sleep",
        "create_ts": record.create_ts,
        **times,
        "reschedule_ts": None,
        "destroy_ts": record.destroy_ts,
        "error": None,
    }


def _json_response(data: Any, status: int = 200) -> Response:
    return Response._raw(status, list(_JSON), json.dumps(data, separators=(",", ":")).encode())


def _relative_raw_path(scope: Scope) -> str:
    """The raw (percent-encoded) path below the app's mount point."""
    raw = scope.get("raw_path")
    path: str = raw.decode("latin-1") if raw else scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and unquote(path).startswith(root):
        # Strip as many segments as the mount point has (Starlette's Mount keeps the full
        # path in raw_path; its root_path names the mount).
        depth = root.rstrip("/").count("/")
        parts = path.split("/", depth + 1)
        path = "/" + parts[depth + 1] if len(parts) > depth + 1 else "/"
    return path


def _method_not_allowed(method: str, path: str) -> RivetError:
    return RivetError(
        "actor", "method_not_allowed", f"method {method} is not allowed on {path[:200]}"
    )


def _route_not_found(path: str) -> RivetError:
    return RivetError(
        "actor",
        "not_found",
        f"no route {path[:200]!r}",
        metadata={"resource": "route", "path": path[:200]},
    )


class RivetApp:
    """The ASGI app serving a registry (see the module docstring for its routes).

    Use :func:`rivetkit.server.create_app` to make one. The runtime starts at the ASGI
    lifespan startup (or at the first request when the host sends no lifespan events) and
    stops at shutdown: actors sleep and their state is flushed. Hosts that do not forward
    lifespan events to mounted apps (Starlette's ``Mount``) should call :meth:`startup` and
    :meth:`shutdown`, or use :meth:`lifespan` as their lifespan.
    """

    def __init__(
        self, registry: Any, driver: Driver, *, origin_policy: OriginPolicy | None = None
    ) -> None:
        self.registry = registry
        self.driver = driver
        #: Which web origins and Host names may reach this app (:mod:`rivetkit.server.cors`).
        self.origin_policy = origin_policy or OriginPolicy()
        self.runtime = Runtime(registry, driver)
        # This server holds the clients' /connect sockets: they hibernate with their actor.
        self.dispatcher = Dispatcher(self.runtime, hibernatable_connections=True)
        # c.client() in the actors, app.client() in host code: in process.
        self._local = LocalClient(self)
        self.runtime.client_factory = self._local.shared
        #: Log one line per HTTP request to ``rivetkit.access`` (``--access-log``).
        self.access_log = False
        self._started = False
        self._stopped = False
        self._start_lock = asyncio.Lock()
        # (gateway segment, query string) -> actor id; and the query left for the actor, for
        # the routes that leave one (most leave none: a str less per actor)
        self._routes: dict[tuple[str, bytes], str] = {}
        self._route_queries: dict[tuple[str, bytes], str] = {}
        # actor id -> its key in _routes (a list of them when more than one), dropped when
        # the actor stops (a sleeping actor's request resolves again: a lookup its wake does
        # anyway)
        self._actor_routes: dict[str, tuple[str, bytes] | list[tuple[str, bytes]]] = {}
        # The HTTP action fast road (None: every request the ordinary way; tests compare them).
        # Imported here: its compiled twin imports rivetkit.server.http_fastpath, whose package
        # imports this module, so a module-level import would make `import
        # rivetkit._speedups._action_fast` alone a circular import.
        from rivetkit.server.action_fast import serve_action

        self._serve_action: Callable[..., Awaitable[Any]] | None = serve_action
        # First: the dispatcher's listener drops the header lists _drop_routes reads.
        self.runtime.stop_listeners.insert(0, self._drop_routes)
        self._metadata = json.dumps(
            {
                "runtime": "rivetkit",
                "version": __version__,
                "speedups": rivetkit.SPEEDUPS,
                "actorNames": {name: {"metadata": {}} for name in registry.actors},
            },
            separators=(",", ":"),
        ).encode()

    # -- life ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the runtime is started (and not yet stopped)."""
        return self._started and not self._stopped

    async def startup(self) -> None:
        """Start the runtime (idempotent); the driver's errors propagate (e.g. a data
        directory locked by another process)."""
        async with self._start_lock:
            if self._started:
                return
            await self.runtime.start()
            self.driver.on_destroyed(self._forget_actor)
            self._started = True

    async def shutdown(self) -> None:
        """Stop the runtime: every actor sleeps, state is flushed (idempotent)."""
        async with self._start_lock:
            if not self._started or self._stopped:
                return
            self._stopped = True
            try:
                await self.runtime.stop()
            finally:
                await self._local.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """An async context manager running the runtime: ``FastAPI(lifespan=app.lifespan)``."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    def client(self, **options: Any) -> Client:
        """A :class:`rivetkit.client.Client` of this app's actors for code in the same process
        (a FastAPI route, a background task): in process, no socket, values through CBOR.

        Without ``options`` it is the client the actors get from ``c.client()``, the same
        object on every call; with options (any keyword argument of
        :class:`~rivetkit.client.Client` but the endpoint and transports: ``timeout``,
        ``retry``, ``encoding``, ``headers``, ...) a new client. Every one is closed at
        :meth:`shutdown`. The runtime must be running (:meth:`lifespan`, :meth:`startup`, or a
        first request starts it).
        """
        return self._local.client(**options)

    def _drop_routes(self, actor_id: str) -> None:
        # The dispatcher's response_headers_of, inline: most actors answered once (no list).
        cached: Any = self.dispatcher._success_headers.get(actor_id)
        if cached.__class__ is tuple:
            for headers in cached[1].values():
                forget_head(headers)
        routes = self._routes
        keys: Any = self._actor_routes.pop(actor_id, None)
        if keys is None:
            return
        for key in keys if keys.__class__ is list else (keys,):
            if routes.get(key) == actor_id:
                routes.pop(key, None)  # _forget_route, inline
                self._route_queries.pop(key, None)

    def _forget_route(self, key: tuple[str, bytes]) -> None:
        self._routes.pop(key, None)
        self._route_queries.pop(key, None)

    def _forget_actor(self, actor_id: str) -> None:
        stale = [key for key, aid in self._routes.items() if aid == actor_id]
        for key in stale:
            self._forget_route(key)

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            token = set_request_context(RequestContext(request_id_of(scope["headers"])))
            started = time.perf_counter() if self.access_log else 0.0
            try:
                # Origin and Host first: a refused web page runs nothing (see server/cors.py).
                origin, refusal = self.origin_policy.check(scope["headers"])
                if refusal is not None:
                    response = refusal.response()
                elif origin is not None and scope["method"] == "OPTIONS":
                    response = preflight(origin, scope["headers"]) or await self._http_in(
                        scope, receive
                    )
                elif self._started:
                    fast = self._serve_action
                    if fast is not None and origin is None:
                        # An action taken whole by the fast road (action_fast.py), or None.
                        answer = await fast(self, scope, receive, send, MAX_BODY_SIZE)
                        if answer.__class__ is int:
                            if self.access_log:
                                log_access(scope, answer, started)
                            return
                        if answer is None:
                            answer = await self._http(scope, receive)
                        response = answer
                    else:
                        response = await self._http(scope, receive)
                else:
                    response = await self._http_in(scope, receive)
                if origin is not None:
                    response.headers = Headers.from_raw(with_cors(response.headers.raw, origin))
                await _send_response(scope, send, response, receive)
                if self.access_log:
                    log_access(scope, response.status, started)
            finally:
                reset_request_context(token)
        elif kind == "websocket":
            token = set_request_context(RequestContext(request_id_of(scope["headers"])))
            try:
                _, refusal = self.origin_policy.check(scope["headers"])
                if refusal is not None:
                    await refuse_websocket(scope, receive, send, refusal)
                    return
                if not self._started:
                    await self._lazy_start()
                await self._websocket(scope, receive, send)
            finally:
                reset_request_context(token)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http_in(self, scope: Scope, receive: Receive) -> Response:
        if not self._started:
            await self._lazy_start()
        return await self._http(scope, receive)

    async def _lazy_start(self) -> None:
        with contextlib.suppress(Exception):  # failures surface on the request itself
            await self.startup()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    logger.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP ------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive) -> Response:
        raw_path = scope.get("raw_path")
        if raw_path and not scope.get("root_path"):
            path: str = raw_path.decode("latin-1")  # _relative_raw_path's common case
        else:
            path = _relative_raw_path(scope)
        method: str = scope["method"]
        try:
            if path.startswith("/gateway/"):
                raw_query = scope["query_string"]
                # The common case without a coroutine: a cached route whose actor is running.
                segment, rest = split_path(path)
                instances = self.runtime.instances
                route = (segment, raw_query)
                cached: Any = self._routes.get(route)
                instance = None if cached is None else instances.get(cached)
                if instance is not None:
                    actor_id: str = cached
                    query = self._route_queries.get(route, "") if self._route_queries else ""
                else:
                    actor_id, rest, query = await self._gateway(path, raw_query)
                    instance = instances.get(actor_id)
                set_actor_context(instance, actor_id)
                chunks = BodyChunks(receive, MAX_BODY_SIZE, own_cycle(scope, receive))
                request = Request._raw(
                    method, rest, query, Headers.from_raw(scope["headers"]), chunks, chunks
                )
                return await self.dispatcher.handle_http(actor_id, request)
            if path == "/actors" or path.startswith("/actors/"):
                return await self._manager(method, path, scope, receive)
            if path == "/metadata":
                if method != "GET":
                    raise _method_not_allowed(method, path)
                return Response._raw(200, list(_JSON), self._metadata)
            if path == "/health":
                if method != "GET":
                    raise _method_not_allowed(method, path)
                return Response._raw(200, list(_TEXT), b"ok")
            headers = Headers.from_raw(scope["headers"])
            target = headers.get("x-rivet-target")
            direct_id = headers.get("x-rivet-actor")
            if target == "actor" and direct_id:
                chunks = BodyChunks(receive, MAX_BODY_SIZE)
                request = Request._raw(
                    method, path, scope["query_string"].decode("latin-1"), headers, chunks, chunks
                )
                return await self.dispatcher.handle_http(direct_id, request)
            if path == "/metrics":
                if method != "GET":
                    raise _method_not_allowed(method, path)
                return self._metrics(headers)
            if path == "/":
                if method != "GET":
                    raise _method_not_allowed(method, path)
                return Response._raw(
                    200,
                    list(_TEXT),
                    b"This is a RivetKit server (rivetkit for Python).\n\n"
                    b"Learn more at https://rivetkit.org",
                )
            raise _route_not_found(path)
        except Exception as exc:
            return self.failed(method, path, exc)

    def failed(self, method: str, path: str, exc: Exception) -> Response:
        """The answer to ``method path`` when resolving or answering it raised ``exc``,
        logged as an internal error (or a warning) as the ordinary road does; the direct road
        (:mod:`rivetkit.server.http_direct`) answers its resolution errors with it too."""
        if not isinstance(exc, RivetError):
            logger.error("%s %s failed", method, path[:200], exc_info=exc)
        elif to_public(exc) is not exc:
            logger.warning("%s %s failed: %s", method, path[:200], exc)
        return error_response(exc)

    def _metrics(self, headers: Headers) -> Response:
        """``GET /metrics``: the runtime's Prometheus text (see :mod:`rivetkit.metrics`)."""
        from rivetkit.metrics.exposition import scrape_response

        status, content_type, body = scrape_response(
            self.runtime.metrics, headers.get("authorization")
        )
        return Response._raw(status, [(b"content-type", content_type)], body)

    # -- gateway ---------------------------------------------------------------------------

    async def _gateway(self, path: str, query: bytes, split: Any = None) -> tuple[str, str, str]:
        """``(actor_id, path for the actor, query for the actor)`` of a gateway URL (``split``:
        its ``split_path``, when made already)."""
        segment, rest = split_path(path) if split is None else split
        if not segment:
            raise invalid_request("the gateway URL names no actor")
        routes = self._routes
        cached = routes.get((segment, query))
        if cached is not None:
            instance = self.runtime.instances.get(cached)
            if instance is not None or await self._still_exists(cached):
                return cached, rest, self._route_queries.get((segment, query), "")
            self._forget_route((segment, query))
        query_string = query.decode("latin-1")
        if "rvt-" in query_string:
            params, rest_query = gateway.split_query(query_string)
        else:
            params, rest_query = {}, query_string
        if params:
            target = gateway.parse_query(segment, params)
            names = self.registry.actors
            if target.name not in names:  # _check_name, inline
                raise address_hints.unknown_name(target.name, names)
            if target.method == "get":
                actor_id = await self._find(target)
            else:  # getOrCreate inline (no coroutine of its own: a frame less to resume)
                made = await self.driver.get_or_create_actor(target.name, target.key, target.input)
                actor_id = made[0].actor_id
        else:
            actor_id, _token = gateway.parse_direct(segment)
            if actor_id not in self.runtime.instances:
                await self._check_direct(actor_id, rest)
        actor_routes = self._actor_routes
        if len(routes) >= _ROUTE_CACHE_SIZE:
            routes.clear()
            self._route_queries.clear()
            actor_routes.clear()
        # One key object in both tables, its segment (most often an actor's name) shared.
        key = (sys.intern(segment), query)
        routes[key] = actor_id
        if rest_query:
            self._route_queries[key] = rest_query
        else:
            self._route_queries.pop(key, None)
        keys: Any = actor_routes.setdefault(actor_id, key)  # one route (most): not a list
        if keys.__class__ is list:
            keys.append(key)
        elif keys is not key:
            actor_routes[actor_id] = [keys, key]
        return actor_id, rest, rest_query

    async def _still_exists(self, actor_id: str) -> bool:
        record = await self.driver.get_actor(actor_id)
        return record is not None and record.destroy_ts is None

    async def _check_direct(self, actor_id: str, rest: str) -> None:
        """An id no actor ever had is answered with how to address an actor (a destroyed
        actor's id is left to dispatch)."""
        if await self.driver.get_actor(actor_id) is not None:
            return
        names = self.registry.actors
        if actor_id in names:
            post = rest.startswith(("/action/", "/queue/"))
            raise address_hints.name_as_id(actor_id, "POST" if post else "GET", rest)
        raise address_hints.unknown_id(actor_id, names)

    def _check_name(self, name: str) -> None:
        if name not in self.registry.actors:
            raise address_hints.unknown_name(name, self.registry.actors)

    async def _find(self, target: gateway.QueryTarget) -> str:
        """The actor id of a ``get`` target (its name checked); ``actor/not_found``."""
        record = await self.driver.find_actor(target.name, target.key)
        if record is None:
            raise RivetError(
                "actor",
                "not_found",
                f"no actor {target.name!r} with key {serialize_key(target.key)!r}",
                metadata={"name": target.name, "key": serialize_key(target.key)},
            )
        return record.actor_id

    # -- manager API -----------------------------------------------------------------------

    async def _manager(self, method: str, path: str, scope: Scope, receive: Receive) -> Response:
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if path == "/actors":
            if method == "GET":
                return await self._list_actors(query)
            if method in ("PUT", "POST"):
                body = await read_body(receive, MAX_MANAGER_BODY)
                return await self._create_actor(body, get_or_create=method == "PUT")
            raise _method_not_allowed(method, path)
        segment = path[8:]
        if not segment or "/" in segment:
            raise _route_not_found(path)
        if method != "DELETE":
            raise _method_not_allowed(method, path)
        actor_id = unquote(segment)
        record = await self.driver.get_actor(actor_id)
        if record is None or record.destroy_ts is not None:
            raise RivetError(
                "actor",
                "not_found",
                f"no actor {actor_id[:100]!r}",
                metadata={"id": actor_id[:100]},
            )
        await self.driver.destroy_actor(actor_id)
        self._forget_actor(actor_id)
        return _json_response({})

    async def _list_actors(self, query: dict[str, str]) -> Response:
        ids = query.get("actor_ids")
        if ids is not None:
            records = []
            for actor_id in dict.fromkeys(part for part in ids.split(",") if part):
                record = await self.driver.get_actor(actor_id)
                if record is not None:
                    records.append(record)
            return self._actors_response(records)
        name = query.get("name")
        if name is None:
            records = await self.driver.list_actors()
        elif "key" in query:
            record = await self.driver.find_actor(
                name, gateway.check_key(deserialize_key(query["key"]))
            )
            records = [] if record is None else [record]
        else:
            records = await self.driver.list_actors(name)
        return self._actors_response(records)

    def _actors_response(self, records: list[ActorRecord]) -> Response:
        lifecycle = self.runtime.lifecycle
        return _json_response({"actors": [actor_json(r, lifecycle) for r in records]})

    async def _create_actor(self, body: bytes, *, get_or_create: bool) -> Response:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise invalid_request("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise invalid_request("the request body must be a JSON object")
        name = data.get("name")
        if not isinstance(name, str):
            raise invalid_request("the request body needs a string 'name'")
        self._check_name(name)
        raw_key = data.get("key")
        if raw_key is None:
            key: list[str] = []
        elif isinstance(raw_key, str):
            key = deserialize_key(raw_key)
        elif isinstance(raw_key, list) and all(isinstance(part, str) for part in raw_key):
            key = list(raw_key)
        else:
            raise invalid_request("'key' must be a serialized key string")
        gateway.check_key(key)
        raw_input = data.get("input")
        if raw_input is None:
            input = None
        elif isinstance(raw_input, str):
            input = gateway.decode_input(raw_input, urlsafe=False, what="'input'")
        else:
            raise invalid_request("'input' must be a base64 string of CBOR")
        if get_or_create:
            record, created = await self.driver.get_or_create_actor(name, key, input)
            lifecycle = self.runtime.lifecycle
            return _json_response({"actor": actor_json(record, lifecycle), "created": created})
        record = await self.driver.create_actor(name, key, input)
        return _json_response({"actor": actor_json(record, self.runtime.lifecycle)})

    # -- WebSocket -------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        socket: WebSocket
        direct = scope.get("extensions", {}).get(DIRECT_WEBSOCKET)
        if direct is not None and direct.owns(receive, send):
            socket = direct  # our uvicorn protocol's own socket: no ASGI dict per frame
        else:
            socket = AsgiWebSocket(receive, send)
        path = _relative_raw_path(scope)
        headers = Headers.from_raw(scope["headers"])
        query = scope["query_string"]
        request = Request("GET", path, query_string=query.decode("latin-1"), headers=headers)
        dispatcher = self.dispatcher
        try:
            if path.startswith("/gateway/"):
                # A failure below is reported as for the actor route (/connect or raw).
                request = request.with_path(split_path(path)[1], "")
                actor_id, rest, rest_query = await self._gateway(path, query)
                set_actor_context(self.runtime.instances.get(actor_id), actor_id)
                request = request.with_path(rest, rest_query)
            else:
                offered = parse_subprotocols(headers)
                actor_id = next((p[12:] for p in offered if p.startswith("rivet_actor.")), "")
                if "rivet_target.actor" not in offered or not actor_id:
                    raise _route_not_found(path)
        except Exception as exc:
            await dispatcher.reject_websocket(request, socket, exc)
            return
        await dispatcher.handle_websocket(actor_id, request, socket)


_FRAMING: Final = (b"content-length", b"transfer-encoding")


async def _send_response(scope: Scope, send: Send, response: Response, receive: Receive) -> None:
    body = response.body
    headers = response.headers.raw
    for name, _ in headers:
        if name in _FRAMING:  # the transport frames the body itself
            headers = [(n, v) for n, v in headers if n not in _FRAMING]
            break
    cycle = own_cycle(scope, send)
    if response.stream is not None:
        await send_stream(scope, receive, send, response.status, headers, response.stream, cycle)
        return
    if cycle is not None and respond(cycle, response.status, headers, body):
        return  # in one write
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
