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

The engine's messages are single unmasked binary frames, so :meth:`data_received` also
finds them in the socket's data itself (:meth:`InlineClientConnection._scan`) instead of
running ``websockets``' frame parser (a generator per frame and per read) on each: only
while that parser waits for the first byte of a frame, with nothing buffered, the
connection open and no fragmented message in progress. Every other frame (control frames,
text, fragments, a frame with reserved bits or a mask, one over ``max_size``) is handed to
``websockets`` whole, so its parser stays at a frame boundary and handles it exactly as
before; a frame's start without its end is kept until the rest arrives (up to
:data:`KEEP_PARTIAL` bytes; beyond, the rest of the data goes to the parser, as does
everything while the parser is inside a frame). Under ``websockets``' debug logging every
frame goes through its parser (which logs it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State
from websockets.streams import StreamReader

__all__ = ["KEEP_PARTIAL", "InlineClientConnection"]

#: Largest frame whose start is kept here until its end arrives; a larger one is handed to
#: ``websockets``' parser (which buffers without copying the whole each time).
KEEP_PARTIAL = 1 << 16
#: The parser's wait for the next frame's first byte (``Protocol.parse`` -> ``at_eof``).
_AT_EOF = StreamReader.at_eof.__code__
#: First byte of a final, unfragmented binary frame with no reserved bits.
_FINAL_BINARY = 0x82


class InlineClientConnection(ClientConnection):
    """A client connection delivering complete binary messages to :attr:`on_binary`."""

    #: Takes a binary message as it is parsed (True) or declines it (False: queued for
    #: ``recv()``, and inline delivery stops); None: every message is queued.
    on_binary: Callable[[bytes], bool] | None = None
    #: Whether :meth:`data_received` finds binary frames itself (tests turn it off to
    #: compare with ``websockets``' parser).
    scan_frames: bool = True
    #: Called first on every read (the envoy sets ``TCP_QUICKACK`` again there: see
    #: quickack.py); None: nothing.
    before_read: Callable[[], None] | None = None
    #: The start of a frame whose end has not arrived (the parser has not seen it).
    _partial: bytes = b""

    def data_received(self, data: bytes) -> None:
        """Socket data: complete binary frames straight to :attr:`on_binary` when the
        parser is between frames; everything else to ``websockets``."""
        before_read = self.before_read
        if before_read is not None:
            before_read()
        partial = self._partial
        if partial:
            self._partial = b""
            self._scan(partial + data)
        elif self.on_binary is not None and self.scan_frames and self._between_frames():
            self._scan(data)
        else:
            super().data_received(data)

    def eof_received(self) -> None:
        """The end of the stream: a kept partial frame goes to the parser first."""
        partial = self._partial
        if partial:
            self._partial = b""
            super().data_received(partial)
        super().eof_received()

    def _between_frames(self) -> bool:
        """Whether ``websockets``' parser waits for a new frame with nothing buffered, on
        an open connection, outside a fragmented message, without debug logging."""
        protocol = self.protocol
        if protocol.state is not State.OPEN or protocol.current_size is not None or self.debug:
            return False
        parser: Any = protocol.parser
        inner = parser.gi_yieldfrom
        while inner is not None:
            parser = inner
            inner = parser.gi_yieldfrom
        return parser.gi_code is _AT_EOF

    def _scan(self, data: bytes) -> None:
        """Deliver the complete frames of ``data`` (which starts at a frame boundary)."""
        protocol = self.protocol
        limit = protocol.max_message_size
        fragment_limit = protocol.max_fragment_size
        if fragment_limit is not None and (limit is None or fragment_limit < limit):
            limit = fragment_limit
        size = len(data)
        pos = 0
        while size - pos >= 2:
            second = data[pos + 1]
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if second & 0x80 or (end > size and length > KEEP_PARTIAL):
                break  # a masked frame (an error) or a large one: the parser's
            if end > size:
                self._partial = data[pos:]
                return
            on_binary = self.on_binary
            if (
                data[pos] == _FINAL_BINARY
                and on_binary is not None
                and (limit is None or length <= limit)
                and protocol.state is State.OPEN
                and not len(self.recv_messages.frames)
            ):
                if on_binary(data[start:end]):
                    pos = end
                    continue
                self.on_binary = None  # declined: queued for recv() by the parser
            super().data_received(data[pos:end])
            pos = end
            if not self._between_frames():
                break
        if pos < size:
            super().data_received(data[pos:] if pos else data)

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
