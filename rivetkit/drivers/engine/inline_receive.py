"""Handing the engine's binary messages to the envoy as they are parsed.

``websockets`` queues each received message for ``recv()``: the envoy's receive task then
wakes up (one more event-loop step per message) to take it. The envoy session needs no
queue: every message is decoded and handled at once (commands, tunnel messages and KV
answers only start tasks or resolve futures). :class:`InlineClientConnection` calls its
``on_binary`` with each complete binary message while ``websockets`` parses the socket's
data, in the transport's ``data_received``, and queues for ``recv()`` only what
``on_binary`` declines (it returns False: a frame that does not decode, which the receive
loop then decodes again to report it as before), anything but a complete binary message,
and whatever arrives while earlier messages are still queued (so order is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

__all__ = ["InlineClientConnection"]


class InlineClientConnection(ClientConnection):
    """A client connection delivering complete binary messages to :attr:`on_binary`."""

    #: Takes a binary message as it is parsed (True) or declines it (False: queued for
    #: ``recv()``, and inline delivery stops); None: every message is queued.
    on_binary: Callable[[bytes], bool] | None = None

    def process_event(self, event: Event) -> None:
        """Deliver a complete binary message inline when nothing is queued before it."""
        on_binary = self.on_binary
        if (
            on_binary is not None
            and type(event) is Frame
            and event.opcode is Opcode.BINARY
            and event.fin
            and not len(self.recv_messages.frames)
        ):
            data = event.data
            if on_binary(data if type(data) is bytes else bytes(data)):
                return
            self.on_binary = None
        super().process_event(event)

    def fail(self, code: int, reason: str) -> None:
        """Stop inline delivery and close the connection with ``code`` and ``reason`` (the
        receive loop then ends as after any close)."""
        self.on_binary = None
        task = asyncio.get_running_loop().create_task(self._close_quietly(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def _close_quietly(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.close(code, reason), 2)


_closing: set[asyncio.Task[None]] = set()
