"""The coalescing transport of our WebSocket protocol (:mod:`rivetkit.server.ws_fastpath`).

Data frames queued in one event-loop iteration leave in one ``write`` per socket at the end
of that iteration, all sockets of the loop flushed by one callback (:class:`Flusher`): a
broadcast queues a frame on thousands of sockets.

:class:`CoalescingTransport` spells out the whole ``asyncio.Transport`` API, each method
forwarding to the real transport, instead of a ``__getattr__``: a class with ``__getattr__``
makes every attribute read on its instances go through a slower hook that CPython cannot
specialize, and the broadcast path reads this object's fields once per socket.

A large flush (a broadcast: :data:`SPLIT_AT` sockets or more) is written by two threads: the
loop's own and one helper thread run one :class:`rivetkit.server._sendmany_py.SendJob`, each
taking the next writes until none is left (the compiled twin releases the GIL). Most of a
write to a socket is the kernel's (on loopback it also runs the receiver's TCP input), and on
a machine with two cores or more both threads write at once. The loop waits for the helper before
it goes on, so nothing else writes to those sockets meanwhile. Only plain TCP or Unix
transports whose buffer is empty are written this way (the bytes leave as the transport's own
``write`` would send them); the rest of a short write, and an error, go to the transport's
``write``, which buffers or reports them as always.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.server._sendmany_py import SendJob
else:
    SendJob = _twins.load("_sendmany", "rivetkit.server._sendmany_py").SendJob

__all__ = ["SPLIT_AT", "CoalescingTransport", "Flusher", "flusher_of"]

#: A flush writing to this many sockets or more is shared with the helper thread (below it,
#: waking the helper costs more than it saves).
SPLIT_AT = 128
#: Whether to share large flushes at all (one core: nothing to gain).
SPLIT = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
) > 1


def _direct_types() -> tuple[type, ...]:
    """Transport classes whose socket may be written directly while their buffer is empty:
    plain sockets, never TLS (its transport is another class)."""
    found: list[type] = []
    for module, name in (
        ("asyncio.selector_events", "_SelectorSocketTransport"),
        ("uvloop.loop", "TCPTransport"),
        ("uvloop.loop", "UnixTransport"),
    ):
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # pragma: no cover - another Python or uvloop
            continue
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


_DIRECT_TYPES = _direct_types()


def direct_fd(transport: Any) -> int:
    """The file descriptor :class:`Flusher` may write ``transport``'s data to directly, or -1
    (another kind of transport: TLS, a test's fake...)."""
    if type(transport) not in _DIRECT_TYPES or os.name != "posix":
        return -1
    sock = transport.get_extra_info("socket")
    try:
        fd = sock.fileno()
    except (AttributeError, OSError, ValueError):
        return -1
    return fd if type(fd) is int and fd >= 0 else -1


class _Helper:
    """The one thread of the process that helps with large flushes (any loop's: a flush that
    finds it busy with another loop's makes all of its own writes)."""

    def __init__(self) -> None:
        self._busy = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def start(self, job: SendJob) -> Future[None] | None:
        """Run ``job`` on the helper thread too; None when it is busy."""
        if not self._busy.acquire(blocking=False):
            return None
        try:
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(1, thread_name_prefix="rivetkit-ws-write")
            return pool.submit(job.run)
        except RuntimeError:  # the interpreter is shutting down
            self._busy.release()
            return None

    def finish(self, help: Future[None]) -> None:
        """Wait until the helper thread is done with its part."""
        try:
            help.result()
        finally:
            self._busy.release()

    def forget(self) -> None:
        """In a forked child: the parent's thread is not there."""
        self._busy = threading.Lock()
        self._pool = None


_HELPER = _Helper()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HELPER.forget)


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
        # A large flush: the writes that can be made directly are gathered for one SendJob.
        fds: list[int] | None = None
        datas: list[bytes] = []
        reals: list[Any] = []
        if len(dirty) >= SPLIT_AT and SPLIT:
            fds = []
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
                if real.is_closing():
                    continue
                if (
                    fds is not None
                    and transport._fd >= 0
                    and type(data) is bytes
                    and not real.get_write_buffer_size()
                ):
                    fds.append(transport._fd)
                    datas.append(data)
                    reals.append(real)
                else:
                    real.write(data)
            except Exception as exc:  # one transport's failure must not stall the others
                loop.call_exception_handler(
                    {"message": "flushing a WebSocket transport failed", "exception": exc}
                )
        if fds:
            self._write_shared(loop, fds, datas, reals)

    def _write_shared(
        self, loop: asyncio.AbstractEventLoop, fds: list[int], datas: list[bytes], reals: list[Any]
    ) -> None:
        """Write ``datas[i]`` to ``fds[i]`` (the socket of the empty transport ``reals[i]``)
        on this thread and the helper thread; the rest through each transport's ``write``."""
        count = len(fds)
        job = SendJob(fds, datas)
        help = _HELPER.start(job) if count >= SPLIT_AT else None
        job.run()  # with the helper thread: each takes the next writes until none is left
        if help is not None:
            _HELPER.finish(help)
        left = job.left()
        for k in range(0, len(left), 2):
            i, written = left[k], left[k + 1]
            try:
                # The rest (or all, after EAGAIN or an error the transport then reports).
                reals[i].write(datas[i][written:] if written > 0 else datas[i])
            except Exception as exc:
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

    __slots__ = (
        "_fd",
        "_flusher",
        "_loop",
        "_pending",
        "_scheduled",
        "pending_size",
        "transport",
    )

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        #: The socket :class:`Flusher` may write to directly, or -1 (see :func:`direct_fd`).
        self._fd = direct_fd(transport)
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
