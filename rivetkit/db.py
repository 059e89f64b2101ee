"""A SQL database per actor (``c.db``).

Declare it on the actor with its migrations; each migration runs once, in order, when the
actor wakes (a migration is a SQL script or a function taking a ``sqlite3.Connection``):

    notes = actor("notes", db=Database(migrations=[
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
    ]))

    @notes.action
    async def add(c, text: str) -> int:
        return (await c.db.execute("INSERT INTO notes (text) VALUES (?)", text)).last_row_id

Statements never block the event loop: the driver runs them on its own threads (embedded: a
SQLite file per actor under the data directory; engine: pages kept in the actor's KV, see
:mod:`rivetkit.drivers.engine.sqlkv`, where migration functions get a ``sqlite3``-like
connection over ``apsw`` with the same ``execute``/``fetchall``/``rowcount`` API). One
actor's statements run one at a time, in the order they were issued; inside
``async with c.db.transaction():`` the statements of that task run in one transaction and other
tasks of the actor wait for it to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from rivetkit.errors import RivetError

if TYPE_CHECKING:
    # Only the drivers open SQLite; the runtime and dispatch, which load this module, do not.
    import sqlite3

#: A migration: a SQL script, or a function given the ``sqlite3.Connection``.
Migration = str | Callable[["sqlite3.Connection"], None]


class Database:
    """The declaration of an actor's SQL database: its migrations, applied on wake."""

    __slots__ = ("migrations",)

    def __init__(self, *, migrations: Sequence[Migration] = ()) -> None:
        for index, migration in enumerate(migrations):
            if not isinstance(migration, str) and not callable(migration):
                raise TypeError(
                    f"migration {index} must be a SQL string or a callable, "
                    f"got {type(migration).__name__}"
                )
        self.migrations: tuple[Migration, ...] = tuple(migrations)

    def __repr__(self) -> str:
        return f"Database(migrations={len(self.migrations)})"


class ExecuteResult(NamedTuple):
    """What a statement changed."""

    rows_affected: int
    last_row_id: int | None


class SqlBackend(Protocol):
    """One actor's database as a driver provides it; each call runs off the event loop."""

    async def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(connection)`` on the database's thread and return its result."""
        ...

    async def close(self) -> None:
        """Close the database (the actor sleeps)."""
        ...


def sqlite_error(exc: BaseException) -> RivetError:
    """A SQLite failure as the RivetError the action reports (group ``sqlite``)."""
    if isinstance(exc, RivetError):
        return exc
    return RivetError("sqlite", "query_failed", f"{type(exc).__name__}: {exc}")


_MIGRATIONS_TABLE = "_rivetkit_migrations"


def apply_migrations(connection: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations not applied yet (in one transaction); return how many ran."""
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE} "
        "(version INTEGER PRIMARY KEY, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )
    row = connection.execute(f"SELECT MAX(version) FROM {_MIGRATIONS_TABLE}").fetchone()
    done = int(row[0]) if row and row[0] is not None else 0
    pending = list(enumerate(migrations, start=1))[done:]
    if not pending:
        return 0
    connection.execute("BEGIN IMMEDIATE")
    try:
        for version, migration in pending:
            if isinstance(migration, str):
                for statement in _statements(migration):
                    connection.execute(statement)
            else:
                migration(connection)
            connection.execute(f"INSERT INTO {_MIGRATIONS_TABLE} (version) VALUES (?)", (version,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(pending)


def _statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (``executescript`` would commit)."""
    import sqlite3

    statements, current = [], ""
    pieces = script.split(";")
    # Cut after each ";" that ends a complete statement (not one inside a string, a comment
    # or a trigger body), so two statements on one line are two statements.
    for piece in pieces[:-1]:
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if not _only_comments(current[:-1]):
                statements.append(current)
            current = ""
    current += pieces[-1]
    if not _only_comments(current):
        statements.append(current)
    return statements


def _only_comments(sql: str) -> bool:
    """Whether ``sql`` holds nothing but whitespace and comments."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql, flags=re.S)
    return not stripped.strip()


class ActorDatabase:
    """``c.db``: the actor's SQL database."""

    def __init__(self, opener: Callable[[], SqlBackend], migrations: Sequence[Migration]) -> None:
        self._opener = opener
        self._migrations = migrations
        self._backend: SqlBackend | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._turn = asyncio.Lock()  # one statement or transaction at a time
        self._holder: contextvars.ContextVar[bool] = contextvars.ContextVar(
            "rivetkit_db_transaction", default=False
        )

    async def open(self) -> None:
        """Open the database and apply pending migrations (done when the actor wakes)."""
        await self._open()

    async def _open(self) -> SqlBackend:
        backend = self._backend
        if backend is not None:
            return backend
        async with self._opening:
            if self._backend is None:
                backend = self._opener()
                migrations = self._migrations
                try:
                    await backend.run(lambda conn: apply_migrations(conn, migrations))
                except Exception as exc:
                    await backend.close()
                    raise sqlite_error(exc) from exc
                self._backend = backend
        assert self._backend is not None
        return self._backend

    async def _call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        backend = await self._open()
        try:
            if self._holder.get():
                return await backend.run(fn)
            async with self._turn:
                return await backend.run(fn)
        except Exception as exc:
            raise sqlite_error(exc) from exc

    async def execute(self, sql: str, *params: Any) -> ExecuteResult:
        """Run one statement; return the rows it changed and the last inserted row id."""

        def run(conn: sqlite3.Connection) -> ExecuteResult:
            cursor = conn.execute(sql, params)
            return ExecuteResult(cursor.rowcount, cursor.lastrowid)

        result: ExecuteResult = await self._call(run)
        return result

    async def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Run a query; return its rows as dicts keyed by column name."""

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = conn.execute(sql, params)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

        rows: list[dict[str, Any]] = await self._call(run)
        return rows

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[ActorDatabase]:
        """``async with c.db.transaction():`` — commit on success, roll back on error."""
        if self._holder.get():
            raise RivetError("sqlite", "transaction_nested", "transactions do not nest")
        backend = await self._open()
        async with self._turn:
            token = self._holder.set(True)
            try:
                await backend.run(lambda conn: conn.execute("BEGIN IMMEDIATE"))
                try:
                    yield self
                except BaseException:
                    await backend.run(lambda conn: conn.execute("ROLLBACK"))
                    raise
                await backend.run(lambda conn: conn.execute("COMMIT"))
            finally:
                self._holder.reset(token)

    async def close(self) -> None:
        """Close the database (the actor sleeps); it reopens on the next statement."""
        backend, self._backend = self._backend, None
        if backend is not None:
            async with self._turn:
                await backend.close()
