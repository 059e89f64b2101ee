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

import contextlib
from typing import TYPE_CHECKING, Final

import httpx

from rivetkit.client import Client
from rivetkit.dispatch.router import Dispatcher
from rivetkit.runtime.call_chain import CHAIN_HEADER, enter_from_header, header_value

if TYPE_CHECKING:
    from rivetkit.dispatch.http import Request, Response

__all__ = ["ChainDispatcher", "ChainTransport", "EngineActorClient"]

#: The wire encoding of the actors' calls.
ENCODING: Final = "cbor"


class ChainTransport(httpx.AsyncHTTPTransport):
    """An httpx transport adding the current call chain to each request as a header."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` with the chain header (when the chain is not empty)."""
        value = header_value()
        if value is not None:
            request.headers[CHAIN_HEADER] = value
        return await super().handle_async_request(request)


class ChainDispatcher(Dispatcher):
    """The tunnel's dispatcher: takes the call chain from the request's header."""

    async def handle_http(self, actor_id: str, request: Request) -> Response:
        """As :meth:`Dispatcher.handle_http`, in the context of the request's call chain
        (each tunnel request runs in its own task, so the chain stays with it)."""
        enter_from_header(request.headers)
        return await super().handle_http(actor_id, request)


class EngineActorClient:
    """Makes and closes the shared client of the actors of one envoy."""

    def __init__(self, endpoint: str, *, namespace: str, token: str | None, pool: str) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.token = token
        self.pool = pool
        self._client: Client | None = None

    def shared(self) -> Client:
        """The shared client (made on first use)."""
        client = self._client
        if client is None:
            client = self._client = Client(
                self.endpoint,
                encoding=ENCODING,
                namespace=self.namespace,
                token=self.token,
                pool=self.pool,
                disable_metadata_lookup=True,
                transport=ChainTransport(),
            )
        return client

    async def aclose(self) -> None:
        """Close the shared client (its connections first)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
