"""Connections of an actor: the WebSocket ones and the ephemeral ones of HTTP requests.

The runtime sees a connection through :class:`Connection`; the transport (a WebSocket in the
server, a tunnel in engine mode, nothing for an ephemeral HTTP connection) plugs in as a
:class:`ConnTransport`.

Life of a connection (``ActorInstance.connect``): preflight (``on_before_connect`` then
``create_conn_state``, bounded together by the sum of their timeouts) → it appears in
``c.conns`` → ``on_connect`` → usable → ``on_disconnect`` once, when either side closes it
(``conn.disconnect(reason)`` from the actor). HTTP actions and queue sends get an ephemeral
connection (no transport) that runs the same hooks and is closed after the request.

A *hibernatable* connection (one given a :class:`Hibernation`: the ``/connect`` WebSockets)
survives its actor's sleep. Its record (``Conn`` v4: params, state, subscriptions, gateway and
request ids, message indexes, request path and headers) is stored at KV ``[2] + conn_id``
when it opens, when it changes (throttled), and when the actor stops; it is deleted when the
connection closes. The process holding the socket keeps it open while the actor sleeps. On the
next wake the instance rebuilds the connection from its record *before* ``on_wake`` and asks
the runtime's ``conn_alive`` callback whether its socket still exists; that callback (set by
the transport holding the sockets) also re-attaches the socket as the restored connection's
transport. Connections whose socket is gone are closed (``on_disconnect`` runs, the record is
deleted) right after the start. Once the actor is started again, a restored connection's
transport that has a ``resumed()`` method is called (soon after, from the event loop): a raw
``on_websocket`` socket starts its handler again there.

Raw ``on_websocket`` sockets hibernate only when the actor's ``can_hibernate_websocket``
option allows it (a bool, or a predicate given the upgrade request); such a socket gets a
connection of its own (preflight and hooks included, as in RivetKit), whose ``c.conn.state``
survives the sleep (see :mod:`rivetkit.dispatch.hibernation`).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

if sys.version_info >= (3, 13):
    from typing import TypeVar
else:  # PEP 696 (TypeVar defaults) before Python 3.13
    from typing_extensions import TypeVar

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


def _intern(text: str) -> str:
    return sys.intern(text) if type(text) is str else text


def new_hibernation_id() -> bytes:
    """A random 4-byte gateway or request id."""
    return os.urandom(4)


class Hibernation:
    """What a hibernatable connection needs to survive its actor's sleep.

    ``gateway_id`` and ``request_id`` (4 bytes each) name the socket at the process that holds
    it (our server in embedded mode, the engine's gateway in engine mode); the message indexes
    count the frames each way so that none is lost or repeated across a wake, as RivetKit
    names them: ``server_message_index`` is the index of the last message the actor received
    from the client (the gateway numbers them 1, 2, ...; the open is 0), and
    ``client_message_index`` counts the messages sent to the client.

    ``ack`` (set by the transport, not stored) is called with the ``server_message_index`` a
    stored record holds, once it is stored: the engine tunnel then acknowledges the messages
    up to it to the gateway, which delivers the unacknowledged ones again after a wake.
    """

    __slots__ = (
        "ack",
        "client_message_index",
        "gateway_id",
        "request_headers",
        "request_id",
        "request_path",
        "server_message_index",
    )

    def __init__(
        self,
        gateway_id: bytes,
        request_id: bytes,
        *,
        request_path: str = "/connect",
        request_headers: dict[str, str] | None = None,
        server_message_index: int = 0,
        client_message_index: int = 0,
    ) -> None:
        if len(gateway_id) != 4 or len(request_id) != 4:
            raise ValueError("gateway_id and request_id are 4 bytes each")
        self.gateway_id = bytes(gateway_id)
        self.request_id = bytes(request_id)
        self.request_path = request_path
        # Interned: the names and most values are the same on every socket of a process.
        self.request_headers = {_intern(k): _intern(v) for k, v in (request_headers or {}).items()}
        self.server_message_index = server_message_index
        self.client_message_index = client_message_index
        self.ack: Callable[[int], None] | None = None


#: The type of a connection's state (``Connection[CS]``, for type checkers only).
CS = TypeVar("CS", default=Any)


class Connection(Generic[CS]):
    """One client connection: params, state, subscriptions and a transport.

    Attributes: ``id``; ``params`` (the connection params the client sent, decoded);
    ``state`` (the value of ``conn_state``/``create_conn_state``: mutate it in actions; it is
    persisted for hibernatable connections); ``subscriptions`` (event names);
    ``hibernatable``; ``hibernation`` (the :class:`Hibernation` info, or None);
    ``disconnected``.
    """

    __slots__ = (
        "__weakref__",
        "disconnected",
        "hibernatable",
        "hibernation",
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
        self.state: CS = cast("CS", None)
        self.subscriptions: set[str] = set()
        self.transport = transport
        self.hibernatable = hibernatable
        self.disconnected = False
        #: The instance the connection belongs to (set once it is open).
        self.owner: ActorInstance | None = None
        #: Where a hibernatable connection's socket lives (None for the others).
        self.hibernation: Hibernation | None = None

    def send(self, event: str, *args: Any) -> None:
        """Send the event ``event`` with ``args`` to this connection's client."""
        if self.transport is not None and not self.disconnected:
            owner = self.owner
            schemas = None if owner is None else owner.definition.schemas
            if schemas is not None and schemas.events:
                self.transport.send_event(event, schemas.event_args(event, args))
                return
            self.transport.send_event(event, list(args))

    async def disconnect(self, reason: str | None = None) -> None:
        """Close this connection from the actor's side (``on_disconnect`` runs)."""
        if self.owner is not None:
            await self.owner.disconnect(self, reason)

    def subscribe(self, event: str) -> None:
        """Subscribe to ``event`` (idempotent: clients re-send subscriptions on reconnect).

        This is the raw operation: it skips the event's ``can_subscribe`` gate, which a
        client's request goes through (``ActorInstance.subscribe``).
        """
        self.subscriptions.add(event)

    def unsubscribe(self, event: str) -> None:
        """Stop receiving ``event``."""
        self.subscriptions.discard(event)

    def __repr__(self) -> str:
        return f"Connection({self.id!r})"
