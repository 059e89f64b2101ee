"""``ActorHandle``: stateless calls to one actor (actions over HTTP, resolve, queue, fetch).

Handles are lazy, like the TypeScript client's: making one sends nothing. A ``get`` or
``get_or_create`` handle sends every request straight to the query-form gateway URL
(``/gateway/{name}/...?rvt-namespace=..&rvt-method=getOrCreate&...``), so the gateway
resolves (and for ``get_or_create`` creates) the actor on each request; a ``get_for_id``
handle, and the one ``create`` returns, use the direct form ``/gateway/{actor_id}/...``.
Only :meth:`ActorHandle.resolve` calls the manager API.

Retries (spec §3): a request of a ``get``/``get_or_create`` handle answered with an actor
lifecycle error (``actor/not_found``, ``starting``, ``stopping``, ...) is retried every 100 ms,
up to 60 tries in all for ``get_or_create`` and 24 for ``get``; transient gateway errors are
retried up to 5 times on every handle (see :class:`~rivetkit.client.config.RetryOptions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, TypeVar, overload

import httpx

from rivetkit.client.backoff import Backoff
from rivetkit.client.config import check_timeout
from rivetkit.client.errors import (
    CLIENT_GROUP,
    ActorError,
    is_lifecycle_boundary,
    is_query_retryable,
)
from rivetkit.client.guard import guard_client_method
from rivetkit.client.query import (
    ActorQuery,
    ForIdQuery,
    GetOrCreateQuery,
    GetQuery,
    b64_std,
)
from rivetkit.client.raw_websocket import open_raw_websocket
from rivetkit.client.timeouts import describe_target, target_args, within
from rivetkit.client.typed import action_name_of, wire_args
from rivetkit.client.urls import CRASH_POLICY, conn_params_header, encode_uri_component
from rivetkit.errors import ProtocolError
from rivetkit.protocol.actor_keys import serialize_key
from rivetkit.protocol.client_protocol import HttpQueueSendRequest
from rivetkit.protocol.http_bodies import (
    http_action_request_to,
    http_action_response_from,
    http_queue_send_request_to,
    http_queue_send_response_from,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from rivetkit.client.client import Client
    from rivetkit.client.connection import ActorConnection

__all__ = ["ActorHandle", "QueueSendResult", "actor_id_of"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

_UNSET: Any = object()


class QueueSendResult(NamedTuple):
    """The answer to a queue send with ``wait=True``: ``completed`` or ``timedOut``."""

    status: str
    response: Any


def content_type_of(encoding: str) -> str:
    """``application/json`` for json, ``application/octet-stream`` for cbor and bare."""
    return "application/json" if encoding == "json" else "application/octet-stream"


def actor_id_of(body: Any, what: str) -> str:
    """The ``actor.actor_id`` of a manager API answer (``client.invalid_response`` if absent)."""
    actor = body.get("actor") if isinstance(body, dict) else None
    actor_id = actor.get("actor_id") if isinstance(actor, dict) else None
    if not isinstance(actor_id, str) or not actor_id:
        raise ActorError.client("invalid_response", f"{what} answered no actor.actor_id")
    return actor_id


def _protocol_error(exc: ProtocolError) -> ActorError:
    return ActorError(exc.group, exc.code, exc.message, metadata=exc.metadata)


class ActorHandle:
    """Calls to one actor: ``await handle.increment(5)`` or ``await handle.action("x", ...)``.

    Attribute access gives an action (``handle.getCount``); the methods below take
    precedence, so call an action named like one of them with :meth:`action`.
    ``params`` (connection params) are sent with every request as ``x-rivet-conn-params``
    and are the default params of :meth:`connect`.
    """

    def __init__(
        self,
        client: Client,
        query: ActorQuery,
        *,
        params: Any = None,
        timeout: float | None = None,
    ) -> None:
        self._client = client
        self._query = query
        self._params = params
        self._timeout = check_timeout(timeout)

    # MARK: identity

    @property
    def query(self) -> ActorQuery:
        """The target: a GetQuery, GetOrCreateQuery or ForIdQuery."""
        return self._query

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._query.name

    @property
    def key(self) -> list[str] | None:
        """The actor's key (None for a handle made from an actor id)."""
        if isinstance(self._query, ForIdQuery):
            return None
        return list(self._query.key)

    @property
    def actor_id(self) -> str | None:
        """The actor id of a ``get_for_id``/``create`` handle, else None (see resolve())."""
        return self._query.actor_id if isinstance(self._query, ForIdQuery) else None

    @property
    def params(self) -> Any:
        """The connection params sent with each request (None for none)."""
        return self._params

    @property
    def timeout(self) -> float | None:
        """The time limit of this handle's calls in seconds (None: the client's ``timeout``)."""
        return self._timeout

    def with_timeout(self, timeout: float | None) -> ActorHandle:
        """A copy of this handle whose calls (``call``, actions, ``send``, ``fetch``,
        ``resolve``) time out after ``timeout`` seconds (None: the client's ``timeout``)."""
        return ActorHandle(self._client, self._query, params=self._params, timeout=timeout)

    def __repr__(self) -> str:
        return f"<ActorHandle {self._query!r}>"

    def _limit(self, timeout: float | None) -> float | None:
        if timeout is not None:
            return check_timeout(timeout)
        if self._timeout is not None:
            return self._timeout
        return self._client._session.config.timeout

    def _operation(self, what: str) -> str:
        return f"{what} {describe_target(self._query)}"

    # MARK: actions

    async def action(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call action ``name`` with ``args`` over HTTP (``POST /action/{name}``).

        ``timeout``: seconds before giving up with ``client.timeout`` (the request is
        cancelled); None: the handle's, else the client's ``timeout``.
        """
        if not isinstance(name, str):
            raise TypeError(f"action name must be a str, not {type(name).__name__}")
        limit = self._limit(timeout)
        session = self._client._session
        encoding = session.config.encoding
        body = http_action_request_to(args, encoding)
        headers = self._headers(encoding)
        path = "/action/" + encode_uri_component(name)

        async def attempt() -> Any:
            response = await session.gateway(
                "POST", self._query, path, content=body, headers=headers
            )
            if not response.is_success:
                raise session.error_of(response, encoding)
            try:
                return http_action_response_from(response.content, encoding)
            except ProtocolError as exc:
                raise _protocol_error(exc) from None

        operation = f"action {self._query.name}.{name}({target_args(self._query)})"
        return await within(self._retrying(attempt), limit, operation)

    @overload
    async def call(
        self,
        action: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...
    @overload
    async def call(
        self, action: Callable[Concatenate[Any, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    async def call(self, action: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call the action defined by the function ``action``: ``await h.call(increment, 5)``.

        Type-checked against ``action``'s parameters after the context, with its return type;
        sends its wire name. See :mod:`rivetkit.client.typed`. The time limit is the
        handle's (:meth:`with_timeout`), else the client's ``timeout``.

        :raises TypeError: when ``action`` is not a registered action function.
        """
        return await self.action(action_name_of(action), *wire_args(action, args, kwargs))

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        guard_client_method(self, name)

        async def call(*args: Any, timeout: float | None = None) -> Any:
            return await self.action(name, *args, timeout=timeout)

        call.__name__ = call.__qualname__ = name
        return call

    def _headers(self, encoding: str) -> dict[str, str]:
        headers = {"x-rivet-encoding": encoding, "content-type": content_type_of(encoding)}
        params = conn_params_header(self._params)
        if params is not None:
            headers["x-rivet-conn-params"] = params
        return headers

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        session = self._client._session
        retry = session.config.retry
        if isinstance(self._query, GetOrCreateQuery):
            query_attempts = retry.get_or_create_attempts
        elif isinstance(self._query, GetQuery):
            query_attempts = retry.get_attempts
        else:
            query_attempts = 1
        tries = 0
        boundary_tries = 0
        boundary = Backoff(retry.boundary_initial, retry.boundary_max)
        while True:
            try:
                return await attempt()
            except ActorError as exc:
                if exc.group == CLIENT_GROUP:
                    raise
                if is_query_retryable(exc.group, exc.code):
                    tries += 1
                    if tries >= query_attempts:
                        raise
                    await session.sleep(retry.interval)
                elif is_lifecycle_boundary(exc):
                    boundary_tries += 1
                    if boundary_tries >= retry.boundary_attempts:
                        raise
                    await session.sleep(boundary.next_delay())
                else:
                    raise

    # MARK: resolve

    async def resolve(self, *, timeout: float | None = None) -> str:
        """The actor's id.

        ``get_for_id``/``create`` handles know it; a ``get_or_create`` handle calls
        ``PUT /actors`` (creating the actor when missing); a ``get`` handle calls
        ``GET /actors?name=..&key=..`` and raises ``actor/not_found`` when there is none.
        The handle stays lazy: later calls still go through the query-form gateway URL.
        ``timeout`` as for :meth:`action`.
        """
        return await within(self._resolve(), self._limit(timeout), self._operation("resolve"))

    async def _resolve(self) -> str:
        query = self._query
        session = self._client._session
        if isinstance(query, ForIdQuery):
            return query.actor_id
        if isinstance(query, GetOrCreateQuery):
            body: dict[str, Any] = {
                "name": query.name,
                "key": serialize_key(query.key),
                "runner_name_selector": session.config.pool,
                "crash_policy": CRASH_POLICY,
            }
            if query.input_cbor is not None:
                body["input"] = b64_std(query.input_cbor)
            if query.region is not None:
                body["datacenter"] = query.region
            try:
                answer = await session.manager("PUT", "/actors", body=body)
            except ActorError as exc:
                if exc.code != "key_reserved_in_different_datacenter":
                    raise
            else:
                return actor_id_of(answer, "PUT /actors")
        return await self._find_by_key(query.name, query.key)

    async def _find_by_key(self, name: str, key: tuple[str, ...]) -> str:
        session = self._client._session
        params = [("name", name), ("key", serialize_key(key))]
        answer = await session.manager("GET", "/actors", params=params)
        actors = answer.get("actors") if isinstance(answer, dict) else None
        if not isinstance(actors, list):
            raise ActorError.client("invalid_response", "GET /actors answered no actors list")
        for actor in actors:
            if isinstance(actor, dict) and isinstance(actor.get("actor_id"), str):
                return str(actor["actor_id"])
        raise ActorError("actor", "not_found", f"actor {name!r} with key {list(key)!r} not found")

    # MARK: connections

    def connect(
        self, params: Any = _UNSET, *, open_timeout: float | None = 30.0
    ) -> ActorConnection:
        """Open a connection (WebSocket ``/connect``) to the actor.

        Returns at once; ``await`` the connection (or ``async with`` it) to wait for the
        server's ``Init``, up to ``open_timeout`` seconds (None waits forever). ``params``
        defaults to the handle's params.
        """
        from rivetkit.client.connection import ActorConnection

        conn = ActorConnection(
            self._client._session,
            self._query,
            self._params if params is _UNSET else params,
            open_timeout=open_timeout,
            registry=self._client._connections,
        )
        conn.start()
        return conn

    # MARK: raw WebSocket

    async def websocket(
        self,
        path: str = "",
        *,
        protocols: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> ClientConnection:
        """Open a raw WebSocket to the actor's ``on_websocket`` handler (``/websocket/{path}``).

        Returns the open socket, a websockets ``ClientConnection`` (``await ws.send(...)``,
        ``await ws.recv()``, ``async for message in ws``, ``await ws.close()``); close it
        when done. The handle's params go along as connection params; ``protocols`` are
        offered after the ``rivet`` subprotocols. On get/get_or_create handles actor
        lifecycle errors answering the upgrade are retried as for actions; ``timeout`` as
        for :meth:`action`. An actor without ``on_websocket`` accepts and closes the socket
        (``1011 handler.websocket_not_defined``). Async only: the blocking client has no
        ``websocket``. See :mod:`rivetkit.client.raw_websocket`.
        """
        session = self._client._session

        async def attempt() -> ClientConnection:
            return await open_raw_websocket(session, self._query, self._params, path, protocols)

        operation = self._operation(f"websocket /{path.lstrip('/')} of")
        return await within(self._retrying(attempt), self._limit(timeout), operation)

    # MARK: queue and raw HTTP

    async def send(
        self,
        queue: str,
        body: Any = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        request_timeout: float | None = None,
    ) -> QueueSendResult | None:
        """Send ``body`` to the actor's queue ``queue`` (``POST /queue/{name}``).

        With ``wait=True``, waits for the message to be completed (up to ``timeout``
        seconds, decided by the server as in the TypeScript client: status ``timedOut``)
        and returns its :class:`QueueSendResult`; otherwise returns None.
        ``request_timeout`` bounds the request itself (``client.timeout``; None: the
        handle's, else the client's ``timeout``); a waiting send is given ``timeout`` more.
        """
        limit = self._limit(request_timeout)
        if limit is not None and wait and timeout is not None:
            limit += timeout
        session = self._client._session
        encoding = session.config.encoding
        timeout_ms = None if timeout is None else max(0, round(timeout * 1000))
        request = HttpQueueSendRequest(body=body, name=queue, wait=wait, timeout=timeout_ms)
        content = http_queue_send_request_to(request, encoding)
        headers = self._headers(encoding)
        path = "/queue/" + encode_uri_component(queue)

        async def attempt() -> QueueSendResult | None:
            response = await session.gateway(
                "POST", self._query, path, content=content, headers=headers
            )
            if not response.is_success:
                raise session.error_of(response, encoding)
            if not wait:
                return None
            try:
                answer = http_queue_send_response_from(response.content, encoding)
            except ProtocolError as exc:
                raise _protocol_error(exc) from None
            return QueueSendResult(answer.status, answer.response)

        operation = self._operation(f"send to queue {queue!r} of")
        return await within(self._retrying(attempt), limit, operation)

    async def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """A raw HTTP request to the actor's ``on_request`` (``/request/{path}``).

        Returns the response whatever its status, except that on get/get_or_create handles
        an actor lifecycle error (``actor/not_found``, ...) is retried as for actions, and
        raised as :class:`ActorError` once the retries are exhausted. ``timeout`` as for
        :meth:`action` (the response body is read within it).
        """
        session = self._client._session
        all_headers = dict(headers or {})
        params = conn_params_header(self._params)
        if params is not None:
            all_headers["x-rivet-conn-params"] = params
        data = content.encode() if isinstance(content, str) else content
        route = "/request/" + path.lstrip("/")
        retry_query = not isinstance(self._query, ForIdQuery)

        async def attempt() -> httpx.Response:
            response = await session.gateway(
                method, self._query, route, content=data, headers=all_headers
            )
            if retry_query and not response.is_success:
                error = session.error_of(response, "json")
                if is_query_retryable(error.group, error.code):
                    raise error
            return response

        operation = self._operation(f"fetch {method} /{path.lstrip('/')} of")
        return await within(self._retrying(attempt), self._limit(timeout), operation)
