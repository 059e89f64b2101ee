"""The bounded outgoing buffer of a WebSocket (``ws_max_buffer`` of
:class:`~rivetkit.server.limits.ServerLimits`), as a mixin of our WebSocket protocol
(:func:`rivetkit.server.ws_fastpath.ws_protocol`).

What a connection has waiting to go out is counted in bytes: the transport's write buffer,
the frames coalesced for the end of this loop iteration, and the frames of senders waiting
for the transport to drain. Frames that need no waiting (events and replies of ``/connect``
sockets) go straight to the transport while the total stays under the budget; awaited sends
(raw ``on_websocket`` sockets, the inspector) wait for the transport to drain as before. A
frame that would take the total over the budget is dropped and the client is disconnected:
its queued frames are discarded, a close frame (code 1008, reason ``ws.send_buffer_full``,
a ``group.code`` as the other close reasons) follows what the transport already holds, and
the connection is aborted if the client has not finished closing within
:data:`CLOSE_GRACE` seconds. Such disconnects are counted
(``rivetkit_server_slow_clients_disconnected_total``). The app sees the socket closed, as
when a client leaves: a ``/connect`` connection runs ``on_disconnect``; the client may
connect again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from rivetkit.metrics.server import SERVER_COUNTERS
from rivetkit.server.http_guard import limits_of

__all__ = ["CLOSE_CODE", "CLOSE_GRACE", "CLOSE_REASON", "SendBudget"]

logger = logging.getLogger("rivetkit.server")

#: Close code of a client disconnected for reading too slowly (policy violation).
CLOSE_CODE: Final = 1008
#: Its close reason.
CLOSE_REASON: Final = "ws.send_buffer_full"
#: Seconds a disconnected slow client gets to read up to the close frame and answer it.
CLOSE_GRACE: Final = 5.0

_last_warning = [-10.0]


class SendBudget:
    """Mixin (before uvicorn's ``WebSocketsSansIOProtocol`` in the bases) bounding what a
    connection has waiting to be sent. The protocol's transport must be the coalescing
    ``_Transport`` of :mod:`rivetkit.server.ws_fastpath` (its ``pending_size``)."""

    _waiting = 0  # bytes of senders waiting for the transport to drain
    _abort_timer: asyncio.TimerHandle | None = None

    # Attributes of uvicorn's protocol.
    config: Any
    loop: asyncio.AbstractEventLoop
    transport: Any
    conn: Any
    queue: Any
    writable: asyncio.Event
    close_sent: bool
    disconnected: bool
    read_paused: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The budget in bytes.
        self.max_buffer = limits_of(self.config).ws_max_buffer
        #: True once the connection was closed for going over it.
        self.overflowed = False

    def outgoing(self) -> int:
        """Bytes waiting to be sent on this connection."""
        transport = self.transport
        return int(transport.get_write_buffer_size() + transport.pending_size + self._waiting)

    def admit(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes may be queued now; when not, the connection is
        closed (:meth:`overflow`) and the frame must be dropped. Cheap while the transport
        is writable and this iteration's frames are small (the usual case)."""
        if (
            self.writable.is_set()
            and self.transport.pending_size + size <= self.max_buffer
            and size <= self.max_buffer
        ):
            return True
        if self.outgoing() + size <= self.max_buffer:
            return True
        self.overflow()
        return False

    async def wait_writable(self, size: int) -> bool:
        """Wait (counting ``size`` bytes as waiting) until the transport drains; False, with
        the connection closed, when waiting would take it over its budget."""
        if not self.admit(size):
            return False
        self._waiting += size
        try:
            await self.writable.wait()
        finally:
            self._waiting -= size
        return True

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and not self.writable.is_set():
            data = message.get("bytes")
            if data is None:
                data = message.get("text") or ""
            if not await self.wait_writable(len(data)):
                return  # dropped: the connection is closing
        await super().send(message)  # type: ignore[misc]

    def overflow(self) -> None:
        """Disconnect the client: discard what is queued here, send the close frame after
        what the transport holds, abort after :data:`CLOSE_GRACE` seconds."""
        if self.overflowed or self.close_sent or self.disconnected:
            return
        self.overflowed = True
        SERVER_COUNTERS.slow_clients_disconnected += 1
        now = time.monotonic()
        if now - _last_warning[0] >= 1.0:
            _last_warning[0] = now
            logger.warning(
                "disconnecting a WebSocket client that reads too slowly (over %d bytes "
                "waiting to be sent; --ws-max-buffer)",
                self.max_buffer,
            )
        transport = self.transport
        transport.discard()
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": CLOSE_CODE, "reason": CLOSE_REASON}
        )
        try:
            self.conn.send_close(CLOSE_CODE, CLOSE_REASON)
            transport.write(b"".join(self.conn.data_to_send()))
        except Exception as exc:  # pragma: no cover - websockets refused: just abort
            logger.debug("writing the close frame failed: %r", exc)
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()
        self._abort_timer = self.loop.call_later(CLOSE_GRACE, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        timer = self._abort_timer
        if timer is not None:
            timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)  # type: ignore[misc]
