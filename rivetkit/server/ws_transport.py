"""The coalescing transport of our WebSocket protocol (:mod:`rivetkit.server.ws_fastpath`).

Data frames queued in one event-loop iteration leave in one ``write`` per socket at the end
of that iteration, all sockets of the loop flushed by one callback (:class:`Flusher`): a
broadcast queues a frame on thousands of sockets.

:class:`CoalescingTransport` spells out the whole ``asyncio.Transport`` API, each method
forwarding to the real transport, instead of a ``__getattr__``: a class with ``__getattr__``
makes every attribute read on its instances go through a slower hook that CPython cannot
specialize, and the broadcast path reads this object's fields once per socket.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

__all__ = ["CoalescingTransport", "Flusher", "flusher_of"]


class Flusher:
    """Flushes the transports of one event loop that queued frames in this iteration: one
    ``call_soon`` per iteration for all of them (a broadcast queues a frame on thousands of
    sockets), not one per transport."""

    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[CoalescingTransport] = []
        self._scheduled = False

    def add(self, transport: CoalescingTransport) -> None:
        """Flush ``transport`` at the end of this loop iteration."""
        self._dirty.append(transport)
        if not self._scheduled:
            self._scheduled = True
            transport._loop.call_soon(self.run, transport._loop)

    def run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write what each transport added since the last run queued (the loop calls it)."""
        self._scheduled = False
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = []
        for transport in dirty:
            # transport.flush() inline: the frames of thousands of sockets (a broadcast).
            transport._scheduled = False
            pending = transport._pending
            if not pending:
                continue
            try:
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                transport.pending_size = 0
                real = transport.transport
                if not real.is_closing():
                    real.write(data)
            except Exception as exc:  # one transport's failure must not stall the others
                loop.call_exception_handler(
                    {"message": "flushing a WebSocket transport failed", "exception": exc}
                )


# One flusher per event loop (servers run in several threads in tests and embeddings).
_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher_of(loop: asyncio.AbstractEventLoop) -> Flusher:
    """The :class:`Flusher` of ``loop`` (made on first use)."""
    flusher = _FLUSHERS.get(loop)
    if flusher is None:
        flusher = _FLUSHERS.setdefault(loop, Flusher())
    return flusher


class CoalescingTransport:
    """The connection's transport, coalescing the data frames of one loop iteration.

    :meth:`queue` adds bytes to send at the end of the iteration (the loop's
    :class:`Flusher`); every other write (handshake, pong, close frame) first sends what is
    queued, in the same syscall, so the bytes keep their order. The other methods are the
    real transport's.
    """

    __slots__ = ("_flusher", "_loop", "_pending", "_scheduled", "pending_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._flusher = flusher_of(loop)
        self._pending: list[bytes] = []
        self._scheduled = False
        #: Payload bytes queued for the end of this iteration (see ``ws_budget``).
        self.pending_size = 0

    def queue(self, frame: bytes, size: int) -> None:
        """Queue a whole frame (head and payload) whose payload is ``size`` bytes."""
        self._pending.append(frame)
        self.pending_size += size
        if not self._scheduled:
            self._scheduled = True
            self._flusher.add(self)

    def flush(self) -> None:
        """Write the queued frames now."""
        self._scheduled = False
        pending = self._pending
        if pending:
            data = b"".join(pending)
            pending.clear()
            self.pending_size = 0
            if not self.transport.is_closing():
                self.transport.write(data)

    def discard(self) -> None:
        """Drop the queued frames (a client disconnected for reading too slowly)."""
        self._pending.clear()
        self.pending_size = 0

    def write(self, data: bytes) -> None:
        """Write ``data`` after the queued frames, now."""
        pending = self._pending
        if pending:
            pending.append(data)
            self.flush()
        else:
            self.transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        """:meth:`write` each buffer of ``list_of_data``, in one go."""
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        """Write the queued frames, then close the real transport."""
        self.flush()
        self.transport.close()

    # -- the real transport's ---------------------------------------------------------------

    def is_closing(self) -> bool:
        """Whether the real transport is closing or closed."""
        return self.transport.is_closing()

    def abort(self) -> None:
        """Close the real transport at once, dropping what it buffers."""
        self.transport.abort()

    def pause_reading(self) -> None:
        """Pause the real transport's reading."""
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume the real transport's reading."""
        self.transport.resume_reading()

    def is_reading(self) -> bool:
        """Whether the real transport is reading."""
        return self.transport.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The real transport's ``name`` information."""
        return self.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        """Bytes the real transport holds (not those queued for this iteration)."""
        return self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The real transport's write buffer limits."""
        return self.transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the real transport's write buffer limits."""
        self.transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        """Whether the real transport can half-close."""
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        """Write the queued frames, then half-close the real transport."""
        self.flush()
        self.transport.write_eof()

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The real transport's protocol."""
        return self.transport.get_protocol()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the real transport's protocol."""
        self.transport.set_protocol(protocol)
