"""Per-actor SQL databases of the engine driver: SQLite pages kept in the actor's KV.

In engine mode an actor may wake in any envoy process of its pool, so its ``c.db`` cannot be
a local file. The database file is instead stored in the actor's engine KV through an SQLite
VFS (``apsw``), and follows the actor wherever the engine places it.

The files are kept in chunks of 4 KiB under the actor's KV prefix ``[9]``
(:mod:`.sqlkv_pages`: the key layout, the chunk cache, how a commit is written within the
engine's KV limits), behind a process-wide SQLite VFS (:mod:`.sqlkv_vfs`). A statement
returns only once its commit is in the KV, so a commit survives a process kill.

**Threads.** SQLite runs on the pool's threads (never on the event loop); the VFS calls the
driver's async KV on the loop with :func:`asyncio.run_coroutine_threadsafe` and waits for the
answer (at most ``kv_timeout`` seconds, then the statement fails with an I/O error).

The connection handed to statement functions (``SqlBackend.run``) is :class:`KvConnection`,
a small ``sqlite3``-like wrapper over the ``apsw`` connection (``execute``, ``executemany``,
``executescript``, cursors with ``fetchone``/``fetchall``/``description``/``rowcount``/
``lastrowid``), so migrations written as functions work on both drivers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import apsw

from .sqlkv_pages import (
    CACHE_CHUNKS,
    CHUNK_SIZE,
    ActorStore,
    DriverKv,
    KvBridge,
    KvStore,
    chunk_key,
    decode_meta,
    encode_meta,
    meta_key,
)
from .sqlkv_vfs import the_vfs

__all__ = [
    "CHUNK_SIZE",
    "DriverKv",
    "KvConnection",
    "KvCursor",
    "KvStore",
    "SqlKvBackend",
    "SqlKvPool",
    "chunk_key",
    "decode_meta",
    "encode_meta",
    "meta_key",
]

#: Threads shared by every actor database of a pool.
SQL_THREADS: Final = 2


# -- the sqlite3-like connection -------------------------------------------------------------

_DML = re.compile(
    r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(insert|update|delete|replace)\b", re.I | re.S
)


class KvCursor:
    """The result of one statement, shaped like a ``sqlite3.Cursor`` (rows are fetched)."""

    arraysize = 1

    def __init__(
        self,
        rows: list[tuple[Any, ...]],
        description: tuple[tuple[Any, ...], ...] | None,
        rowcount: int,
        lastrowid: int | None,
    ) -> None:
        self._rows = rows
        self._next = 0
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        """The next ``size`` rows."""
        count = self.arraysize if size is None else size
        rows = self._rows[self._next : self._next + count]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows."""
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        """Drop the rows."""
        self._rows = []


class KvConnection:
    """A ``sqlite3.Connection``-like wrapper of the ``apsw`` connection (autocommit, as the
    embedded driver's ``isolation_level=None`` connection). ``.apsw`` is the raw connection."""

    def __init__(self, connection: apsw.Connection) -> None:
        self.apsw = connection

    def _run(self, sql: str, parameters: Any, many: bool = False) -> KvCursor:
        cursor = self.apsw.cursor()
        seen: list[tuple[tuple[Any, ...], ...] | None] = []

        def trace(cur: Any, _sql: str, _bindings: Any) -> bool:
            try:
                seen.append(tuple(cur.description))
            except apsw.ExecutionCompleteError:
                seen.append(None)
            return True

        cursor.exec_trace = trace
        before = self.apsw.total_changes()
        if many:
            rows = list(cursor.executemany(sql, parameters))
        else:
            rows = list(cursor.execute(sql, parameters))
        description = seen[-1] if seen else None
        rowcount = -1
        if _DML.match(sql):
            rowcount = self.apsw.total_changes() - before if many else self.apsw.changes()
        return KvCursor(rows, description or None, rowcount, self.apsw.last_insert_rowid())

    def execute(self, sql: str, parameters: Any = ()) -> KvCursor:
        """Run one statement with its parameters (a sequence or a mapping)."""
        return self._run(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> KvCursor:
        """Run one statement once per parameter set."""
        return self._run(sql, seq_of_parameters, many=True)

    def executescript(self, script: str) -> KvCursor:
        """Run several statements (no implicit commit, unlike ``sqlite3``)."""
        return self._run(script, None)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        return not self.apsw.get_autocommit()

    @property
    def total_changes(self) -> int:
        """Rows changed since the connection opened."""
        return int(self.apsw.total_changes())

    def commit(self) -> None:
        """Commit the open transaction, if any."""
        if self.in_transaction:
            self.apsw.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        if self.in_transaction:
            self.apsw.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection."""
        self.apsw.close()


# -- the backend -----------------------------------------------------------------------------


class SqlKvPool:
    """The threads of the KV-backed databases of a driver.

    :param kv_timeout: seconds a SQLite thread waits for one KV request
    :param cache_chunks: clean 4 KiB chunks cached per open database
    """

    def __init__(self, *, kv_timeout: float = 60.0, cache_chunks: int = CACHE_CHUNKS) -> None:
        self.kv_timeout = kv_timeout
        self.cache_chunks = cache_chunks
        self._executor: ThreadPoolExecutor | None = None

    def executor(self) -> ThreadPoolExecutor:
        """The shared threads (created on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(SQL_THREADS, thread_name_prefix="rivetkit-sqlkv")
        return self._executor

    def open(self, kv: KvStore) -> SqlKvBackend:
        """A backend for one actor's database in ``kv`` (opened on first use)."""
        return SqlKvBackend(self, kv)

    def shutdown(self) -> None:
        """Let the threads go (the driver stops; every database is closed by then)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


class SqlKvBackend:
    """One actor's database in its KV (implements :class:`rivetkit.db.SqlBackend`)."""

    def __init__(self, pool: SqlKvPool, kv: KvStore) -> None:
        self._pool = pool
        self._kv = kv
        self._connection: KvConnection | None = None
        self._path: str | None = None
        self.store: ActorStore | None = None

    def _connect(self, loop: asyncio.AbstractEventLoop) -> KvConnection:
        if self._connection is None:
            vfs = the_vfs()
            store = ActorStore(
                self._kv,
                KvBridge(loop, self._pool.kv_timeout),
                cache_chunks=self._pool.cache_chunks,
            )
            store.open()
            path = vfs.attach(store)
            try:
                connection = apsw.Connection(
                    path,
                    flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE,
                    vfs=vfs.NAME,
                )
                connection.execute(f"PRAGMA page_size={CHUNK_SIZE}")
                connection.execute("PRAGMA journal_mode=DELETE")
                connection.execute("PRAGMA synchronous=FULL")
                connection.execute("PRAGMA temp_store=MEMORY")
                connection.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                vfs.detach(path)
                raise
            self.store = store
            self._path = path
            self._connection = KvConnection(connection)
        return self._connection

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(connection)`` on the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool.executor(), lambda: fn(self._connect(loop)))

    async def close(self) -> None:
        """Close the database (everything committed is already in the KV)."""
        connection, self._connection = self._connection, None
        path, self._path = self._path, None
        store = self.store
        if connection is None:
            return

        def close() -> None:
            try:
                connection.close()
                if store is not None:
                    store.flush()
            finally:
                if path is not None:
                    the_vfs().detach(path)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool.executor(), close)
