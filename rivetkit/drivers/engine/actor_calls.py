"""``c.client()`` in engine mode: the actors' client, through the engine's gateway.

:class:`EngineActorClient` makes, on first use, one :class:`rivetkit.client.Client` on the
endpoint, namespace, token and pool the envoy uses (CBOR encoding), shared by every actor of
the process and closed when the driver stops. Every call goes through the gateway, also to
an actor living in this process (no in-process shortcut in engine mode: the engine decides
where an actor runs, and the call follows its routing, waking and errors).

The call chain of :mod:`rivetkit.runtime.call_chain` crosses the network in the
``x-rivetkit-call-chain`` header: :class:`ChainTransport` writes it on the actors' HTTP
requests and :class:`ChainDispatcher` reads it back in the task that serves a tunnel
request, so a serial actor refuses a call cycle through any process of the pool. (WebSocket
connections an actor opens do not carry it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx
from websockets.asyncio.client import connect as websockets_connect

from rivetkit.client import Client
from rivetkit.dispatch.router import Dispatcher
from rivetkit.runtime.call_chain import CHAIN_HEADER, enter_from_header, header_value

from .endpoints import Endpoints

if TYPE_CHECKING:
    from rivetkit.dispatch.http import Request, Response

__all__ = [
    "ChainDispatcher",
    "ChainTransport",
    "EngineActorClient",
    "FailoverConnect",
    "FailoverTransport",
]

logger = logging.getLogger("rivetkit.engine")

T = TypeVar("T")

#: The wire encoding of the actors' calls.
ENCODING: Final = "cbor"
#: httpx errors raised before anything of the request was sent.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ChainTransport(httpx.AsyncHTTPTransport):
    """An httpx transport adding the current call chain to each request as a header."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` with the chain header (when the chain is not empty)."""
        value = header_value()
        if value is not None:
            request.headers[CHAIN_HEADER] = value
        return await super().handle_async_request(request)


def _rebase(url: str, origin: str, base: str) -> str:
    """``url`` (made on ``origin``, in http or ws form) on the node ``base`` instead."""
    for scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
        if origin.startswith(scheme) and url.startswith(ws_scheme):
            origin = ws_scheme + origin[len(scheme) :]
            base = base.replace(scheme, ws_scheme, 1)
            break
    if url.startswith(origin):
        return base + url[len(origin) :]
    return url


async def _on_each_node(
    endpoints: Endpoints,
    attempt: Callable[[str], Awaitable[T]],
    not_sent: tuple[type[BaseException], ...],
) -> T:
    """``attempt(node)`` on the current node, then on the next ones (each once) while it
    fails with one of ``not_sent`` (nothing reached the node); the last failure is raised."""
    for remaining in range(len(endpoints) - 1, -1, -1):
        base = endpoints.current
        try:
            return await attempt(base)
        except not_sent as exc:
            if not remaining:
                raise
            following = endpoints.advance(base)
            logger.warning("engine at %s cannot be reached (%r); trying %s", base, exc, following)
    raise AssertionError("unreachable")  # pragma: no cover


class FailoverTransport(ChainTransport):
    """A :class:`ChainTransport` sending each request to the current engine node, and to the
    next ones while the connection cannot be opened.

    :param endpoints: the engine nodes (shared with the envoy)
    :param origin: the URL the client builds its requests on
    """

    def __init__(self, endpoints: Endpoints, origin: str) -> None:
        super().__init__()
        self.endpoints = endpoints
        self.origin = origin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the node in use; on a connection that could not be opened,
        to the next node (each node once)."""
        endpoints = self.endpoints
        original = str(request.url)
        send = super().handle_async_request

        async def attempt(base: str) -> httpx.Response:
            if len(endpoints) > 1:
                request.url = httpx.URL(_rebase(original, self.origin, base))
                request.headers["host"] = request.url.netloc.decode("ascii")
            return await send(request)

        return await _on_each_node(endpoints, attempt, _NOT_SENT)


class FailoverConnect:
    """``websockets.asyncio.client.connect`` on the current engine node, then on the next
    ones while the connection cannot be opened (the ``ws_connect`` of the client)."""

    def __init__(self, endpoints: Endpoints, origin: str) -> None:
        self.endpoints = endpoints
        self.origin = origin

    async def __call__(self, url: str, **options: Any) -> Any:
        """Open the WebSocket ``url`` (made on the origin) on the current node."""

        async def attempt(base: str) -> Any:
            return await websockets_connect(_rebase(url, self.origin, base), **options)

        return await _on_each_node(self.endpoints, attempt, (OSError, asyncio.TimeoutError))


class ChainDispatcher(Dispatcher):
    """The tunnel's dispatcher: takes the call chain from the request's header."""

    async def handle_http(self, actor_id: str, request: Request) -> Response:
        """As :meth:`Dispatcher.handle_http`, in the context of the request's call chain
        (each tunnel request runs in its own task, so the chain stays with it)."""
        enter_from_header(request.headers)
        return await super().handle_http(actor_id, request)


class EngineActorClient:
    """Makes and closes the shared client of the actors of one envoy."""

    def __init__(
        self, endpoint: str | Endpoints, *, namespace: str, token: str | None, pool: str
    ) -> None:
        self.endpoints = endpoint if isinstance(endpoint, Endpoints) else Endpoints(endpoint)
        self.namespace = namespace
        self.token = token
        self.pool = pool
        self._client: Client | None = None

    @property
    def endpoint(self) -> str:
        """The URL of the engine node in use."""
        return self.endpoints.current

    def shared(self) -> Client:
        """The shared client (made on first use)."""
        client = self._client
        if client is None:
            origin = self.endpoints.current
            several = len(self.endpoints) > 1
            client = self._client = Client(
                origin,
                encoding=ENCODING,
                namespace=self.namespace,
                token=self.token,
                pool=self.pool,
                disable_metadata_lookup=True,
                transport=FailoverTransport(self.endpoints, origin)
                if several
                else ChainTransport(),
                ws_connect=FailoverConnect(self.endpoints, origin) if several else None,
            )
        return client

    async def aclose(self) -> None:
        """Close the shared client (its connections first)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
