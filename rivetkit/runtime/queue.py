"""The actor's durable FIFO queue (``c.queue``).

Messages are stored exactly as RivetKit stores them: metadata at ``[5,1,1]`` (``QueueMetadata``
v4) and each message at ``[5,1,2] + u64be(id)`` (``QueueMessage`` v4), ids from 1, so a prefix
scan is FIFO. An in-memory index of the queued messages is loaded when the actor starts (with
the queue-scan twin) and kept in step with every write, so receiving never reads the disk.

* ``send`` checks the encoded size (``queue.message_too_large``), then the count
  (``queue.full``), then persists the message with the metadata in one atomic write and wakes
  receivers. With ``wait=True`` (``enqueue_and_wait``) the completion waiter is registered
  *before* the message is persisted.
* A plain receive deletes the message. A completable receive keeps it until
  ``message.complete(response)``; a crash before that delivers it again after the restart.
* Receive waits end with the abort signal (``actor.aborted``) and do not keep the actor awake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from rivetkit.errors import RivetError, actor_error
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE, QUEUE_METADATA, QueueMetadata
from rivetkit.protocol.actor_persist import QueueMessage as StoredMessage
from rivetkit.protocol.json_compat import cbor_dumps, cbor_loads
from rivetkit.runtime import keys
from rivetkit.runtime.queuescan import message_key, peek_name, scan

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

#: RivetKit's hard cap on one message, whatever the options say.
HARD_MAX_MESSAGE_SIZE = 128 * 1024


class QueueOwner(Protocol):
    """What the queue needs from its actor instance."""

    driver: Driver
    actor_id: str
    options: Any
    abort_event: asyncio.Event

    def queue_wait_changed(self, delta: int) -> None:
        """A receive started (+1) or stopped (-1) waiting; waits do not keep it awake."""
        ...


def queue_error(code: str, message: str, metadata: Any = None) -> RivetError:
    """An error of group ``queue``."""
    return RivetError("queue", code, message, metadata=metadata)


class QueueMessage:
    """A received message; completable ones must be completed with :meth:`complete`."""

    __slots__ = ("_queue", "body", "completable", "completed", "created_at", "id", "name")

    def __init__(
        self,
        queue: ActorQueue,
        ident: int,
        name: str,
        body: Any,
        created_at: int,
        completable: bool,
    ) -> None:
        self._queue = queue
        self.id = ident
        self.name = name
        self.body = body
        #: Milliseconds since the epoch when the message was sent.
        self.created_at = created_at
        self.completable = completable
        self.completed = False

    async def complete(self, response: Any = None) -> None:
        """Finish a completable message (deleting it); ``response`` goes to a waiting sender."""
        if not self.completable:
            raise queue_error(
                "complete_not_configured", "only completable receives can be completed"
            )
        if self.completed:
            raise queue_error("already_completed", f"message {self.id} was already completed")
        await self._queue._complete(self, response)

    def __repr__(self) -> str:
        return f"QueueMessage(id={self.id}, name={self.name!r})"


class ActorQueue:
    """Durable per-actor FIFO queue (``c.queue``)."""

    def __init__(self, owner: QueueOwner, *, clock: Callable[[], float] = time.time) -> None:
        self._owner = owner
        self._clock = clock
        # id -> (name, encoded message) of every queued message, in id order.
        self._messages: dict[int, tuple[str, bytes]] = {}
        self._in_flight: set[int] = set()
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 1
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the metadata and every queued message (called when the actor starts)."""
        owner = self._owner
        (raw_meta,) = await owner.driver.kv_get(owner.actor_id, [keys.QUEUE_METADATA])
        entries = await owner.driver.kv_list(
            owner.actor_id, keys.QUEUE_MESSAGE_PREFIX, keys.QUEUE_MESSAGE_PREFIX[:-1] + b"\x03"
        )
        found = scan(entries, None, len(entries), _identity)
        self._messages = {ident: (peek_name(value), value) for ident, value in found}
        stored_next = QUEUE_METADATA.decode(raw_meta).next_id if raw_meta is not None else 1
        last = max(self._messages, default=0)
        self._next_id = max(stored_next, last + 1, 1)

    # -- sending -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many messages are queued (in-flight completable ones included)."""
        return len(self._messages)

    async def send(
        self, name: str, body: Any = None, *, wait: bool = False, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """Append a message. With ``wait``, wait for its completion and return
        ``{"status": "completed", "response": ...}`` or ``{"status": "timedOut"}``."""
        if not isinstance(name, str) or not name:
            raise queue_error("message_invalid", "a queue message needs a non-empty str name")
        options = self._owner.options
        try:
            payload = cbor_dumps(body)
        except Exception as exc:
            raise queue_error("invalid_payload", f"the body cannot be encoded: {exc}") from exc
        stored = StoredMessage(name, payload, int(self._clock() * 1000), None, None, None, None)
        encoded = QUEUE_MESSAGE.encode(stored)
        limit = min(options.max_queue_message_size, HARD_MAX_MESSAGE_SIZE)
        if len(encoded) > limit:
            raise queue_error(
                "message_too_large",
                f"the encoded message is {len(encoded)} bytes; the limit is {limit}",
                metadata={"size": len(encoded), "limit": limit},
            )
        waiter: asyncio.Future[Any] | None = None
        async with self._lock:
            if len(self._messages) >= options.max_queue_size:
                raise queue_error(
                    "full",
                    f"the queue holds {len(self._messages)} messages; the limit is "
                    f"{options.max_queue_size}",
                    metadata={"size": len(self._messages), "limit": options.max_queue_size},
                )
            ident = self._next_id
            if wait:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters[ident] = waiter
            meta = QUEUE_METADATA.encode(QueueMetadata(ident + 1, len(self._messages) + 1))
            try:
                await self._owner.driver.kv_write(
                    self._owner.actor_id,
                    puts=[(message_key(ident), encoded), (keys.QUEUE_METADATA, meta)],
                )
            except BaseException:
                self._waiters.pop(ident, None)
                raise
            self._next_id = ident + 1
            self._messages[ident] = (name, encoded)
        self._notify()
        if waiter is None:
            return None
        try:
            response = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            return {"status": "timedOut"}
        finally:
            if self._waiters.get(ident) is waiter and waiter.done():
                self._waiters.pop(ident, None)
        return {"status": "completed", "response": response}

    async def enqueue_and_wait(
        self, name: str, body: Any = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send and wait for the completion (the waiter exists before the message is stored)."""
        result = await self.send(name, body, wait=True, timeout=timeout)
        assert result is not None
        return result

    def _notify(self) -> None:
        self._changed.set()

    # -- receiving ---------------------------------------------------------------------------

    def _available(self, names: Collection[str] | None, count: int) -> list[int]:
        picked: list[int] = []
        for ident, (name, _) in self._messages.items():
            if ident in self._in_flight:
                continue
            if names is not None and name not in names:
                continue
            picked.append(ident)
            if len(picked) >= count:
                break
        return picked

    async def _take(self, idents: list[int], completable: bool) -> list[QueueMessage]:
        received = []
        for ident in idents:
            name, encoded = self._messages[ident]
            stored = QUEUE_MESSAGE.decode(encoded)
            body = cbor_loads(stored.body) if stored.body else None
            received.append(QueueMessage(self, ident, name, body, stored.created_at, completable))
        if completable:
            self._in_flight.update(idents)
        else:
            await self._delete(idents)
        return received

    async def _delete(self, idents: Iterable[int]) -> None:
        gone = [i for i in idents if i in self._messages]
        if not gone:
            return
        size = len(self._messages) - len(gone)
        meta = QueueMetadata(self._next_id, size)
        await self._owner.driver.kv_write(
            self._owner.actor_id,
            puts=[(keys.QUEUE_METADATA, QUEUE_METADATA.encode(meta))],
            deletes=[message_key(i) for i in gone],
        )
        for ident in gone:
            self._messages.pop(ident, None)
            self._in_flight.discard(ident)

    async def try_next_batch(
        self, names: Collection[str] | None = None, *, count: int = 1, completable: bool = False
    ) -> list[QueueMessage]:
        """Up to ``count`` messages that are queued now (never waits)."""
        names = _names(names)
        async with self._lock:
            return await self._take(self._available(names, count), completable)

    async def try_next(
        self, names: Collection[str] | None = None, *, completable: bool = False
    ) -> QueueMessage | None:
        """The next queued message, or None (never waits)."""
        batch = await self.try_next_batch(names, count=1, completable=completable)
        return batch[0] if batch else None

    async def next_batch(
        self,
        names: Collection[str] | None = None,
        *,
        count: int = 1,
        timeout: float | None = None,
        completable: bool = False,
        signal: asyncio.Event | None = None,
    ) -> list[QueueMessage]:
        """Wait for at least one message (up to ``count``); ``[]`` when ``timeout`` passes.

        The actor's abort signal (and ``signal``) end the wait with ``actor.aborted``.
        """
        if count < 1:
            raise queue_error("message_invalid", "count must be at least 1")
        names = _names(names)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        owner = self._owner
        while True:
            async with self._lock:
                picked = self._available(names, count)
                if picked:
                    return await self._take(picked, completable)
                self._changed.clear()
            if owner.abort_event.is_set() or (signal is not None and signal.is_set()):
                raise actor_error("aborted", "the actor is stopping")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            await self._wait(remaining, signal)

    async def _wait(self, timeout: float | None, signal: asyncio.Event | None) -> None:
        owner = self._owner
        waits = [
            asyncio.ensure_future(self._changed.wait()),
            asyncio.ensure_future(owner.abort_event.wait()),
        ]
        if signal is not None:
            waits.append(asyncio.ensure_future(signal.wait()))
        owner.queue_wait_changed(+1)
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            owner.queue_wait_changed(-1)
            for task in waits:
                task.cancel()

    async def next(
        self,
        names: Collection[str] | None = None,
        *,
        timeout: float | None = None,
        completable: bool = False,
        signal: asyncio.Event | None = None,
    ) -> QueueMessage | None:
        """Wait for the next message; None when ``timeout`` passes."""
        batch = await self.next_batch(
            names, count=1, timeout=timeout, completable=completable, signal=signal
        )
        return batch[0] if batch else None

    async def wait_for_names(
        self,
        names: Collection[str],
        *,
        timeout: float | None = None,
        completable: bool = False,
    ) -> QueueMessage:
        """The next message with one of ``names``; ``queue.timed_out`` when none comes."""
        batch = await self.next_batch(names, count=1, timeout=timeout, completable=completable)
        if not batch:
            raise queue_error(
                "timed_out", f"no message named {sorted(_names(names) or ())} arrived in time"
            )
        return batch[0]

    async def iter(
        self, names: Collection[str] | None = None, *, completable: bool = False
    ) -> AsyncIterator[QueueMessage]:
        """``async for message in c.queue.iter(...)``: messages as they come, until abort."""
        while True:
            try:
                message = await self.next(names, completable=completable)
            except RivetError as exc:
                if (exc.group, exc.code) == ("actor", "aborted"):
                    return
                raise
            if message is not None:
                yield message

    async def _complete(self, message: QueueMessage, response: Any) -> None:
        async with self._lock:
            if message.id not in self._in_flight:
                raise queue_error(
                    "already_completed", f"message {message.id} was already completed"
                )
            await self._delete([message.id])
        message.completed = True
        waiter = self._waiters.pop(message.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    async def reset(self) -> None:
        """Delete every queued message (waiting senders get no response)."""
        async with self._lock:
            await self._owner.driver.kv_delete_range(
                self._owner.actor_id,
                keys.QUEUE_MESSAGE_PREFIX,
                keys.QUEUE_MESSAGE_PREFIX[:-1] + b"\x03",
            )
            meta = QueueMetadata(self._next_id, 0)
            await self._owner.driver.kv_write(
                self._owner.actor_id, puts=[(keys.QUEUE_METADATA, QUEUE_METADATA.encode(meta))]
            )
            self._messages.clear()
            self._in_flight.clear()

    def release_in_flight(self) -> None:
        """Forget in-flight receives (the actor stops; they are delivered again next time)."""
        self._in_flight.clear()


def _identity(value: bytes) -> bytes:
    return value


def _names(names: Collection[str] | str | None) -> Collection[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        return frozenset((names,))
    return frozenset(names)
