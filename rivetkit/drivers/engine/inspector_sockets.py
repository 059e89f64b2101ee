"""Inspector sockets that outlive their actor's sleep through the engine's gateway.

The dashboard keeps one inspector socket (``/inspector/connect``) open per actor it shows and
reconnects it as soon as it closes; a reconnect goes through the gateway, which wakes a
sleeping actor. So the socket must not close when its actor sleeps: it is offered to the
gateway as hibernatable (``WebSocketOpen{canHibernate: true}``), like a ``/connect`` socket,
but it is no connection (it does not keep the actor awake, and nothing of it is stored in
the actor's KV):

* every message from the dashboard is acknowledged at once (the gateway drops a
  hibernatable request whose messages stay unacknowledged for 30 s);
* when the actor stops, the socket is detached without a close and remembered here, in
  memory (its request, for the token check, and its message indexes);
* when the gateway starts the actor again and lists the socket among the ones it kept (a
  message from the dashboard woke it), the socket is opened again and a new inspector session
  runs on it: ``Init`` again, then the message that woke the actor is delivered and answered.

A socket of another envoy process (this one restarted) is not remembered: the tunnel closes
it as any kept socket no record claims, and the dashboard reconnects. At most
:data:`MAX_KEPT` sockets are remembered (a socket the dashboard closed while its actor slept
stays remembered until then).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from rivetkit.dispatch.http import Request
from rivetkit.protocol.envoy_protocol import MessageId, ToRivetWebSocketOpen

from .tunnel_websocket import TunnelWebSocket

if TYPE_CHECKING:
    from rivetkit.drivers.engine.tunnel import Tunnel

__all__ = ["MAX_KEPT", "PATH", "InspectorSocket", "KeptInspectors"]

#: The path (relative to the actor) of the inspector's WebSocket.
PATH = "/inspector/connect"
#: Most detached inspector sockets remembered (the oldest is forgotten first).
MAX_KEPT: Final = 10_000


class InspectorSocket(TunnelWebSocket):
    """A tunnel socket serving the inspector: hibernatable, every message acknowledged."""

    __slots__ = ("request",)

    def __init__(self, tunnel: Tunnel, message_id: MessageId, actor_id: str) -> None:
        super().__init__(tunnel, message_id, actor_id)
        #: The upgrade request (path relative to the actor), kept to run it again on a wake.
        self.request: Request | None = None

    def on_message(self, data: bytes, binary: bool, index: int = 0) -> None:
        """Take the message, then acknowledge it (nothing is stored: there is nothing to
        replay to a new generation but what the dashboard sends next)."""
        super().on_message(data, binary, index)
        if self.can_hibernate and not self.closed:
            self.ack(self._last_in)


class KeptInspectors:
    """The inspector sockets detached from stopped actors, by gateway id + request id."""

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        # key -> (actor id, upgrade request, last message index in, next index out)
        self._kept: dict[bytes, tuple[str, Request, int, int]] = {}

    def detached(self, key: bytes, socket: TunnelWebSocket) -> None:
        """``socket`` was detached (its actor stopped): remember it if it is an inspector's."""
        if isinstance(socket, InspectorSocket) and socket.request is not None:
            kept = self._kept
            kept.pop(key, None)
            kept[key] = (socket.actor_id, socket.request, socket._last_in, socket._index)
            if len(kept) > MAX_KEPT:  # sockets the dashboard closed while their actor slept
                del kept[next(iter(kept))]

    def restore(self, tunnel: Tunnel, key: bytes, actor_id: str) -> bool:
        """The gateway kept socket ``key`` while ``actor_id`` slept and started the actor
        (``Running`` was sent): if it is a remembered inspector socket, open it again and run
        a new inspector session on it; True when it did."""
        kept = self._kept.pop(key, None)
        dispatcher = tunnel.dispatcher
        if kept is None or kept[0] != actor_id or dispatcher is None:
            return False
        _, request, last_in, index = kept
        socket = InspectorSocket(tunnel, MessageId(key[:4], key[4:], 0), actor_id)
        socket.request = request
        socket.can_hibernate = True
        socket._accepted = True
        socket._last_in = last_in
        socket._index = index
        previous = tunnel._sockets.get(key)
        if previous is not None:
            previous.detach()
        tunnel._sockets[key] = socket
        socket._send(ToRivetWebSocketOpen(True))
        serving = dispatcher.handle_websocket(actor_id, request, socket)
        task = asyncio.get_running_loop().create_task(
            tunnel._serve(key, socket, serving, "(inspector, after a wake)")
        )
        tunnel._socket_tasks.add(task)
        task.add_done_callback(tunnel._socket_tasks.discard)
        return True
