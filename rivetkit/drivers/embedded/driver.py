"""The embedded driver: every actor of the process in one SQLite file, placed in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rivetkit.drivers.base import ActorHost, ActorRecord, DestroyCallback, DriverKind
from rivetkit.errors import RivetError
from rivetkit.protocol.actor_keys import check_name_key, serialize_key

from . import tables
from .alarms import AlarmTimers
from .fresh import OFFLINE_KEYS, FreshActors
from .lock import DataDirLock
from .placement import Placement
from .sql import SqliteBackend, SqlitePool
from .store import Done, SqliteStore, Synchronous

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

__all__ = ["DB_FILE_NAME", "DEFAULT_DATA_DIR", "EmbeddedDriver"]

logger = logging.getLogger("rivetkit.driver")

#: The data directory used when none is given.
DEFAULT_DATA_DIR = ".rivetkit"
#: The SQLite file inside the data directory.
DB_FILE_NAME = "rivetkit.db"


class EmbeddedDriver:
    """The default :class:`~rivetkit.drivers.base.Driver`: one process, one SQLite file.

    Everything lives in ``<data_dir>/rivetkit.db`` (WAL mode), written by one thread with group
    commit (:class:`~.store.SqliteStore`); actors are started and stopped in this process
    (:class:`~.placement.Placement`); alarms share one loop timer (:class:`~.alarms.AlarmTimers`).
    A lock file keeps a second process (or driver) off the same directory.

    :param data_dir: the data directory, created if missing.
    :param clock: the wall clock in epoch seconds (timestamps and alarms); tests pass a fake.
    :param synchronous: SQLite's ``synchronous`` mode. ``"NORMAL"`` (default) loses no
        acknowledged write when the process is killed, only on an OS crash or power loss;
        ``"FULL"`` survives those too, at one fsync per group commit.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "NORMAL",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.store = SqliteStore(self.data_dir / DB_FILE_NAME, synchronous=synchronous)
        self.alarms = AlarmTimers(clock, self._alarm_due)
        #: Actors created here whose KV nothing has written yet: their KV reads are
        #: answered empty without a store trip (see :mod:`.fresh`).
        self.fresh = FreshActors()
        self.placement = Placement(self.store, self.alarms, clock, fresh=self.fresh)
        self._lock = DataDirLock(self.data_dir)
        self._started = False
        self._stopped = False
        #: Per-actor SQL databases (``c.db``): one SQLite file each under ``actors/``.
        self.sql = SqlitePool(self.data_dir)
        self.placement.on_destroyed(self._delete_database)
        if type(self) is EmbeddedDriver:
            # Each actor's start and sleep go straight to the placement: no coroutine or
            # frame of this class in between (a subclass keeps its own overrides).
            self.ensure_started = self.placement.ensure_started  # type: ignore[method-assign]
            self.request_sleep = partial(  # type: ignore[method-assign]
                self.placement.request_stop, reason="sleep"
            )

    @property
    def kind(self) -> DriverKind:
        """``"embedded"``."""
        return "embedded"

    @property
    def pool_name(self) -> str:
        """``""``: the embedded driver serves no engine pool."""
        return ""

    def sql_backend(self, actor_id: str) -> SqliteBackend:
        """The actor's SQL database (opened lazily; see :mod:`.sql`)."""
        return self.sql.open(actor_id)

    async def _delete_database(self, actor_id: str) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self.sql.executor(), self.sql.delete, actor_id
        )

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / DB_FILE_NAME

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- life of the driver ----------------------------------------------------------------

    async def start(self, host: ActorHost) -> None:
        """Lock the data directory, open the database, arm the stored alarms.

        RivetError ``driver/data_dir_locked`` if another process (or driver) uses the directory.
        """
        if self._started:
            raise RuntimeError("the driver was already started")
        # Startup only: a mkdir and a tiny lock file, before the writer thread exists.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            await self.store.open()
            stored_alarms = await self.store.read(tables.load_alarms)
        except BaseException:
            await self.store.close()
            self._lock.release()
            raise
        self._started = True
        self.placement.host = host
        self.alarms.load(stored_alarms)
        self.alarms.attach(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Stop every running actor (reason ``shutdown``) concurrently, then flush and close
        the database and release the lock. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self.alarms.close()
        try:
            await self.placement.shutdown()
        finally:
            try:
                await self.store.close()
            finally:
                self.sql.shutdown()
                self._lock.release()

    # -- placement -------------------------------------------------------------------------

    async def get_or_create_actor(
        self, name: str, key: Sequence[str], input: bytes | None
    ) -> tuple[ActorRecord, bool]:
        """The live actor with ``(name, key)``, created when missing; ``(record, created)``."""
        segments = check_name_key(name, key)
        record, created = await self.store.write(
            tables.get_or_create_actor,
            name,
            segments,
            serialize_key(segments),
            input,
            int(self.clock() * 1000),  # _now_ms() inline (one call fewer per creation)
        )
        if created:
            self.fresh.created(record.actor_id)
        return record, created

    async def create_actor(self, name: str, key: Sequence[str], input: bytes | None) -> ActorRecord:
        """Create an actor; RivetError ``actor/duplicate_key`` if ``(name, key)`` is taken."""
        segments = check_name_key(name, key)
        record: ActorRecord = await self.store.write(
            tables.create_actor, name, segments, serialize_key(segments), input, self._now_ms()
        )
        self.fresh.created(record.actor_id)
        return record

    async def get_actor(self, actor_id: str) -> ActorRecord | None:
        """The actor with this id (destroyed ones included), or None."""
        return await self.store.read(tables.get_actor, actor_id)

    async def find_actor(self, name: str, key: Sequence[str]) -> ActorRecord | None:
        """The live (not destroyed) actor with ``(name, key)``, or None."""
        segments = check_name_key(name, key)
        return await self.store.read(tables.find_actor, name, serialize_key(segments))

    async def list_actors(self, name: str | None = None) -> list[ActorRecord]:
        """Live actors, optionally of one name, oldest first."""
        return await self.store.read(tables.list_actors, name)

    async def ensure_started(self, actor_id: str) -> ActorRecord:
        """Start the actor if it is not running (waking it); return its record.

        Concurrent calls share one start; a call during a stop waits for it, then starts the
        next generation. RivetError ``actor/not_found`` for an unknown or destroyed actor.
        """
        return await self.placement.ensure_started(actor_id)

    def request_sleep(self, actor_id: str, generation: int) -> None:
        """Ask for the actor to be stopped with reason ``sleep`` (stale generations ignored)."""
        self.placement.request_stop(actor_id, generation, "sleep")

    def request_destroy(self, actor_id: str, generation: int) -> None:
        """Ask for the actor to be destroyed (stale generations ignored); its data is deleted
        once its instance has stopped."""
        self.placement.request_stop(actor_id, generation, "destroy")

    async def destroy_actor(self, actor_id: str) -> None:
        """Destroy an actor from outside (manager API), waking it first so that its
        ``on_destroy`` runs, and wait until it is gone. RivetError ``actor/not_found`` for an
        unknown or destroyed actor."""
        await self.placement.destroy(actor_id)

    def on_destroyed(self, callback: DestroyCallback) -> None:
        """Call ``callback(actor_id)`` (plain or coroutine function) after each destroy,
        once the actor's KV is deleted; e.g. to delete its SQL database file."""
        self.placement.on_destroyed(callback)

    def running_generation(self, actor_id: str) -> int | None:
        """The generation of the actor's running instance, or None if it is not running."""
        return self.placement.running_generation(actor_id)

    # -- KV --------------------------------------------------------------------------------

    def kv_known_empty(self, actor_id: str) -> bool:
        """True when the actor's KV is known empty without a store trip, but for the keys an
        offline writer may put (:data:`.fresh.OFFLINE_KEYS`, the inspector token): a read of
        any other key or range answers nothing now. The runtime skips a new actor's loads
        of its connections, queue and recurring schedules with it."""
        return actor_id in self.fresh.ids

    async def kv_get(self, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing)."""
        fresh = self.fresh
        if actor_id in fresh.ids:  # (no Python call: see FreshActors.ids)
            for key in keys:
                if key.__class__ is not bytes:  # the common case needs no call
                    tables.check_bytes("keys", key)
            known = fresh.get(actor_id, keys)
            if known is not None:
                return known
            # Only the keys an offline writer may have put can hold a value.
            offline = [key for key in keys if key in OFFLINE_KEYS]
            values = await self.store.read(tables.kv_get, actor_id, offline)
            found = dict(zip(map(bytes, offline), values))
            return [found.get(bytes(key)) if key in OFFLINE_KEYS else None for key in keys]
        return await self.store.read(tables.kv_get, actor_id, keys)

    async def kv_write(
        self,
        actor_id: str,
        puts: Sequence[tuple[bytes, bytes]] = (),
        deletes: Sequence[bytes] = (),
    ) -> None:
        """Apply deletes, then puts, atomically; return once committed."""
        if not puts and not deletes:
            return
        self.fresh.ids.pop(actor_id, None)  # fresh.written(actor_id), with no Python call
        await self.store.write(tables.kv_write, actor_id, puts, deletes)

    def kv_put_soon(self, actor_id: str, puts: Sequence[tuple[bytes, bytes]], done: Done) -> bool:
        """Put ``puts`` as :meth:`kv_write` does, without a coroutine or a future: ``done(True,
        None)`` is called on the loop once they are committed, ``done(False, exception)`` if
        they failed. Puts of many actors made in one turn of the loop reach the writer thread
        together (:meth:`.store.SqliteStore.write_soon`); the runtime's throttled state saves
        use this.

        Returns False, doing nothing, when :meth:`kv_write` was replaced (by a subclass, or on
        this instance by a wrapper that watches or fails writes): the caller then awaits
        ``kv_write``, so that the replacement sees every write. RivetError ``driver/closed``
        once the store is closed.
        """
        if "kv_write" in self.__dict__ or type(self).kv_write is not EmbeddedDriver.kv_write:
            return False
        self.fresh.ids.pop(actor_id, None)  # fresh.written(actor_id), with no Python call
        self.store.put_soon(done, actor_id, puts)
        return True

    async def kv_list(
        self,
        actor_id: str,
        start: bytes,
        end: bytes | None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` (``end=None``: no upper bound), in key order
        (descending with ``reverse``), at most ``limit``."""
        fresh = self.fresh
        if actor_id in fresh.ids:  # (no Python call: see FreshActors.ids)
            if start.__class__ is not bytes:  # the common case needs no call
                tables.check_bytes("range bounds", start)
            if end is not None and end.__class__ is not bytes:
                tables.check_bytes("range bounds", end)
            if fresh.empty_range(actor_id, start, end):
                return []
        return await self.store.read(tables.kv_list, actor_id, start, end, reverse, limit)

    async def kv_delete_range(self, actor_id: str, start: bytes, end: bytes | None) -> None:
        """Delete entries with ``start <= key < end`` (``end=None``: no upper bound)."""
        self.fresh.written(actor_id)
        await self.store.write(tables.kv_delete_range, actor_id, start, end)

    # -- alarms ----------------------------------------------------------------------------

    async def set_alarm(self, actor_id: str, when_ms: int | None) -> None:
        """Set (or clear, with None) the actor's one alarm, in epoch milliseconds."""
        if when_ms is not None:
            when_ms = int(when_ms)
        # Timer first, synchronously: alarms then follow call order, as the writes do.
        written = self.store.write(tables.set_alarm, actor_id, when_ms)
        self.alarms.set(actor_id, when_ms)
        await written

    def poll_alarms(self) -> asyncio.Future[None]:
        """Fire the alarms due by the clock now and re-arm the timer (after a clock jump, or
        after moving a fake clock in tests).

        The alarms are handled in the background; the returned future (await it or not)
        resolves once every alarm fired by this call has been handled: its actor woken and
        the due schedules run."""
        tasks = [task for task in self.alarms.poll() if task is not None]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        remaining = len(tasks)
        if not remaining:
            done.set_result(None)
            return done

        def finished(_task: asyncio.Future[Any]) -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0 and not done.done():
                done.set_result(None)

        for task in tasks:
            task.add_done_callback(finished)
        return done

    def _alarm_due(self, actor_id: str, when_ms: int) -> asyncio.Task[Any] | None:
        if self._stopped:
            return None
        return self.placement.spawn(self._fire_alarm(actor_id, when_ms))

    async def _fire_alarm(self, actor_id: str, when_ms: int) -> None:
        # The stored alarm is cleared only after fire_alarm returns: a crash before then
        # fires it again after restart (at least once) instead of losing it.
        try:
            await self.placement.ensure_started(actor_id)
            host = self.placement.host
            assert host is not None
            await host.fire_alarm(actor_id)
            if self.alarms.get(actor_id) != when_ms:
                await self.store.write(tables.clear_alarm_if, actor_id, when_ms)
        except RivetError as exc:
            if exc.code in ("not_found", "stopped", "closed"):
                logger.debug("alarm of actor %s dropped: %s", actor_id, exc)
            else:
                logger.exception("alarm of actor %s failed", actor_id)
        except Exception:
            logger.exception("alarm of actor %s failed", actor_id)


if TYPE_CHECKING:

    def _implements_driver(driver: EmbeddedDriver) -> Driver:
        return driver
