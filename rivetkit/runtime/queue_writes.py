"""The coalesced KV write of an actor's queue (:class:`QueueWriteBatch`).

The writes the queue requests during one turn of the event loop (sends, deletes of received
or completed messages) become one atomic driver write together with the queue metadata as it
is at the end of that turn; the writes of many actors then share the store's group commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from rivetkit.runtime import keys

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

__all__ = ["QueueWriteBatch", "WriteOwner"]

logger = logging.getLogger("rivetkit.actor")


class WriteOwner(Protocol):
    """Where the batch writes: the actor's driver and id (read when the batch is flushed)."""

    driver: Driver
    actor_id: str


class QueueWriteBatch:
    """This loop turn's queue write: puts, deletes, and who waits for its commit.

    ``metadata()`` is called when the batch is flushed; its bytes are written under the queue
    metadata key in the same atomic write.
    """

    __slots__ = ("_callbacks", "_deletes", "_metadata", "_owner", "_puts", "_waiters")

    def __init__(self, owner: WriteOwner, metadata: Callable[[], bytes]) -> None:
        self._owner = owner
        self._metadata = metadata
        self._puts: list[tuple[bytes, bytes]] = []
        self._deletes: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._callbacks: list[Callable[[BaseException | None], None]] = []

    def add(
        self,
        puts: Iterable[tuple[bytes, bytes]],
        deletes: Iterable[bytes],
        on_done: Callable[[BaseException | None], None],
    ) -> asyncio.Future[None]:
        """Add ``puts``/``deletes`` to this loop turn's write; a future of its commit.

        The write is submitted at the end of the turn (``call_soon``), in one atomic driver
        write holding every change requested meanwhile plus the metadata as it is then. A
        message's put and its delete never share a write (a message is received only once
        its put committed), so the driver's "deletes, then puts" order is harmless.
        ``on_done(error)`` (None on success) updates the index when the write ends, whatever
        happens to the caller; then each caller's own future resolves (cancelling one caller
        cancels nobody else's wait, and changes nothing in the index).
        """
        loop = asyncio.get_running_loop()
        waiters = self._waiters
        if not waiters:
            loop.call_soon(self._flush)
        done: asyncio.Future[None] = loop.create_future()
        waiters.append(done)
        self._callbacks.append(on_done)
        self._puts.extend(puts)
        self._deletes.extend(deletes)
        return done

    @property
    def pending(self) -> bool:
        """Changes were added whose write has not been submitted yet."""
        return bool(self._waiters)

    def drop_puts(self, gone: Collection[bytes]) -> None:
        """Never write the puts of keys in ``gone`` that this turn has not written yet."""
        if self._puts:
            dropped = set(gone)
            self._puts = [(k, v) for k, v in self._puts if k not in dropped]

    def _flush(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        puts, deletes, callbacks = self._puts, self._deletes, self._callbacks
        self._puts, self._deletes, self._waiters = [], [], []
        self._callbacks = []
        puts.append((keys.QUEUE_METADATA, self._metadata()))
        owner = self._owner
        task = asyncio.ensure_future(owner.driver.kv_write(owner.actor_id, puts, deletes))

        def finished(task: asyncio.Future[None]) -> None:
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            for callback in callbacks:
                try:
                    callback(error)
                except Exception:  # pragma: no cover - the callbacks only update the index
                    logger.exception("updating the queue index failed")
            for done in waiters:
                if done.done():
                    continue
                if task.cancelled():
                    done.cancel()
                elif error is not None:
                    done.set_exception(error)
                    done.exception()  # retrieved: its caller may be gone
                else:
                    done.set_result(None)

        task.add_done_callback(finished)
