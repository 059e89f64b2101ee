"""The SQLite writer thread: the one connection to ``rivetkit.db``, with group commit.

Every operation, reads included, is a plain function ``fn(conn, *args)`` submitted to the
thread; operations run in submission order, so a read sees every write submitted before it.
The event loop only appends to a list and awaits a future, never touching the disk.

The thread takes *every* operation pending when it wakes and runs them as one batch: a batch
holding a write runs in one ``BEGIN IMMEDIATE ... COMMIT`` transaction (group commit), each
write inside its own ``SAVEPOINT`` so that a failing operation is rolled back alone and the
others still commit. Futures are resolved only after the commit, all with one
``call_soon_threadsafe`` per batch, so an acknowledged write is a committed write.

:meth:`SqliteStore.write_soon` is the same write with a callback instead of a future (no
coroutine, no future: the throttled state saves of many actors). Such writes made during one
turn of the loop reach the writer together, at the end of the turn or before the next
operation submitted otherwise, so the order of all operations is the order of the calls.

Durability: the database is in WAL mode. With ``synchronous=NORMAL`` (the default) a commit
is a ``write()`` of the WAL frames into the OS page cache with no fsync; the WAL is fsynced at
checkpoints. A killed process (SIGKILL, OOM, crash) therefore loses no committed transaction,
since the kernel still holds the pages; only an OS crash or power loss can lose the last
commits (never corrupt the file). ``synchronous=FULL`` also fsyncs the WAL at every commit,
which group commit amortizes over a batch, for machines that must survive power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import types
from collections.abc import Callable
from typing import Any, Concatenate, Literal, ParamSpec, TypeAlias, TypeVar

from rivetkit.errors import RivetError

from . import tables

__all__ = ["Done", "SqliteStore", "Synchronous"]

logger = logging.getLogger("rivetkit.driver")

T = TypeVar("T")
P = ParamSpec("P")

#: SQLite's ``synchronous`` setting (see the module docstring).
Synchronous = Literal["NORMAL", "FULL"]

#: What :meth:`SqliteStore.write_soon` calls with its outcome: ``done(True, result)`` once
#: committed, ``done(False, exception)`` if it failed.
Done = Callable[[bool, Any], None]
# Whom an operation answers: its future, or a write_soon callback.
_ItemTarget: TypeAlias = "asyncio.Future[Any] | Done"
# Whom an answer goes to: an operation's target, or the write_soon callbacks of a put run
# (given the same outcome).
_Target: TypeAlias = "_ItemTarget | list[Done]"
# The keyword arguments of a write_soon put (never mutated: shared, not one dict per save).
_NO_KWARGS: dict[str, Any] = {}
# One submitted operation: (fn, args, kwargs, target, is_write).
_Item = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], _ItemTarget, bool]
# The starvation watchdog's period and the longest it lets the writer run (seconds).
_WATCH_INTERVAL = 0.01
_WATCH_YIELD = 0.001
# One answer: (target, succeeded, result or exception).
_Answer = tuple[_Target, bool, Any]


def _deliver(answers: list[_Answer]) -> None:
    for target, ok, value in answers:
        if isinstance(target, list):  # the callbacks of one put run, all with the same answer
            for done in target:
                try:
                    done(ok, value)
                except Exception:
                    logger.exception("a write_soon callback failed")
            continue
        if not isinstance(target, asyncio.Future):
            try:
                target(ok, value)
            except Exception:  # one failing callback must not keep the others' answers
                logger.exception("a write_soon callback failed")
            continue
        if target.cancelled():
            continue
        if ok:
            target.set_result(value)
        else:
            target.set_exception(value)


class SqliteStore:
    """The writer thread owning the only connection to one SQLite file.

    Counters (read them from the event loop; they only grow):

    * :attr:`transactions`: write transactions committed (one per batch holding a write);
    * :attr:`write_ops`: write operations committed;
    * :attr:`read_ops`: read operations answered.
    """

    transactions: int
    write_ops: int
    read_ops: int

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Synchronous = "NORMAL"
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self.path = os.fspath(path)
        self.synchronous: Synchronous = synchronous
        self.transactions = 0
        self.write_ops = 0
        self.read_ops = 0
        # _pending and _closing are guarded by _lock. The writer, finding nothing to do,
        # sets _sleeping and blocks on _wake (held from the start); whoever turns _sleeping
        # off releases _wake once (cheaper than a threading.Condition, written in Python).
        self._lock = threading.Lock()
        self._wake = threading.Lock()
        self._wake.acquire()
        self._sleeping = False
        self._pending: list[_Item] = []
        self._soon: list[_Item] = []  # write_soon operations of this turn of the loop
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed: asyncio.Future[None] | None = None
        # Starvation watchdog (see _watchdog): batches finished, and the loop's last look.
        self._working = False
        self._batches = 0
        self._batch_done = threading.Event()
        self._watch: asyncio.TimerHandle | None = None
        self._watched_batches = 0

    # -- life ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the writer thread, open the database and create the schema."""
        if self._thread is not None:
            raise RuntimeError("the store is already open")
        loop = asyncio.get_running_loop()
        self._loop = loop
        ready: asyncio.Future[None] = loop.create_future()
        self._closed = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="rivetkit-sqlite-writer", daemon=True
        )
        self._thread.start()
        await ready

    async def close(self) -> None:
        """Run every operation already submitted, then close the connection and the thread."""
        if self._thread is None or self._closed is None:
            return
        self._flush_soon()
        with self._lock:
            self._closing = True
            wake, self._sleeping = self._sleeping, False
        if wake:
            self._wake.release()
        try:
            await asyncio.shield(self._closed)
        finally:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._thread is not None and not self._closing

    # -- submitting ------------------------------------------------------------------------

    def read(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """Run ``fn(conn, *args, **kwargs)`` on the writer thread; a future of its result."""
        return self._submit(fn, args, kwargs, False)

    def write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """Like :meth:`read`, in a transaction; the future resolves once it has committed."""
        # _submit(fn, args, kwargs, True) inline: one Python call fewer per write.
        loop = self._loop
        if loop is None:
            raise RivetError("driver", "closed", "the embedded driver's store is not open")
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closing:
                raise RivetError("driver", "closed", "the embedded driver's store is closed")
            if self._soon:  # they were submitted first
                self._pending.extend(self._soon)
                self._soon = []
            self._pending.append((fn, args, kwargs, future, True))
            wake, self._sleeping = self._sleeping, False
        if wake:
            self._wake.release()
        if self._watch is None:
            self._arm_watchdog(loop)
        return future

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], write: bool
    ) -> asyncio.Future[Any]:
        loop = self._loop
        if loop is None:
            raise RivetError("driver", "closed", "the embedded driver's store is not open")
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._closing:
                raise RivetError("driver", "closed", "the embedded driver's store is closed")
            if self._soon:  # they were submitted first
                self._pending.extend(self._soon)
                self._soon = []
            self._pending.append((fn, args, kwargs, future, write))
            wake, self._sleeping = self._sleeping, False
        if wake:
            self._wake.release()
        if self._watch is None:
            self._arm_watchdog(loop)
        return future

    def write_soon(
        self,
        done: Done,
        fn: Callable[Concatenate[sqlite3.Connection, P], Any],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """Like :meth:`write`, answering ``done(ok, result_or_exception)`` on the loop once
        committed (or failed) instead of resolving a future.

        The operation reaches the writer at the end of this turn of the loop, with every
        other ``write_soon`` of the turn (one wake-up), or sooner when another operation is
        submitted: the order of operations is always the order of the calls. RivetError
        ``driver/closed`` if the store is not open.
        """
        loop = self._loop
        if loop is None or self._closing:
            raise RivetError("driver", "closed", "the embedded driver's store is closed")
        soon = self._soon
        soon.append((fn, args, kwargs, done, True))
        if len(soon) == 1:
            loop.call_soon(self._flush_soon)

    def put_soon(self, done: Done, actor_id: str, puts: Any) -> None:
        """``write_soon(done, tables.kv_write, actor_id, puts, ())``, with less work per call
        (the embedded driver's ``kv_put_soon``: one throttled state save)."""
        loop = self._loop
        if loop is None or self._closing:
            raise RivetError("driver", "closed", "the embedded driver's store is closed")
        soon = self._soon
        soon.append((tables.kv_write, (actor_id, puts, ()), _NO_KWARGS, done, True))
        if len(soon) == 1:
            loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        """Hand the ``write_soon`` operations of this turn to the writer (on the loop)."""
        if not self._soon:
            return
        wake = False
        with self._lock:
            batch, self._soon = self._soon, []
            if not self._closing:
                self._pending.extend(batch)
                wake, self._sleeping = self._sleeping, False
                batch = []
        if wake:
            self._wake.release()
        if batch:  # the writer is gone: nothing of these was written
            closed = RivetError("driver", "closed", "the embedded driver's store is closed")
            _deliver([(item[3], False, closed) for item in batch])
        elif self._watch is None and self._loop is not None:
            self._arm_watchdog(self._loop)

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        # (Callers test ``self._watch is None`` first: no call while it is armed.)
        if self._watch is None:
            self._watched_batches = self._batches
            self._watch = loop.call_later(_WATCH_INTERVAL, self._watchdog)

    def _watchdog(self) -> None:
        """Every 10 ms while operations are outstanding (on the loop): if the writer has
        finished no batch since the last look, let it run for up to 1 ms.

        A thread waiting for the GIL is woken each time the holder drops it, and then loses
        the race to the holder taking it back; a busy event loop drops it at every
        ``select``, so CPython's forced switch (after 5 ms without a drop) never comes, and the
        writer thread, which needs the GIL after every SQLite call, can starve for seconds.
        Waiting on an event here hands it the GIL with no one to race.
        """
        self._watch = None
        if not self._pending and not self._working:
            return
        if self._batches == self._watched_batches:
            self._batch_done.clear()
            self._batch_done.wait(_WATCH_YIELD)
        self._watched_batches = self._batches
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._watch = loop.call_later(_WATCH_INTERVAL, self._watchdog)

    # -- the writer thread -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=256)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RivetError(
                    "driver", "storage_error", f"could not put {self.path} in WAL mode ({mode})"
                )
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA temp_store=MEMORY")
            tables.init_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        # RuntimeError: the loop was closed under us (the process exits without stop()).
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._call(_deliver, [(ready, False, exc)])
            self._fail_pending_and_exit(exc)
            return
        self._call(_deliver, [(ready, True, None)])
        error: BaseException | None = None
        try:
            while True:
                with self._lock:
                    batch = self._pending
                    self._pending = []
                    self._working = bool(batch)
                    idle = not batch and not self._closing
                    if idle:
                        self._sleeping = True
                if batch:
                    self._apply(conn, batch)
                    self._working = False
                    self._batches += 1
                    self._batch_done.set()
                elif idle:
                    self._wake.acquire()  # until an operation or the close comes
                else:  # closing, and everything submitted is done
                    break
        except BaseException as exc:  # a bug here must not leave futures hanging
            logger.exception("the SQLite writer thread failed")
            error = exc
        finally:
            try:
                conn.close()
            except sqlite3.Error:
                logger.exception("closing %s failed", self.path)
        self._fail_pending_and_exit(error)

    def _fail_pending_and_exit(self, error: BaseException | None) -> None:
        with self._lock:
            self._closing = True
            self._working = False
            batch = self._pending
            self._pending = []
        exc = error or RivetError("driver", "closed", "the embedded driver's store is closed")
        answers: list[_Answer] = [(item[3], False, exc) for item in batch]
        if self._closed is not None:
            answers.append((self._closed, True, None))
        self._call(_deliver, answers)

    def _apply(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        answers: list[_Answer] = []
        if not any(item[4] for item in batch):
            for fn, args, kwargs, target, _ in batch:
                try:
                    answers.append((target, True, fn(conn, *args, **kwargs)))
                except Exception as exc:
                    answers.append((target, False, exc))
            self.read_ops += len(batch)
            self._call(_deliver, answers)
            return

        try:
            answers, writes, reads = self._transaction(conn, batch)
        except Exception as exc:
            # Nothing of this batch is committed, so nothing of it may be acknowledged.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    logger.exception("rolling back a failed transaction failed")
            self._call(_deliver, [(item[3], False, exc) for item in batch])
            return
        self.transactions += 1
        self.write_ops += writes
        self.read_ops += reads
        self._call(_deliver, answers)

    @classmethod
    def _transaction(
        cls, conn: sqlite3.Connection, batch: list[_Item]
    ) -> tuple[list[_Answer], int, int]:
        answers: list[_Answer] = []
        writes = reads = 0
        conn.execute("BEGIN IMMEDIATE")
        i, n = 0, len(batch)
        while i < n:
            fn, args, kwargs, target, is_write = batch[i]
            if not is_write:
                try:
                    answers.append((target, True, fn(conn, *args, **kwargs)))
                except Exception as exc:
                    answers.append((target, False, exc))
                reads += 1
                i += 1
                continue
            # (A plain function: any callable is an operation, an unhashable one too.)
            run = tables.RUNS.get(fn) if type(fn) is types.FunctionType else None
            if run is not None and not kwargs and len(args) == run[0]:
                # A run of the same operation (the creations or starts of many actors):
                # two statements for the whole run rather than two per operation.
                j, end = i + 1, min(n, i + tables.RUN_CHUNK)
                while j < end and _same_op(batch[j], fn, run[0]):
                    j += 1
                if j - i > 1:
                    writes += cls._op_run(conn, run[1], batch[i:j], answers)
                    i = j
                    continue
            if _is_plain_put(batch[i]):
                # A run of puts-only kv_write operations (state saves of many actors): a few
                # statements for the whole run rather than three per operation.
                j = i + 1
                while j < n and _is_plain_put(batch[j]):
                    j += 1
                if j - i > 1:
                    writes += cls._put_run(conn, batch[i:j], answers)
                    i = j
                    continue
            writes += cls._write_one(conn, batch[i], answers)
            i += 1
        conn.execute("COMMIT")
        return answers, writes, reads

    @staticmethod
    def _write_one(conn: sqlite3.Connection, item: _Item, answers: list[_Answer]) -> int:
        """Run one write operation in its own savepoint; 1 if it succeeded, else 0."""
        fn, args, kwargs, target, _ = item
        if type(fn) is types.FunctionType and fn in tables.ONE_WRITE:
            # Its one write is its last statement, and a failing statement leaves nothing
            # behind: no savepoint needed (two statements, two GIL hand-offs fewer).
            try:
                value = fn(conn, *args, **kwargs)
            except Exception as exc:
                if not conn.in_transaction:
                    raise
                answers.append((target, False, exc))
                return 0
            answers.append((target, True, value))
            return 1
        conn.execute("SAVEPOINT op")
        try:
            value = fn(conn, *args, **kwargs)
        except Exception as exc:
            if not conn.in_transaction:
                # SQLite aborted the whole transaction (e.g. disk full).
                raise
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            answers.append((target, False, exc))
            return 0
        conn.execute("RELEASE op")
        answers.append((target, True, value))
        return 1

    @classmethod
    def _op_run(
        cls,
        conn: sqlite3.Connection,
        run_fn: Callable[[sqlite3.Connection, list[tuple[Any, ...]]], Any],
        run: list[_Item],
        answers: list[_Answer],
    ) -> int:
        """Run consecutive calls of one :data:`tables.RUNS` operation with its run function,
        with the same outcome as one by one (which it falls back to when the run function
        declines or fails: its only write is its last statement, so nothing was written)."""
        try:
            outcomes = run_fn(conn, [item[1] for item in run])
        except Exception:
            if not conn.in_transaction:
                raise
            outcomes = None
        if outcomes is None:
            return sum(cls._write_one(conn, item, answers) for item in run)
        done = 0
        for item, (ok, value) in zip(run, outcomes, strict=True):
            answers.append((item[3], ok, value))
            done += ok
        return done

    @classmethod
    def _put_run(cls, conn: sqlite3.Connection, run: list[_Item], answers: list[_Answer]) -> int:
        """Run consecutive puts-only ``kv_write`` operations as multi-row inserts, with the
        same outcome as one by one (in order; a failing operation fails alone)."""
        # The rows' fields, flat: (actor_id, key, value) for each row, in order.
        fields: list[Any] = []
        valid: list[_Item] = []
        for item in run:
            actor_id, puts = item[1][0], item[1][1]
            if len(puts) == 1:
                put = puts[0]
                if (
                    type(put) is tuple
                    and len(put) == 2
                    and type(put[0]) is bytes
                    and type(put[1]) is bytes
                ):
                    fields += (actor_id, *put)  # one snapshot: the common case
                    valid.append(item)
                    continue
            try:
                tables.check_puts(puts)
            except Exception as exc:
                answers.append((item[3], False, exc))
                continue
            for key, value in puts:
                fields += (actor_id, key, value)
            valid.append(item)
        guard = len(fields) > 3 * tables.PUT_ROWS_CHUNK  # one statement is atomic by itself
        if guard:
            conn.execute("SAVEPOINT puts")
        try:
            tables.kv_put_fields(conn, fields)
        except Exception:
            if not conn.in_transaction:
                raise
            if guard:
                conn.execute("ROLLBACK TO puts")
                conn.execute("RELEASE puts")
            # One by one, so that only the failing operation fails.
            return sum(cls._write_one(conn, item, answers) for item in valid)
        if guard:
            conn.execute("RELEASE puts")
        if valid:
            # Every write_soon callback of the run in one answer (the futures one by one).
            dones: list[Done] = []
            for item in valid:
                target = item[3]
                if isinstance(target, asyncio.Future):
                    answers.append((target, True, None))
                else:
                    dones.append(target)
            if dones:
                answers.append((dones, True, None))
        return len(valid)


def _is_plain_put(item: _Item) -> bool:
    """A write ``tables.kv_write(actor_id, puts, deletes)`` with no deletes."""
    fn, args, kwargs, _, is_write = item
    return fn is tables.kv_write and is_write and not kwargs and len(args) == 3 and not args[2]


def _same_op(item: _Item, fn: Callable[..., Any], nargs: int) -> bool:
    """A write ``fn`` with ``nargs`` positional arguments and no keyword argument."""
    return item[0] is fn and item[4] and not item[2] and len(item[1]) == nargs
