"""The in-process client of a :class:`~rivetkit.server.RivetApp`: ``c.client()`` in its actors
and ``app.client()`` in host code.

One :class:`LocalClient` per app makes, on first use, a :class:`rivetkit.client.Client` wired
to the app through :class:`~rivetkit.server.inprocess.InProcessServer`: no socket, no HTTP
server, but every request goes through the app (gateway, dispatch) as a remote one would, and
every value through the CBOR encoding (bytes stay bytes; what cannot be encoded fails as it
would over the network). The in-process transport runs the app in the caller's task, so the
call chain of :mod:`rivetkit.runtime.call_chain` follows an HTTP call by itself; WebSocket
connections start with no chain (a connection outlives the action that opened it).

The default client (no options) is shared: the same object for every actor and for
``app.client()``. ``app.client(**options)`` with options makes a further client (its own
settings, e.g. ``timeout``) on the same in-process server. All are closed when the app shuts
down, after the runtime has stopped (so actors may still call others in ``on_sleep``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from rivetkit.client import Client
from rivetkit.runtime.call_chain import CALL_CHAIN
from rivetkit.server.inprocess import InProcessServer

if TYPE_CHECKING:
    from rivetkit.server.app import RivetApp

__all__ = ["LOCAL_ENCODING", "LocalClient"]

#: The wire encoding of in-process calls.
LOCAL_ENCODING: Final = "cbor"


class LocalClient:
    """Makes and closes the in-process clients of one app."""

    def __init__(self, app: RivetApp) -> None:
        self._app = app
        self._server: InProcessServer | None = None
        self._shared: Client | None = None
        self._others: list[Client] = []

    def _server_of(self) -> InProcessServer:
        if self._server is None:
            self._server = InProcessServer(self._app)
        return self._server

    def _make(self, **options: Any) -> Client:
        server = self._server_of()
        options.setdefault("encoding", LOCAL_ENCODING)
        # No /metadata round trip: the app is known to be a RivetKit server.
        options.setdefault("disable_metadata_lookup", True)

        async def ws_connect(uri: str, **kwargs: Any) -> Any:
            # The socket's task would copy the opener's context: a connection kept open
            # outlives the call that opened it, so its actions start with no call chain.
            token = CALL_CHAIN.set(())
            try:
                return await server.ws_connect(uri, **kwargs)
            finally:
                CALL_CHAIN.reset(token)

        return Client(
            server.endpoint, transport=server.transport(), ws_connect=ws_connect, **options
        )

    def shared(self) -> Client:
        """The shared client (made on first use)."""
        client = self._shared
        if client is None:
            client = self._shared = self._make()
        return client

    def client(self, **options: Any) -> Client:
        """The shared client without options, else a new one with them."""
        if not options:
            return self.shared()
        client = self._make(**options)
        self._others.append(client)
        return client

    async def aclose(self) -> None:
        """Close every client made here and the in-process server's sockets."""
        clients = [*self._others, *([self._shared] if self._shared is not None else [])]
        self._others.clear()
        self._shared = None
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        server, self._server = self._server, None
        if server is not None:
            await server.aclose()
