"""In-process placement: which actors run, and starting and stopping them through the host.

Each actor loaded in this process has an entry: a :class:`_Slot` while it is *starting* or
*stopping*, its :class:`~rivetkit.drivers.base.ActorRecord` (the one its running instance
holds, with its generation) while it is *running*: no object of its own for a running actor.
An actor with no entry is stopped. Whoever waits for a start or a stop gets a future of its
own in the slot's ``waiters`` (a cancelled waiter cancels only its own future, never the
start or the stop; nobody waiting costs no future). Every transition happens on the event
loop, so there are no locks: concurrent :meth:`Placement.ensure_started` calls find the same
slot and share one start; a call that finds the actor stopping waits for the stop, then
starts a new generation. The generation is
incremented and committed before :meth:`ActorHost.start_actor` is called, so two instances of
one actor never share a generation, even across crashes.

Stop intents carry the generation they were made for; an intent for another generation, or a
repeated one, is ignored. An intent that arrives while the actor is starting is applied once
the start has finished. Destroying deletes the actor's KV and alarm and marks it destroyed in
one transaction, then calls the destroy callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from rivetkit.drivers.base import (
    ActorHost,
    ActorRecord,
    DestroyCallback,
    StopReason,
    notify_destroyed,
)
from rivetkit.errors import RivetError

from . import tables
from .alarms import AlarmTimers
from .fresh import OFFLINE_KEYS, FreshActors
from .store import SqliteStore

__all__ = ["DestroyCallback", "Placement"]

logger = logging.getLogger("rivetkit.driver")

_State = Literal["starting", "running", "stopping"]


class _Slot:
    """A start or a stop under way (a running actor's entry is its record)."""

    __slots__ = (
        "actor_id",
        "destroy_after_stop",
        "generation",
        "pending_stop",
        "state",
        "stop_reason",
        "task",
        "waiters",
    )

    def __init__(self, actor_id: str) -> None:
        self.actor_id = actor_id
        self.state: _State = "starting"
        # Unknown (-1) until the new generation is committed.
        self.generation = -1
        # The futures of those waiting for the start or the stop under way (None: nobody).
        self.waiters: list[asyncio.Future[Any]] | None = None
        # The start's or the stop's task (referenced here while it runs: no task set).
        self.task: asyncio.Task[None] | None = None
        self.stop_reason: StopReason | None = None
        # A stop requested while starting, applied once started.
        self.pending_stop: StopReason | None = None
        # A destroy requested while stopping for another reason.
        self.destroy_after_stop = False


class Placement:
    """Starts and stops the actors of one embedded driver."""

    def __init__(
        self,
        store: SqliteStore,
        alarms: AlarmTimers,
        clock: Callable[[], float],
        *,
        fresh: FreshActors | None = None,
    ) -> None:
        self._store = store
        # The driver's actors known empty: their start reads the offline keys with the
        # generation (one store trip less; see .fresh).
        self._fresh = fresh
        self._alarms = alarms
        self._clock = clock
        self.host: ActorHost | None = None
        # actor id -> its start or stop under way, or its record while it runs.
        self._slots: dict[str, _Slot | ActorRecord] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # the running loop, once known
        self._destroy_callbacks: list[DestroyCallback] = []
        self._closing = False

    # -- queries ---------------------------------------------------------------------------

    def running_generation(self, actor_id: str) -> int | None:
        """The generation of the actor's running instance, or None if it is not running."""
        entry = self._slots.get(actor_id)
        if entry is None or isinstance(entry, _Slot):
            return None
        return entry.generation

    def loaded(self) -> dict[str, str]:
        """``actor_id -> "starting" | "running" | "stopping"`` for every loaded actor."""
        return {
            actor_id: entry.state if isinstance(entry, _Slot) else "running"
            for actor_id, entry in self._slots.items()
        }

    # -- tasks -----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in a task that is kept referenced until it ends."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def on_destroyed(self, callback: DestroyCallback) -> None:
        """Call ``callback(actor_id)`` after each actor is destroyed and its data deleted."""
        self._destroy_callbacks.append(callback)

    # -- starting --------------------------------------------------------------------------

    def _waiter(self, slot: _Slot) -> asyncio.Future[Any]:
        """A future of the caller's own, settled when the slot's start or stop ends."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if slot.waiters is None:
            slot.waiters = [waiter]
        else:
            slot.waiters.append(waiter)
        return waiter

    async def ensure_started(self, actor_id: str) -> ActorRecord:
        """Start the actor unless it is running; return its record."""
        while True:
            slot = self._slots.get(actor_id)
            if slot is None:
                slot = self._begin_start(actor_id)
            elif not isinstance(slot, _Slot):
                return slot  # running: its record
            # Its own future (a cancelled caller cancels neither the start nor the stop): a
            # start's gives the record (or raises its error), a stop's None.
            record: ActorRecord | None = await self._waiter(slot)
            if record is not None:
                return record

    def _begin_start(self, actor_id: str) -> _Slot:
        if self._closing:
            raise RivetError("driver", "stopped", "the driver is shutting down")
        host = self.host
        if host is None:
            raise RivetError("driver", "not_started", "the driver has not been started")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        slot = self._slots[actor_id] = _Slot(actor_id)
        slot.task = loop.create_task(self._start(slot, host))
        return slot

    @staticmethod
    def _settle(slot: _Slot, result: Any = None, error: BaseException | None = None) -> None:
        """End the slot's waiters: ``result``, ``error``, or cancelled (a CancelledError)."""
        waiters = slot.waiters
        if waiters is None:
            return
        slot.waiters = None
        for waiter in waiters:
            if waiter.done():  # its caller was cancelled
                continue
            if error is None:
                waiter.set_result(result)
            elif isinstance(error, asyncio.CancelledError):
                waiter.cancel()
            else:
                waiter.set_exception(error)

    async def _start(self, slot: _Slot, host: ActorHost) -> None:
        try:
            fresh = self._fresh
            if fresh is not None and slot.actor_id in fresh.ids:
                record, offline = await self._store.write(
                    tables.begin_generation_reading, slot.actor_id, OFFLINE_KEYS
                )
                if slot.actor_id in fresh.ids:  # fresh.started(...) inline
                    fresh.ids[slot.actor_id] = offline
            else:
                record = await self._store.write(tables.begin_generation, slot.actor_id)
            slot.generation = record.generation
            await host.start_actor(record, record.generation)
        except BaseException as exc:
            slot.task = None
            if self._slots.get(slot.actor_id) is slot:
                del self._slots[slot.actor_id]
            if not isinstance(exc, asyncio.CancelledError) and not (
                isinstance(exc, RivetError) and exc.code == "not_found"
            ):
                logger.warning(
                    "starting actor %s (generation %s) failed",
                    slot.actor_id,
                    slot.generation,
                    exc_info=exc,
                )
            self._settle(slot, error=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        slot.task = None
        slot.state = "running"
        if slot.pending_stop is None:
            if self._slots.get(slot.actor_id) is slot:
                self._slots[slot.actor_id] = record  # running: the slot is let go
            self._settle(slot, record)
        else:
            self._settle(slot, record)
            self._begin_stop(slot, slot.pending_stop)

    # -- stopping --------------------------------------------------------------------------

    def request_stop(self, actor_id: str, generation: int, reason: StopReason) -> None:
        """Ask for the instance ``generation`` of the actor to stop; stale asks are ignored."""
        slot = self._slots.get(actor_id)
        if slot is None or slot.generation != generation:
            logger.debug(
                "ignored %s request for actor %s generation %s (stale)",
                reason,
                actor_id,
                generation,
            )
            return
        if not isinstance(slot, _Slot):
            # self._begin_stop(self._stopping_slot(slot), reason), inline: every sleep of a
            # running actor comes here (two Python calls fewer).
            stopping = self._slots[actor_id] = _Slot(actor_id)
            stopping.generation = generation
            stopping.state = "stopping"
            stopping.stop_reason = reason
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            stopping.task = loop.create_task(self._stop(stopping, reason))
        elif slot.state == "starting":
            if slot.pending_stop != "destroy":
                slot.pending_stop = reason
        elif reason == "destroy" and slot.stop_reason != "destroy":
            slot.destroy_after_stop = True

    def _stopping_slot(self, record: ActorRecord) -> _Slot:
        """A slot in place of a running actor's record, for its stop to begin."""
        slot = self._slots[record.actor_id] = _Slot(record.actor_id)
        slot.generation = record.generation
        return slot

    def _begin_stop(self, slot: _Slot, reason: StopReason) -> None:
        slot.state = "stopping"
        slot.stop_reason = reason
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        slot.task = loop.create_task(self._stop(slot, reason))

    async def _stop(self, slot: _Slot, reason: StopReason) -> None:
        actor_id = slot.actor_id
        try:
            host = self.host
            assert host is not None
            try:
                await host.stop_actor(actor_id, reason)
            except Exception:
                logger.exception("stopping actor %s (%s) failed", actor_id, reason)
            if reason == "destroy":
                await self._finish_destroy(actor_id)
        finally:
            slot.task = None
            if self._slots.get(actor_id) is slot:
                del self._slots[actor_id]
            if slot.waiters is not None:  # (a sleep's stop is mostly awaited by nobody)
                self._settle(slot)
        if slot.destroy_after_stop and reason != "destroy":
            if self._closing:
                logger.warning("actor %s asked to be destroyed during shutdown; kept", actor_id)
            else:
                self.spawn(self._destroy_quietly(actor_id))

    async def _finish_destroy(self, actor_id: str) -> None:
        self._alarms.set(actor_id, None)
        try:
            await self._store.write(tables.mark_destroyed, actor_id, int(self._clock() * 1000))
        except Exception:
            logger.exception("deleting the data of destroyed actor %s failed", actor_id)
            return
        await notify_destroyed(self._destroy_callbacks, actor_id)

    async def _destroy_quietly(self, actor_id: str) -> None:
        try:
            await self.destroy(actor_id)
        except RivetError as exc:
            if exc.code != "not_found":
                logger.warning("destroying actor %s failed: %s", actor_id, exc)
        except Exception:
            logger.exception("destroying actor %s failed", actor_id)

    async def destroy(self, actor_id: str) -> None:
        """Destroy the actor (starting it first if it sleeps) and wait until it is gone."""
        while True:
            await self.ensure_started(actor_id)
            entry = self._slots.get(actor_id)
            if entry is None:
                continue
            if isinstance(entry, _Slot):
                if entry.state == "starting":
                    continue
                slot = entry  # stopping
            else:
                slot = self._stopping_slot(entry)
                self._begin_stop(slot, "destroy")
            await self._waiter(slot)
            if slot.stop_reason == "destroy":
                return

    # -- shutdown --------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every loaded actor with reason ``shutdown`` and wait; then end the tasks."""
        self._closing = True
        await asyncio.gather(*(self._shutdown_one(aid) for aid in list(self._slots)))
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown_one(self, actor_id: str) -> None:
        while True:
            entry = self._slots.get(actor_id)
            if entry is None:
                return
            if isinstance(entry, _Slot):
                slot = entry
            else:
                slot = self._stopping_slot(entry)
                self._begin_stop(slot, "shutdown")
            # wait() neither raises a failed start's error (the start logged it) nor cancels.
            waiter = self._waiter(slot)
            try:
                await asyncio.wait([waiter])
            finally:
                if not waiter.done():
                    waiter.cancel()
                elif not waiter.cancelled():
                    waiter.exception()
