"""Connections of an actor: the WebSocket ones and the ephemeral ones of HTTP requests.

The runtime sees a connection through :class:`Connection`; the transport (a WebSocket in the
server, a tunnel in engine mode, nothing for an ephemeral HTTP connection) plugs in as a
:class:`ConnTransport`.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance


class ConnTransport(Protocol):
    """How events reach a connection's client."""

    def send_event(self, name: str, args: list[Any]) -> None:
        """Queue the event ``name`` with ``args`` for the client (never blocks)."""
        ...

    def close(self, reason: str | None) -> None:
        """Close the connection's socket (server side)."""
        ...


def new_conn_id() -> str:
    """A fresh connection id (UUID-like random hex)."""
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


class Connection:
    """One client connection: params, state, subscriptions and a transport."""

    __slots__ = (
        "__weakref__",
        "disconnected",
        "hibernatable",
        "id",
        "owner",
        "params",
        "state",
        "subscriptions",
        "transport",
    )

    def __init__(
        self,
        params: Any = None,
        *,
        conn_id: str | None = None,
        transport: ConnTransport | None = None,
        hibernatable: bool = False,
    ) -> None:
        self.id = conn_id or new_conn_id()
        self.params = params
        self.state: Any = None
        self.subscriptions: set[str] = set()
        self.transport = transport
        self.hibernatable = hibernatable
        self.disconnected = False
        #: The instance the connection belongs to (set once it is open).
        self.owner: ActorInstance | None = None

    def send(self, event: str, *args: Any) -> None:
        """Send the event ``event`` with ``args`` to this connection's client."""
        if self.transport is not None and not self.disconnected:
            self.transport.send_event(event, list(args))

    async def disconnect(self, reason: str | None = None) -> None:
        """Close this connection from the actor's side (``on_disconnect`` runs)."""
        if self.owner is not None:
            await self.owner.disconnect(self, reason)

    def subscribe(self, event: str) -> None:
        """Subscribe to ``event`` (idempotent: clients re-send subscriptions on reconnect)."""
        self.subscriptions.add(event)

    def unsubscribe(self, event: str) -> None:
        """Stop receiving ``event``."""
        self.subscriptions.discard(event)

    def __repr__(self) -> str:
        return f"Connection({self.id!r})"
