"""A WebSocket through the engine's gateway (see :mod:`.tunnel`): dispatch's plain WebSocket
over tunnel messages, with the hibernation bookkeeping of its message indexes."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from rivetkit.protocol.envoy_protocol import (
    MessageId,
    ToRivetTunnelMessageKind,
    ToRivetWebSocketClose,
    ToRivetWebSocketMessage,
    ToRivetWebSocketMessageAck,
    ToRivetWebSocketOpen,
)
from rivetkit.runtime.connection import Hibernation

if TYPE_CHECKING:
    from .tunnel import Tunnel

__all__ = ["TunnelWebSocket"]

logger = logging.getLogger("rivetkit.engine")


class TunnelWebSocket:
    """A WebSocket through the engine's gateway, as dispatch's plain WebSocket."""

    __slots__ = (
        "_accepted",
        "_closed",
        "_held",
        "_incoming",
        "_index",
        "_info",
        "_last_in",
        "_message_id",
        "_remote_closed",
        "_tunnel",
        "_waiter",
        "actor_id",
        "can_hibernate",
        "detached",
    )

    def __init__(self, tunnel: Tunnel, message_id: MessageId, actor_id: str) -> None:
        self._tunnel = tunnel
        self._message_id = message_id
        self.actor_id = actor_id
        self._accepted = False
        self._closed = False
        self._remote_closed = False
        self._index = 0
        self._incoming: deque[str | bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        #: Offered as hibernatable to the gateway (``WebSocketOpen{canHibernate}``).
        self.can_hibernate = False
        #: Index of the last message taken from the gateway (the open is 0).
        self._last_in = 0
        #: Dropped without a close: its actor stopped and the gateway keeps the socket.
        self.detached = False
        #: The hibernation record of its connection (hibernatable sockets).
        self._info: Hibernation | None = None
        #: Outgoing messages held back (see :meth:`hold`), in order; None: not held.
        self._held: list[ToRivetTunnelMessageKind] | None = None

    @property
    def redelivers(self) -> bool:
        """Whether the gateway delivers an unacknowledged message again (to the next
        generation of the actor): true of hibernatable sockets."""
        return self.can_hibernate

    def hibernation(self, path: str, headers: dict[str, str]) -> Hibernation | None:
        """The hibernation record of this socket (dispatch asks), or None when it does not
        hibernate; the record's ``ack`` acknowledges stored messages to the gateway."""
        if not self.can_hibernate:
            return None
        mid = self._message_id
        info = Hibernation(
            mid.gateway_id, mid.request_id, request_path=path, request_headers=headers
        )
        info.server_message_index = self._last_in
        info.ack = self.ack
        self._info = info
        return info

    def reopen(self, index: int) -> None:
        """The gateway opens this hibernated socket again (after the actor's wake, with a
        new numbering starting at ``index``): answer ``WebSocketOpen{canHibernate: true}``
        and keep serving the same connection."""
        self._last_in = index & 0xFFFF
        info = self._info
        if info is not None:
            info.server_message_index = self._last_in
        held, self._held = self._held, None
        self._send(ToRivetWebSocketOpen(True))
        for kind in held or ():
            self._send(kind)

    def hold(self, seconds: float) -> None:
        """Hold back what is sent on this restored socket for ``seconds``, or until the
        gateway sends a message on it (which it does only once it resumed the socket).

        The engine 2.3.19 gateway drops what reaches a kept socket while it switches that
        socket from the stopped generation to the new one (its hibernation task can end,
        the actor being up again, with our messages still in its queue); that switch ends
        within ~128 ms plus a few database operations of the gateway seeing the stop."""
        if self._held is None:
            self._held = []
            asyncio.get_running_loop().call_later(seconds, self.release)

    def release(self) -> None:
        """Send the held messages (in order) and stop holding."""
        held = self._held
        if held is None:
            return
        self._held = None
        for kind in held:
            self._send(kind)

    def ack(self, index: int) -> None:
        """``WebSocketMessageAck{index}``: the messages up to ``index`` are stored."""
        self._send(ToRivetWebSocketMessageAck(index & 0xFFFF))

    def detach(self) -> None:
        """Forget the socket without closing it (its actor stopped; the gateway keeps it)."""
        if not self.detached:
            self.detached = True
            self._held = None
            self._closed = True
            self._push(None)

    @property
    def closed(self) -> bool:
        """True once either side closed the socket."""
        return self._closed

    def _send(self, kind: ToRivetTunnelMessageKind) -> None:
        held = self._held
        if held is not None:
            held.append(kind)
            return
        index = self._index
        self._index = (index + 1) & 0xFFFF
        mid = self._message_id
        self._tunnel.send(MessageId(mid.gateway_id, mid.request_id, index), kind)

    # -- dispatch's WebSocket protocol -----------------------------------------------------

    async def accept(self, subprotocol: str | None = None) -> None:
        """Open the socket (the gateway answers the client's handshake)."""
        if self._accepted or self._closed:
            return
        self._accepted = True
        self._send(ToRivetWebSocketOpen(self.can_hibernate))

    async def receive(self) -> str | bytes | None:
        """The next message, or None once the socket is closed."""
        incoming = self._incoming
        while not incoming:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = incoming.popleft()
        if message is None:
            self._closed = True
        return message

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; a no-op once closed."""
        if self._closed:
            return
        if isinstance(data, str):
            self._send(ToRivetWebSocketMessage(data.encode("utf-8", "surrogatepass"), False))
        else:
            self._send(ToRivetWebSocketMessage(bytes(data), True))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent; a no-op once detached)."""
        if self._closed:
            return
        self._closed = True
        if not self._remote_closed:
            self._send(ToRivetWebSocketClose(code, reason or None, False))
        self._push(None)

    # -- fed by the tunnel -----------------------------------------------------------------

    def _push(self, message: str | bytes | None) -> None:
        self._incoming.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message(self, data: bytes, binary: bool, index: int = 0) -> None:
        if self._closed:
            return
        if self._held is not None:  # the gateway resumed the socket
            self.release()
        if self.can_hibernate:  # the gateway's indexes: no repeat, no gap
            last = self._last_in
            if (last - index) & 0xFFFF < 0x8000:
                logger.debug("tunnel: dropped re-delivered message %d (last %d)", index, last)
                return
            if index != (last + 1) & 0xFFFF:
                logger.warning("tunnel: message %d after %d: closing the socket", index, last)
                self._closed = True
                self._send(ToRivetWebSocketClose(1008, "ws.message_index_skip", False))
                self._push(None)
                return
            self._last_in = index
        if binary:
            self._push(data)
        else:
            self._push(data.decode("utf-8", "replace"))

    def on_close(self) -> None:
        self._remote_closed = True
        self._push(None)
