"""``Client``: the async entry point (the TypeScript client's ``createClient``).

    async with Client("http://127.0.0.1:6420") as client:
        counter = client.counter.get_or_create(["k"])
        print(await counter.increment(5))
        async with counter.connect() as conn:
            conn.on("newCount", print)
            await conn.increment(1)

A client belongs to the event loop it is first used in (one ``httpx.AsyncClient`` with
keep-alive connections, and the connections' tasks); use :class:`~rivetkit.client.SyncClient`
from threads or blocking code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from rivetkit.client.config import ClientConfig, RetryOptions, resolve_config
from rivetkit.client.connection import ActorConnection
from rivetkit.client.errors import ActorError
from rivetkit.client.guard import guard_client_method
from rivetkit.client.handle import ActorHandle, actor_id_of
from rivetkit.client.http import HttpSession, WsConnect
from rivetkit.client.query import (
    DEFAULT_MAX_INPUT_SIZE,
    ForIdQuery,
    GetOrCreateQuery,
    GetQuery,
    KeyArg,
    b64_std,
    encode_input,
    normalize_key,
)
from rivetkit.client.timeouts import within
from rivetkit.client.urls import CRASH_POLICY
from rivetkit.protocol.actor_keys import serialize_key

__all__ = ["ActorAccessor", "Client"]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError("an actor name must be a non-empty str")
    return name


class ActorAccessor:
    """``client.<name>``: the handle factories for one actor name."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name

    def get(self, key: KeyArg = None, *, params: Any = None) -> ActorHandle:
        """See :meth:`Client.get`."""
        return self._client.get(self._name, key, params=params)

    def get_or_create(
        self,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> ActorHandle:
        """See :meth:`Client.get_or_create`."""
        return self._client.get_or_create(
            self._name, key, input=input, params=params, region=region
        )

    async def create(
        self,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> ActorHandle:
        """See :meth:`Client.create`."""
        return await self._client.create(self._name, key, input=input, params=params, region=region)

    def get_for_id(self, actor_id: str, *, params: Any = None) -> ActorHandle:
        """See :meth:`Client.get_for_id`."""
        return self._client.get_for_id(self._name, actor_id, params=params)

    def __repr__(self) -> str:
        return f"<ActorAccessor {self._name!r}>"

    def __getattr__(self, name: str) -> Any:
        guard_client_method(self, name)
        raise AttributeError(
            f"ActorAccessor has no attribute {name!r}: get a handle first, e.g. "
            f"client.{self._name}.get_or_create(key).{name}(...) or "
            f'.action("{name}", ...) on it'
        )


class Client:
    """An async client of a RivetKit server (ours, or the Rivet Engine's gateway).

    :param endpoint: the server's URL (default ``RIVET_ENGINE``/``RIVET_ENDPOINT``, else
        ``http://127.0.0.1:6420``); ``http://NAMESPACE:TOKEN@host`` sets namespace and token.
    :param encoding: ``bare`` (default, like the TypeScript client), ``cbor`` or ``json``.
    :param namespace: default ``RIVET_NAMESPACE``, else ``default``.
    :param token: sent as ``Authorization: Bearer`` (manager API), ``x-rivet-token``
        (gateway) and ``rvt-token``/``@token`` in gateway URLs; default ``RIVET_TOKEN``.
    :param headers: extra headers of every HTTP request (not of WebSockets).
    :param pool: the runner pool actors are created in (``rvt-runner``); default
        ``RIVET_POOL``, else ``default``.
    :param disable_metadata_lookup: skip ``GET /metadata`` before the first call.
    :param metadata_timeout: give up the metadata lookup after this many seconds (None:
        retry forever, as the TypeScript client does).
    :param max_input_size: largest encoded ``get_or_create`` input (it travels in the URL).
    :param retry: retries of get/get_or_create requests on actor lifecycle errors.
    :param timeout: the time limit of each call (actions, ``call``, queue sends, ``fetch``,
        ``resolve``, ``create``, ``metadata``, connection actions) in seconds; a call past it
        is cancelled and raises ``client.timeout`` naming the call. None (default): no limit.
        Calls take their own ``timeout=`` too. Opening a connection has ``open_timeout``, and
        waiting for events is not limited.
    :param transport: an httpx transport replacing the network (for tests).
    :param ws_connect: replaces ``websockets.asyncio.client.connect`` (same arguments) for
        the client's WebSockets (the in-process client of :mod:`rivetkit.testing`).

    Use it as ``async with Client(...) as client`` or call :meth:`close` (or
    :meth:`aclose`) when done: that closes its connections too.

    ``client.<name>`` gives the handle factories of actor ``<name>``; for an actor named
    like a method or property of the client (``get``, ``create``, ``close``, ``metadata``,
    ``config``, ...) call ``client.get_or_create("get", key)`` and so on instead.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        encoding: str = "bare",
        namespace: str | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        pool: str | None = None,
        disable_metadata_lookup: bool = False,
        metadata_timeout: float | None = 30.0,
        max_input_size: int = DEFAULT_MAX_INPUT_SIZE,
        retry: RetryOptions | None = None,
        timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ws_connect: WsConnect | None = None,
    ) -> None:
        self._config = resolve_config(
            endpoint,
            encoding=encoding,
            namespace=namespace,
            token=token,
            headers=headers,
            pool=pool,
            disable_metadata_lookup=disable_metadata_lookup,
            metadata_timeout=metadata_timeout,
            max_input_size=max_input_size,
            retry=retry,
            timeout=timeout,
        )
        self._session = HttpSession(self._config, transport=transport, ws_connect=ws_connect)
        self._connections: set[ActorConnection] = set()

    # MARK: settings

    @property
    def config(self) -> ClientConfig:
        """The resolved settings."""
        return self._config

    @property
    def endpoint(self) -> str:
        """The endpoint in use (the metadata's ``clientEndpoint`` once looked up, if any)."""
        return self._session.endpoint

    @property
    def namespace(self) -> str:
        """The namespace in use."""
        return self._session.namespace

    @property
    def encoding(self) -> str:
        """``bare``, ``cbor`` or ``json``."""
        return self._config.encoding

    def __repr__(self) -> str:
        return f"<Client {self.endpoint} ns={self.namespace} {self.encoding}>"

    # MARK: lifecycle

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def aclose(self) -> None:
        """The same as :meth:`close` (the httpx habit)."""
        await self.close()

    async def close(self) -> None:
        """Close every connection opened through this client, then the HTTP connections."""
        connections = list(self._connections)
        if connections:
            await asyncio.gather(*(conn.close() for conn in connections), return_exceptions=True)
        await self._session.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._session.closed

    async def metadata(self) -> dict[str, Any]:
        """The server's ``GET /metadata`` answer (looked up once; fetched now if disabled).

        Limited by the client's ``timeout`` (``client.timeout``).
        """
        return await within(self._metadata(), self._config.timeout, "GET /metadata")

    async def _metadata(self) -> dict[str, Any]:
        await self._session.ensure_metadata()
        if self._session.metadata is not None:
            return self._session.metadata
        answer = await self._session.manager("GET", "/metadata")
        if not isinstance(answer, dict):
            raise ActorError.client("invalid_response", "GET /metadata answered no object")
        return answer

    # MARK: handles

    def get(self, name: str, key: KeyArg = None, *, params: Any = None) -> ActorHandle:
        """A handle on the existing actor ``(name, key)``; calls fail with ``actor/not_found``
        (after ~2.4 s of retries) when there is none. Sends nothing until used."""
        query = GetQuery(_check_name(name), normalize_key(key))
        return ActorHandle(self, query, params=params)

    def get_or_create(
        self,
        name: str,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> ActorHandle:
        """A handle on the actor ``(name, key)``, created with ``input`` on first use.

        Sends nothing until used. ``input`` is CBOR-encoded now: a value that cannot be
        encoded raises EncodeError, one larger than ``max_input_size`` bytes raises
        ``client.input_too_large``.
        """
        input_cbor = None if input is None else encode_input(input)
        limit = self._config.max_input_size
        if input_cbor is not None and len(input_cbor) > limit:
            raise ActorError.client(
                "input_too_large",
                f"input is {len(input_cbor)} bytes encoded, more than max_input_size ({limit})",
                metadata={"size": len(input_cbor), "max": limit},
            )
        query = GetOrCreateQuery(_check_name(name), normalize_key(key), input_cbor, region)
        return ActorHandle(self, query, params=params)

    async def create(
        self,
        name: str,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> ActorHandle:
        """Create a new actor (``POST /actors``) and return a handle on its id.

        Limited by the client's ``timeout`` (``client.timeout``).
        """
        name = _check_name(name)
        parts = normalize_key(key)
        body: dict[str, Any] = {}
        if region is not None:
            body["datacenter"] = region
        body["name"] = name
        body["runner_name_selector"] = self._config.pool
        body["key"] = serialize_key(parts)
        if input is not None:
            body["input"] = b64_std(encode_input(input))
        body["crash_policy"] = CRASH_POLICY
        operation = f"create {name}({list(parts)!r})"
        answer = await within(
            self._session.manager("POST", "/actors", body=body), self._config.timeout, operation
        )
        actor_id = actor_id_of(answer, "POST /actors")
        return ActorHandle(self, ForIdQuery(name, actor_id), params=params)

    def get_for_id(self, name: str, actor_id: str, *, params: Any = None) -> ActorHandle:
        """A handle on the actor with id ``actor_id`` (the direct gateway form)."""
        if not isinstance(actor_id, str) or not actor_id:
            raise TypeError("actor_id must be a non-empty str")
        return ActorHandle(self, ForIdQuery(_check_name(name), actor_id), params=params)

    def __getattr__(self, name: str) -> ActorAccessor:
        guard_client_method(self, name)
        return ActorAccessor(self, name)
