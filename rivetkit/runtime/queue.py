"""The actor's durable FIFO queue (``c.queue``).

Messages are stored exactly as RivetKit stores them: metadata at ``[5,1,1]`` (``QueueMetadata``
v4) and each message at ``[5,1,2] + u64be(id)`` (``QueueMessage`` v4), ids from 1, so a prefix
scan is FIFO. An in-memory index of the queued messages is loaded when the actor starts (with
the queue-scan twin) and kept in step with every write, so receiving never reads the disk.

Sending:

* ``send`` checks the name (``queue.message_invalid``), encodes the body
  (``queue.invalid_payload``), checks the *encoded* message's size
  (``queue.message_too_large``, at most ``max_queue_message_size`` and never more than 128 KiB),
  then the count (``queue.full``), then persists the message together with the metadata in one
  atomic write; it returns (and receivers see the message) only once that write has committed,
  so an acknowledged message survives a crash.
* With ``wait=True`` (and in ``enqueue_and_wait``) the completion waiter is registered *before*
  the message is persisted (seed lesson 15), so a fast consumer cannot complete a message that
  nobody waits for yet. ``enqueue_and_wait`` is not idempotent: it is cancelled only by a real
  cancellation (``timeout``, ``signal``), never retried (seed lesson 16).

No lock is held across a write: the index is updated synchronously, before the write is
submitted. The writes requested during one turn of the event loop (sends, deletes of received
or completed messages) are coalesced into one atomic driver write with the metadata as it is
then (``_write``), and the writes of many actors share the store's group commit; so concurrent
sends and completions of one actor neither wait for each other nor cost one write each, ids
stay in FIFO order, and each caller still returns only once its change is committed.

Receiving:

* ``next``/``next_batch``/``try_next``/``try_next_batch``/``wait_for_names``/``iter`` return
  messages in id order, optionally only those whose name is in ``names`` (an empty collection
  means every name, as in RivetKit).
* A plain receive deletes the messages (durably) before returning them. A completable receive
  (``completable=True``) keeps them until ``message.complete(response)``; a crash (or a sleep)
  before that delivers them again in the next generation. As in RivetKit, receiving anything
  while a completable message received earlier is still not completed is refused with
  ``queue.previous_message_not_completed``: complete (every message of) a batch first.
* Waits end at ``timeout`` (``[]``/None, or ``queue.timed_out`` for ``wait_for_names``), or
  with ``actor.aborted`` when the actor's abort signal fires (sleep, destroy) or the optional
  ``signal`` (an :class:`asyncio.Event`) is set. A wait does not keep the actor awake
  (seed lesson 10): the owner is told through ``queue_wait_changed``.

Errors (all public, HTTP 400): ``queue.full``, ``queue.message_too_large``,
``queue.message_invalid``, ``queue.invalid_payload``, ``queue.invalid_completion_payload``,
``queue.already_completed``, ``queue.complete_not_configured``,
``queue.previous_message_not_completed``, ``queue.timed_out``,
``queue.completion_waiter_conflict``, ``queue.completion_waiter_dropped`` (a sender waited for
a message that the actor stopped, or ``reset``, before completing), and ``actor.aborted``.

Its parts: :mod:`~rivetkit.runtime.queue_message` (a received message),
:mod:`~rivetkit.runtime.queue_writes` (the coalesced write), :mod:`~rivetkit.runtime.queue_errors`,
:mod:`~rivetkit.runtime.queue_waits`, the index :mod:`~rivetkit.runtime.queue_index` and the
key-scanning twin :mod:`~rivetkit.runtime.queuescan`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from typing import Any, Final

from rivetkit.errors import RivetError, actor_error
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE, QUEUE_METADATA, QueueMetadata
from rivetkit.protocol.actor_persist import QueueMessage as StoredMessage
from rivetkit.protocol.values import cbor_dumps, cbor_loads
from rivetkit.runtime.queue_errors import aborted, queue_error, timed_out, waiter_dropped
from rivetkit.runtime.queue_index import (
    DELETING,
    IN_FLIGHT,
    PENDING,
    READY,
    IndexEntry,
    QueueOwner,
    load_index,
)
from rivetkit.runtime.queue_message import QueueMessage
from rivetkit.runtime.queue_waits import name_filter, wait_future
from rivetkit.runtime.queue_writes import QueueWriteBatch
from rivetkit.runtime.queuescan import message_key

__all__ = [
    "HARD_MAX_MESSAGE_SIZE",
    "ActorQueue",
    "QueueMessage",
    "QueueOwner",
    "queue_error",
]

#: RivetKit's hard cap on one encoded message, whatever the options say.
HARD_MAX_MESSAGE_SIZE: Final = 128 * 1024

# The empty index and waiter dicts every queue starts with (never written: see ActorQueue).
_NO_MESSAGES: Final[dict[int, IndexEntry]] = {}
_NO_WAITERS: Final[dict[int, asyncio.Future[Any]]] = {}


class ActorQueue:
    """Durable per-actor FIFO queue (``c.queue``); see the module docstring."""

    __slots__ = (
        "__weakref__",
        "_abort_watch",
        "_batch",
        "_changed",
        "_clock",
        "_closed",
        "_messages",
        "_next_id",
        "_outstanding",
        "_owner",
        "_schemas",
        "_size",
        "_waiters",
    )

    def __init__(self, owner: QueueOwner, *, clock: Callable[[], float] = time.time) -> None:
        self._owner = owner
        self._clock = clock
        # Declared queue schemas (rivetkit/schemas.py); None: every name, nothing validated.
        self._schemas = getattr(getattr(owner, "definition", None), "schemas", None)
        # id -> entry of every known message, in id order (ids only grow). Both dicts start
        # as the shared empty ones (no two empty dicts per actor): written only in _append,
        # which makes them the queue's own first; the rest only reads them or deletes keys
        # found in them.
        self._messages: dict[int, IndexEntry] = _NO_MESSAGES
        # Messages counted against max_queue_size: pending, ready, in flight (not deleting).
        self._size = 0
        # Completable messages received and not completed yet (None: none; no empty set per
        # actor).
        self._outstanding: set[int] | None = None
        self._waiters: dict[int, asyncio.Future[Any]] = _NO_WAITERS
        self._next_id = 1
        # Resolved (and replaced) whenever messages may have become available.
        self._changed: asyncio.Future[None] | None = None
        self._abort_watch: asyncio.Task[None] | None = None
        self._closed = False
        # The coalesced write of this loop turn (see _write; made on the first write).
        self._batch: QueueWriteBatch | None = None

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the metadata and every queued message (called when the actor starts)."""
        messages, self._next_id = await load_index(self._owner)
        self._messages = messages if messages else _NO_MESSAGES
        self._size = len(self._messages)

    # -- state -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many messages are queued (in-flight completable ones included)."""
        return self._size

    @property
    def max_size(self) -> int:
        """The ``max_queue_size`` option."""
        return int(self._owner.options.max_queue_size)

    def _metadata(self) -> bytes:
        return QUEUE_METADATA.encode(QueueMetadata(self._next_id, min(self._size, 0xFFFFFFFF)))

    def _write(
        self,
        puts: Iterable[tuple[bytes, bytes]],
        deletes: Iterable[bytes],
        on_done: Callable[[BaseException | None], None],
    ) -> asyncio.Future[None]:
        """Add ``puts``/``deletes`` to this loop turn's write (see :class:`QueueWriteBatch`)."""
        batch = self._batch
        if batch is None:
            batch = self._batch = QueueWriteBatch(self._owner, self._metadata)
        return batch.add(puts, deletes, on_done)

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            if not changed.done():
                changed.set_result(None)

    # -- sending -----------------------------------------------------------------------------

    def _encode(self, name: str, body: Any) -> bytes:
        if not isinstance(name, str) or not name:
            raise queue_error("message_invalid", "a queue message needs a non-empty str name")
        if self._schemas is not None:
            body = self._schemas.queue_body(name, body)
        try:
            payload = cbor_dumps(body)
        except Exception as exc:
            raise queue_error(
                "invalid_payload",
                f"the body of a message to queue '{name}' cannot be encoded as CBOR: {exc}",
                metadata={"name": name},
            ) from exc
        stored = StoredMessage(name, payload, int(self._clock() * 1000), None, None, None, None)
        encoded = QUEUE_MESSAGE.encode(stored)
        limit = min(int(self._owner.options.max_queue_message_size), HARD_MAX_MESSAGE_SIZE)
        if len(encoded) > limit:
            raise queue_error(
                "message_too_large",
                f"Queue message too large ({len(encoded)} bytes). Limit is {limit} bytes.",
                metadata={"size": len(encoded), "limit": limit},
            )
        return encoded

    async def send(
        self, name: str, body: Any = None, *, wait: bool = False, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """Append a message and return once it is durable.

        Without ``wait``, returns None. With ``wait``, waits (up to ``timeout`` seconds) for a
        receiver to complete it and returns ``{"status": "completed", "response": ...}`` or
        ``{"status": "timedOut"}``: the shape of RivetKit's ``POST /queue/{name}``.
        """
        encoded = self._encode(name, body)
        ident, waiter = await self._append(name, encoded, wait)
        if waiter is None:
            return None
        try:
            response = await wait_future(waiter, timeout)
        except asyncio.TimeoutError:
            return {"status": "timedOut"}
        finally:
            if self._waiters.get(ident) is waiter:
                del self._waiters[ident]
        return {"status": "completed", "response": response}

    async def enqueue_and_wait(
        self,
        name: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        signal: asyncio.Event | None = None,
    ) -> Any:
        """Send a message and wait until a receiver completes it; return its response.

        The waiter exists before the message is persisted. The message stays queued whatever
        happens to the wait.

        :raises RivetError: the send's errors; ``queue.timed_out`` when ``timeout`` passes;
            ``actor.aborted`` when ``signal`` is set; ``queue.completion_waiter_dropped``
            when the actor stops (or the queue is reset) before the message is completed.
        """
        if signal is not None and signal.is_set():
            raise aborted()
        encoded = self._encode(name, body)
        ident, waiter = await self._append(name, encoded, True)
        assert waiter is not None
        watcher = None if signal is None else asyncio.ensure_future(signal.wait())
        try:
            if watcher is None:
                return await wait_future(waiter, timeout)
            done, _ = await asyncio.wait(
                (waiter, watcher), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                return waiter.result()
            if watcher in done:
                raise aborted()
            raise timed_out(timeout)
        except asyncio.TimeoutError:
            raise timed_out(timeout) from None
        finally:
            if watcher is not None:
                watcher.cancel()
            if self._waiters.get(ident) is waiter:
                del self._waiters[ident]
            if not waiter.done():
                waiter.cancel()

    async def _append(
        self, name: str, encoded: bytes, wait: bool
    ) -> tuple[int, asyncio.Future[Any] | None]:
        if self._closed:
            raise actor_error("stopping", "the actor is stopping")
        limit = self.max_size
        if self._size >= limit:
            raise queue_error(
                "full",
                f"Queue is full. Limit is {limit} messages.",
                metadata={"limit": limit, "size": self._size},
            )
        ident = self._next_id
        if ident in self._waiters:
            raise queue_error(
                "completion_waiter_conflict",
                f"Queue completion waiter is already registered for message {ident}.",
                metadata={"message_id": ident},
            )
        self._next_id = ident + 1
        entry = IndexEntry(name, encoded, PENDING)
        if self._messages is _NO_MESSAGES:
            self._messages = {}
        self._messages[ident] = entry
        self._size += 1
        waiter: asyncio.Future[Any] | None = None
        if wait:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is _NO_WAITERS:
                self._waiters = {}
            self._waiters[ident] = waiter  # before the message is persisted (lesson 15)

        def written(error: BaseException | None) -> None:
            if self._messages.get(ident) is not entry:
                return  # reset meanwhile
            if error is None:
                entry.state = READY
                metrics = getattr(self._owner, "metrics", None)
                if metrics is not None:
                    metrics.queue_sent += 1
                self._notify()
                return
            del self._messages[ident]
            self._size -= 1
            if waiter is not None and self._waiters.get(ident) is waiter:
                del self._waiters[ident]

        try:
            await self._write(((message_key(ident), encoded),), (), written)
        except asyncio.CancelledError:
            # The sender is gone (e.g. its HTTP client left); the write goes on without it.
            if waiter is not None and self._waiters.get(ident) is waiter:
                del self._waiters[ident]
            raise
        return ident, waiter

    # -- receiving ---------------------------------------------------------------------------

    def _check_previous(self) -> None:
        if self._outstanding:
            raise queue_error(
                "previous_message_not_completed",
                "Previous completable queue message is not completed. Call "
                "`message.complete(...)` before receiving the next message.",
                metadata={"message_ids": sorted(self._outstanding)},
            )

    def _pick(self, names: Collection[str] | None, count: int) -> list[int]:
        picked: list[int] = []
        for ident, entry in self._messages.items():
            if entry.state != READY:
                continue
            if names is not None and entry.name not in names:
                continue
            picked.append(ident)
            if len(picked) >= count:
                break
        return picked

    async def _take(self, idents: list[int], completable: bool) -> list[QueueMessage]:
        messages = self._messages
        received = []
        complete = self._complete
        for ident in idents:
            entry = messages[ident]
            stored = QUEUE_MESSAGE.decode(entry.encoded)
            body = cbor_loads(stored.body) if stored.body else None
            received.append(
                QueueMessage(complete, ident, entry.name, body, stored.created_at, completable)
            )
        if completable:
            for ident in idents:
                messages[ident].state = IN_FLIGHT
            if self._outstanding is None:
                self._outstanding = set(idents)
            else:
                self._outstanding.update(idents)
        else:
            await self._delete(idents, READY)
        metrics = getattr(self._owner, "metrics", None)
        if metrics is not None:
            metrics.queue_received += len(received)
        spans = getattr(self._owner, "traces", None)
        if spans is not None and received:  # one instant span per receive (rivetkit.traces)
            spans.instant("queue.receive", received[0].name, {"rivet.queue.count": len(received)})
        return received

    async def claim(
        self, ident: int, name: str, created_at: int, completable: bool
    ) -> QueueMessage | None:
        """Take the ready message ``ident`` as a receive would, if it is the one a workflow
        recorded (same name and creation time: a receive recorded just before a crash, whose
        message was never deleted); None when it is gone, taken, or another message."""
        entry = self._messages.get(ident)
        if entry is None or entry.state != READY or entry.name != name:
            return None
        if QUEUE_MESSAGE.decode(entry.encoded).created_at != created_at:
            return None
        return (await self._take([ident], completable))[0]

    async def _delete(
        self, idents: list[int], previous: int, then: Callable[[], None] | None = None
    ) -> None:
        """Delete messages durably, then run ``then``; on failure they go back to
        ``previous`` (and the error is raised)."""
        entries = [self._messages[i] for i in idents]
        for entry in entries:
            entry.state = DELETING
        self._size -= len(entries)

        def deleted(error: BaseException | None) -> None:
            messages = self._messages  # the current index (a reset replaces it)
            if error is None:
                for ident, entry in zip(idents, entries):
                    if messages.get(ident) is entry:
                        del messages[ident]
                if then is not None:
                    then()
                return
            restored = 0
            for ident, entry in zip(idents, entries):
                if messages.get(ident) is entry:
                    entry.state = previous
                    restored += 1
            self._size += restored
            if restored and previous == READY:
                self._notify()

        await self._write((), [message_key(i) for i in idents], deleted)

    async def try_next_batch(
        self,
        names: Collection[str] | str | None = None,
        *,
        count: int = 1,
        completable: bool = False,
    ) -> list[QueueMessage]:
        """Up to ``count`` messages that are queued now (never waits; ``[]`` when none)."""
        self._check_previous()
        return await self._take(self._pick(name_filter(names), max(1, count)), completable)

    async def try_next(
        self, names: Collection[str] | str | None = None, *, completable: bool = False
    ) -> QueueMessage | None:
        """The next queued message, or None (never waits)."""
        batch = await self.try_next_batch(names, count=1, completable=completable)
        return batch[0] if batch else None

    async def next_batch(
        self,
        names: Collection[str] | str | None = None,
        *,
        count: int = 1,
        timeout: float | None = None,
        completable: bool = False,
        signal: asyncio.Event | None = None,
    ) -> list[QueueMessage]:
        """Wait for at least one message (returning up to ``count``); ``[]`` when ``timeout``
        seconds pass first. The actor's abort signal (and ``signal``) end the wait with
        ``actor.aborted``."""
        self._check_previous()
        wanted = name_filter(names)
        count = max(1, count)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            picked = self._pick(wanted, count)
            if picked:
                return await self._take(picked, completable)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            await self._wait(remaining, signal)

    async def next(
        self,
        names: Collection[str] | str | None = None,
        *,
        timeout: float | None = None,
        completable: bool = False,
        signal: asyncio.Event | None = None,
    ) -> QueueMessage | None:
        """Wait for the next message; None when ``timeout`` seconds pass first."""
        batch = await self.next_batch(
            names, count=1, timeout=timeout, completable=completable, signal=signal
        )
        return batch[0] if batch else None

    async def wait_for_names(
        self,
        names: Collection[str] | str,
        *,
        timeout: float | None = None,
        completable: bool = False,
        signal: asyncio.Event | None = None,
    ) -> QueueMessage:
        """The next message with one of ``names`` (the batch-receive path, seed lesson 17);
        ``queue.timed_out`` when none comes within ``timeout`` seconds."""
        batch = await self.next_batch(
            names, count=1, timeout=timeout, completable=completable, signal=signal
        )
        if not batch:
            raise timed_out(timeout)
        return batch[0]

    async def wait_for_names_available(
        self,
        names: Collection[str] | str,
        *,
        timeout: float | None = None,
        signal: asyncio.Event | None = None,
    ) -> None:
        """Wait until a message with one of ``names`` is queued, without receiving it;
        ``queue.timed_out`` when none comes within ``timeout`` seconds."""
        wanted = name_filter(names)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            for entry in self._messages.values():
                if entry.state in (READY, IN_FLIGHT) and (wanted is None or entry.name in wanted):
                    return
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise timed_out(timeout)
            await self._wait(remaining, signal)

    async def wait_ready(
        self, names: Collection[str] | str | None, *, timeout: float | None = None
    ) -> bool:
        """Wait until a message with one of ``names`` (None: any) can be received now, without
        receiving it; False when ``timeout`` seconds pass first (durable workflows' waits).
        The actor's abort ends the wait with ``actor.aborted``."""
        wanted = name_filter(names)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._pick(wanted, 1):
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await self._wait(remaining, None)
        return True

    async def iter(
        self,
        names: Collection[str] | str | None = None,
        *,
        completable: bool = False,
        signal: asyncio.Event | None = None,
    ) -> AsyncIterator[QueueMessage]:
        """``async for message in c.queue.iter(...)``: messages as they come, until the actor
        (or ``signal``) aborts; then the loop just ends. With ``completable``, complete each
        message before asking for the next one."""
        while True:
            try:
                message = await self.next(names, completable=completable, signal=signal)
            except RivetError as exc:
                if (exc.group, exc.code) == ("actor", "aborted"):
                    return
                raise
            if message is not None:
                yield message

    async def _wait(self, timeout: float | None, signal: asyncio.Event | None) -> None:
        """Wait until messages may be available, ``timeout`` passes, or an abort."""
        owner = self._owner
        if owner.abort_event.is_set() or (signal is not None and signal.is_set()):
            raise aborted()
        loop = asyncio.get_running_loop()
        if self._abort_watch is None:
            self._abort_watch = loop.create_task(self._watch_abort())
        changed = self._changed
        if changed is None:
            changed = self._changed = loop.create_future()
        watcher = None if signal is None else asyncio.ensure_future(signal.wait())
        owner.queue_wait_changed(+1)
        try:
            if watcher is None:
                try:
                    await wait_future(changed, timeout)
                except asyncio.TimeoutError:
                    return
            else:
                await asyncio.wait(
                    (changed, watcher), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            owner.queue_wait_changed(-1)
            if watcher is not None:
                watcher.cancel()
        if owner.abort_event.is_set() or (signal is not None and signal.is_set()):
            raise aborted()

    async def _watch_abort(self) -> None:
        await self._owner.abort_event.wait()
        self._notify()

    # -- completing --------------------------------------------------------------------------

    async def _complete(self, message: QueueMessage, response: Any) -> None:
        ident = message.id
        entry = self._messages.get(ident)
        outstanding = self._outstanding
        if entry is None or entry.state != IN_FLIGHT or not outstanding or ident not in outstanding:
            raise queue_error("already_completed", "Queue message was already completed.")
        waiter = self._waiters.get(ident)
        if waiter is not None and response is not None:
            try:
                cbor_dumps(response)  # it goes back to a client
            except Exception as exc:
                raise queue_error(
                    "invalid_completion_payload",
                    f"the completion response of queue '{message.name}' cannot be encoded as "
                    f"CBOR: {exc}",
                    metadata={"name": message.name},
                ) from exc

        def completed() -> None:  # once durable, even if this caller is gone by then
            metrics = getattr(self._owner, "metrics", None)
            if metrics is not None:
                metrics.queue_completed += 1
            if self._outstanding is not None:
                self._outstanding.discard(ident)
            waiter = self._waiters.pop(ident, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(response)

        await self._delete([ident], IN_FLIGHT, completed)

    # -- maintenance -------------------------------------------------------------------------

    async def reset(self) -> None:
        """Delete every queued message, in flight or not, in one atomic write. Senders still
        waiting for one of them get ``queue.completion_waiter_dropped``."""
        idents = list(self._messages)
        self._messages = _NO_MESSAGES
        self._size = 0
        self._outstanding = None
        gone = [message_key(i) for i in idents]
        if self._batch is not None:
            self._batch.drop_puts(gone)  # sends of this turn not written yet: never write them
        self._drop_waiters(idents)
        await self._write((), gone, _ignore)

    def _drop_waiters(self, idents: Iterable[int] | None = None) -> None:
        chosen = (
            list(self._waiters) if idents is None else [i for i in idents if i in self._waiters]
        )
        for ident in chosen:
            waiter = self._waiters.pop(ident)
            if not waiter.done():
                waiter.set_exception(waiter_dropped(ident))
                waiter.exception()  # retrieved: no "never retrieved" warning if nobody waits

    def release_in_flight(self) -> None:
        """The actor stopped: forget in-flight receives (they are delivered again in the next
        generation) and fail the senders still waiting here (``completion_waiter_dropped``)."""
        self._closed = True
        for ident in self._outstanding or ():
            entry = self._messages.get(ident)
            if entry is not None and entry.state == IN_FLIGHT:
                entry.state = READY
        self._outstanding = None
        if self._waiters:  # (none: nothing to drop, no call)
            self._drop_waiters()
        if self._abort_watch is not None:
            self._abort_watch.cancel()
            self._abort_watch = None
        if self._changed is not None:
            self._notify()

    def release(self) -> None:
        """The actor stopped (:mod:`.teardown`): drop the idle write batch (it holds us)."""
        batch = self._batch
        if batch is not None and not batch.pending:
            self._batch = None


def _ignore(error: BaseException | None) -> None:
    pass
