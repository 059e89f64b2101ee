"""The saves of one actor's state: dirty tracking, the throttled save loop, snapshots.

:class:`StatePersistence` owns the persisted snapshot (KV ``[1]``) of an
:class:`~rivetkit.runtime.instance.ActorInstance`: a change marks the state dirty and schedules
a save throttled by ``state_save_interval`` (never awaited on an action's path); a failing save
is retried with a doubling delay (meanwhile the :class:`~rivetkit.runtime.state_guard.StateGuard`
refuses writes); :meth:`StatePersistence.final_save` is the last save of a shutdown. It also
runs ``on_state_change`` when the state differs from what the hook last saw.

The throttle's timers of every actor share one loop timer (:mod:`.save_timers`). A throttled
save (and ``save_state``'s) is encoded at once and handed to the driver's
``kv_put_soon`` when it has one (the embedded driver): no task and no future per save, and
the saves of every actor due in one turn of the loop reach SQLite together. A driver without
it (the engine's), or whose ``kv_write`` was replaced, gets the save as an awaited
``kv_write`` in a task. Either way the save counts as done only once the driver says it is
stored.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Final

from rivetkit.errors import RivetError, actor_error
from rivetkit.protocol import actor_persist
from rivetkit.protocol.actor_persist import Actor, ScheduleEvent
from rivetkit.protocol.values import cbor_loads
from rivetkit.runtime import keys
from rivetkit.runtime.phase import Phase
from rivetkit.runtime.save_timers import SaveTimer, SaveTimers
from rivetkit.runtime.state_codec import encode_state
from rivetkit.runtime.state_guard import save_failed

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["MAX_SAVE_RETRY_DELAY", "NO_EVENTS", "StatePersistence"]

# The KV entries of one write: (key, value) pairs.
_Puts = list[tuple[bytes, bytes]]

_new_tuple = tuple.__new__

# Enum members read once (a class attribute lookup on an enum costs more than a global's).
_LOADING = Phase.LOADING
_DESTROY_GRACE = Phase.DESTROY_GRACE

#: The one-shot events of every actor without any: shared (no empty list per actor), as
#: any events list is, since it is replaced on change and never mutated.
NO_EVENTS: Final[list[ScheduleEvent]] = []

#: Seconds at most between two tries of a failing save (the delay doubles from the save
#: interval, at least 50 ms, up to this).
MAX_SAVE_RETRY_DELAY = 5.0


class StatePersistence:
    """Saves the state of one actor (its snapshot at KV ``[1]``) when it may have changed.

    A subclass may override :meth:`write_snapshot`: the throttled saves then go through it
    (as a task awaiting it) instead of the driver's ``kv_put_soon``.
    """

    __slots__ = (
        "__weakref__",
        "_changed",
        "_handle",
        "_last_save",
        "_loop",
        "_owner",
        "_seen_state",
        "_task",
        "_timers",
        "_unsaved",
        "_waiters",
        "_writing",
        "_writing_snapshot",
        "_writing_waiters",
        "events",
        "in_state_change",
        "snapshot",
    )

    def __init__(self, owner: ActorInstance) -> None:
        self._owner = owner
        self._loop = owner._loop
        #: The last persisted snapshot (None: nothing persisted yet).
        self.snapshot: Actor | None = None
        #: The snapshot's one-shot schedule events (replaced on change, never mutated).
        self.events: list[ScheduleEvent] = NO_EVENTS
        self._changed = False  # changed since the last encoding
        self._unsaved = 0  # snapshots encoded whose write has not ended
        #: ``on_state_change`` is running (a state write now is refused).
        self.in_state_change = False
        self._seen_state: bytes | None = None  # for on_state_change detection
        self._timers = SaveTimers.of(self._loop)
        self._handle: SaveTimer | None = None
        self._task: asyncio.Task[None] | None = None
        # A save handed to the driver's kv_put_soon: its puts, and its snapshot (or None).
        self._writing: _Puts | None = None
        self._writing_snapshot: Actor | None = None
        # Who waits for the kv_put_soon save to end, and for a save to be stored (None: no
        # one; no empty list per actor).
        self._writing_waiters: list[asyncio.Future[None]] | None = None
        self._last_save = 0.0
        self._waiters: list[asyncio.Future[None]] | None = None

    @property
    def dirty(self) -> bool:
        """The state may differ from the persisted bytes: changed since it was last encoded,
        or encoded in a write that has not committed yet."""
        return self._changed or self._unsaved > 0

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._changed = value

    @property
    def busy(self) -> bool:
        """A save is scheduled or running."""
        return self._handle is not None or self._task is not None or self._writing is not None

    @property
    def _saving(self) -> bool:
        return self._task is not None or self._writing is not None

    def mark_dirty(self) -> None:
        """The state may have changed: schedule a throttled save."""
        owner = self._owner
        self._changed = True
        if owner.inspector_observer is not None:
            owner.inspector_observer("state")
        if (
            self._handle is None
            and self._task is None
            and self._writing is None
            and owner.phase <= _DESTROY_GRACE
        ):
            delay = owner.options.state_save_interval - (self._loop.time() - self._last_save)
            self._handle = self._timers.call_later(delay, self._start_save)

    def cancel_scheduled(self) -> None:
        """Drop the scheduled save, if any (a running one goes on)."""
        if self._handle is not None:
            SaveTimers.cancel(self._handle)
            self._handle = None

    def _start_save(self) -> None:
        self._handle = None
        gate = self._owner._gate
        if gate is not None and gate.busy:  # a blocking action's thread; it saves on return
            return
        if self._task is None and self._writing is None:  # not saving
            self._begin_save()

    def _begin_save(self) -> None:
        """Start one save (none is running): through ``kv_put_soon`` when the driver has it
        (and ``write_snapshot`` is this class's own), else as a task awaiting the write."""
        if type(self).write_snapshot is not _WRITE_SNAPSHOT:  # an override must see it
            self._task = self._loop.create_task(self._save_loop())
            return
        try:
            snapshot, puts = self._prepare(True, None)
        except Exception as exc:
            self._save_ended(exc)
            return
        if not puts:  # nothing changed
            self._written(None, puts)
            self._save_ended(None)
            return
        self._writing = puts
        self._writing_snapshot = snapshot
        try:
            taken = self._owner.driver.kv_put_soon(self._owner.actor_id, puts, self._put_done)
        except Exception as exc:
            self._put_done(False, exc)
            return
        if not taken:
            self._writing = self._writing_snapshot = None
            self._task = self._loop.create_task(self._save_loop(snapshot, puts))

    def _put_done(self, ok: bool, error: Any) -> None:
        """The driver's answer to a ``kv_put_soon`` save."""
        puts = self._writing
        if puts is None:
            return
        snapshot = self._writing_snapshot
        self._writing = self._writing_snapshot = None
        if ok:
            self._written(snapshot, puts)
            self._save_ended(None)
        else:
            self._write_failed(error, snapshot)
            self._save_ended(error)
        waiters = self._writing_waiters
        if waiters is not None:
            self._writing_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _save_loop(self, snapshot: Actor | None = None, puts: _Puts | None = None) -> None:
        """One save (of the prepared ``snapshot`` and ``puts`` if given, else of the state)."""
        try:
            if puts is None:
                await self.write_snapshot()
            else:
                await self._store(snapshot, puts)
        except Exception as exc:
            self._task = None
            self._save_ended(exc)
            return
        self._task = None
        self._save_ended(None)

    def _save_ended(self, error: BaseException | None) -> None:
        """After one save (none is running any more). A change made during it gets the next
        save, throttled like any other (waiters of ``save_state`` whose change came too late
        ask for an immediate one)."""
        if error is not None:
            self._changed = True
            self.notify_savers(error)  # nothing was saved: no waiter may think it was
            self._retry_save(error)
            return
        if self._waiters is not None:
            self.notify_savers(None)
        if self._changed:
            self.mark_dirty()

    async def _wait_saving(self) -> None:
        """Wait until the save running now has ended."""
        while self._saving:
            if self._task is not None:
                await asyncio.shield(self._task)
            else:
                waiter = self._loop.create_future()
                if self._writing_waiters is None:
                    self._writing_waiters = []
                self._writing_waiters.append(waiter)
                await waiter

    def _retry_save(self, error: BaseException) -> None:
        """A save failed: log it and try again later, backing off while it keeps failing
        (meanwhile the guard refuses writes with ``actor/state_save_failed``)."""
        owner = self._owner
        failures = max(1, owner._guard.save_failures)
        if failures == 1:
            owner.log.error(
                "saving the state failed; writes are refused until a retry succeeds",
                exc_info=error,
            )
        else:
            owner.log.warning("saving the state failed again (%d tries): %r", failures, error)
        self._last_save = self._loop.time()
        if self._handle is None and owner.phase <= Phase.DESTROY_GRACE:
            base = max(0.05, owner.options.state_save_interval)
            delay = min(MAX_SAVE_RETRY_DELAY, base * 2 ** min(failures - 1, 16))
            self._handle = self._timers.call_later(delay, self._start_save)

    def notify_savers(self, error: BaseException | None) -> None:
        """Settle the waiters of :meth:`save_state`: saved (``error`` None) or not."""
        waiters = self._waiters
        if waiters is None:
            return
        self._waiters = None
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    def encode_state(self, encoded: bytes | None = None) -> bytes:
        """The state as RivetKit stores it: CBOR of the JSON-compatible form (``encoded``:
        that of the state as it is now, already made, returned as it is)."""
        owner = self._owner
        if owner._state is None and not owner.definition.has_state:
            return b""
        if encoded is not None:
            return encoded
        try:
            return encode_state(owner._state)
        except Exception as exc:
            raise _unencodable(exc) from exc

    async def write_snapshot(
        self,
        *,
        has_initialized: bool = True,
        extra: list[tuple[bytes, bytes]] | None = None,
        encoded: bytes | None = None,
    ) -> None:
        """Encode and store the snapshot now (with the ``extra`` KV entries, atomically).

        ``encoded``: :meth:`encode_state` of the state as it is now, already made (the
        start's checkpoint), used instead of encoding it again.
        """
        snapshot, puts = self._prepare(has_initialized, extra, encoded)
        if puts:
            await self._store(snapshot, puts)
        elif self._owner._guard.save_error is not None:  # unchanged, nothing extra: only
            self._written(snapshot, puts)  # _written's "saves work again" (snapshot None)

    async def _store(self, snapshot: Actor | None, puts: _Puts) -> None:
        """Write what :meth:`_prepare` gave, then record it as saved."""
        if puts:
            try:
                await self._owner.driver.kv_write(self._owner.actor_id, puts=puts)
            except Exception as exc:
                self._write_failed(exc, snapshot)
                raise
            except BaseException:  # cancelled: nothing is known to be written
                self._write_failed(None, snapshot)
                raise
        self._written(snapshot, puts)

    def _prepare(
        self,
        has_initialized: bool,
        extra: list[tuple[bytes, bytes]] | None,
        encoded: bytes | None = None,
    ) -> tuple[Actor | None, _Puts]:
        """Encode the state (unless ``encoded`` is given): ``(snapshot, puts)`` to write,
        ``snapshot`` None when it is the persisted one (``puts`` then holds only ``extra``).
        Raises ``actor/invalid_state`` (the state stays dirty) when the state cannot be
        encoded."""
        owner = self._owner
        guard = owner._guard
        self._changed = False
        try:
            state = self.encode_state(encoded)
        except RivetError:
            if not guard.enabled or owner.phase == _LOADING:
                self._changed = True
                raise
            # Changed outside any action (``run``, a timer): nobody can be told, so the
            # state goes back to its checkpoint, which holds every acknowledged write.
            problem = guard.recover(owner)
            owner.log.error(
                "the state became unsaveable (%s); restored its last saveable form", problem
            )
            state = self.encode_state()
        previous = self.snapshot
        events = self.events
        if (
            previous is not None
            and previous.state == state
            and previous.has_initialized == has_initialized
            and previous.scheduled_events == events
        ):
            return None, list(extra) if extra else []
        # Actor's fields in order (without the NamedTuple's Python-level __new__); the
        # events are never mutated in place: shared, not copied.
        snapshot: Actor = _new_tuple(
            Actor,
            (
                owner.record.input if previous is None else previous.input,
                has_initialized,
                state,
                events,
            ),
        )
        puts = [(keys.PERSIST, actor_persist.ACTOR.encode(snapshot))]
        if extra:
            puts.extend(extra)
        self._unsaved += 1
        # The throttle counts from the start of a save: at most one starts per interval,
        # and the write's own time does not stretch the interval.
        self._last_save = self._loop.time()
        return snapshot, puts

    def _written(self, snapshot: Actor | None, puts: _Puts) -> None:
        """What :meth:`_prepare` gave is stored."""
        owner = self._owner
        if snapshot is not None:
            self._unsaved -= 1
            self.snapshot = snapshot
            if owner.metrics is not None:
                owner.metrics.state_saves += 1
                owner.metrics.state_bytes += len(puts[0][1])
        guard = owner._guard
        if guard.save_error is not None and guard.save_worked():  # (no call while saves work)
            owner.log.warning("saving the state works again; writes are accepted")

    def _write_failed(self, error: BaseException | None, snapshot: Actor | None) -> None:
        """What :meth:`_prepare` gave was not stored (``error`` None: cancelled)."""
        if snapshot is not None:
            self._unsaved -= 1
        self._changed = True
        if error is not None:
            self._owner._guard.save_failed(error)

    async def save_state(self, *, immediate: bool = False) -> None:
        """Wait until the current state is persisted (``immediate``: without the throttle).

        Raises ``actor/invalid_state`` when the state cannot be saved and
        ``actor/state_save_failed`` when the save fails (see :mod:`.state_guard`).
        """
        owner = self._owner
        if owner._guard.enabled and owner.phase != Phase.LOADING:
            owner._guard.check(owner, what="save_state")
        self._changed = True
        waiter = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)  # first: the save may end at once
        if immediate:
            self.cancel_scheduled()
            if not self._saving:
                self._begin_save()
        else:
            self.mark_dirty()
        try:
            await waiter
        except RivetError:
            raise
        except Exception as exc:
            raise save_failed(exc) from exc
        if self.dirty:  # changed since the save that ended began, or a later one is in flight
            await self.save_state(immediate=True)

    async def flush(self, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Persist now, whatever the throttle says, and wait for it (with the ``extra`` KV
        entries in the same atomic write: a workflow step's history and its state change)."""
        self.cancel_scheduled()
        await self._wait_saving()
        try:
            await self.write_snapshot(extra=extra)
        except RivetError:
            raise
        except Exception as exc:
            self._retry_save(exc)
            raise save_failed(exc) from exc

    async def final_save(self, deadline: float, *, destroying: bool) -> Exception | None:
        """Save the state (and the hibernatable connections) one last time, retrying a
        failing save until the grace ``deadline``; return the last error, if it never worked."""
        owner = self._owner
        delay = 0.05
        while True:
            try:
                if self._saving:
                    await self._wait_saving()
                await self.write_snapshot()
                if not destroying and owner.conns:  # persist() stores nothing without any
                    await owner.connections.persist()
                return None
            except Exception as exc:
                # A RivetError is the state itself (unsaveable): trying again changes nothing.
                if isinstance(exc, RivetError) or self._loop.time() + delay >= deadline:
                    owner.log.exception("the final save failed")
                    return exc
                owner.log.warning("the final save failed (%r); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def remember_state(self) -> None:
        """Take the current state as the one ``on_state_change`` last saw (at start)."""
        self._seen_state = self.encode_state()

    def check_state_change(self, hook: Any) -> None:
        """Run ``on_state_change`` (``hook``) if the state differs from what it last saw."""
        if self.in_state_change:
            return
        owner = self._owner
        try:
            encoded = self.encode_state()
        except RivetError:
            return
        if encoded == self._seen_state:
            return
        self._seen_state = encoded
        self.in_state_change = True
        error: RivetError | None = None
        try:
            result = hook(owner.context, owner._state)
            if inspect.isawaitable(result):
                owner.log.warning("on_state_change is synchronous; its awaitable was dropped")
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except RivetError as exc:
            error = exc
        except Exception:
            owner.log.exception("on_state_change failed")
        finally:
            self.in_state_change = False
        try:
            mutated = self.encode_state() != encoded
        except RivetError:
            mutated = True
        if mutated:
            # Rejected, as RivetKit's state proxy does: the hook's change does not stick.
            owner._state = cbor_loads(encoded) if encoded else None
            raise actor_error(
                "state_mutation_reentrant", "state cannot be changed inside on_state_change"
            )
        if error is not None:
            raise error


_WRITE_SNAPSHOT = StatePersistence.write_snapshot


def _unencodable(error: Exception) -> RivetError:
    """``actor/invalid_state`` for a state :func:`encode_state` refused with ``error``."""
    return actor_error("invalid_state", f"the state cannot be encoded as CBOR: {error}")
