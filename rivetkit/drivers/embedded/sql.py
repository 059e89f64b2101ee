"""Per-actor SQL databases of the embedded driver: one SQLite file per actor.

Files live at ``<data_dir>/actors/<actor_id>.sqlite``, are opened lazily (on the first
statement), closed when the actor sleeps and deleted when it is destroyed. Statements run on a
small thread pool owned by the driver, never on the event loop; one actor's statements are
serialized by :class:`rivetkit.db.ActorDatabase`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

#: Threads shared by every actor database of a driver.
SQL_THREADS = 2


class SqlitePool:
    """The threads and file layout of the per-actor databases."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "actors"
        self._executor: ThreadPoolExecutor | None = None

    def path(self, actor_id: str) -> Path:
        """Where the actor's database file lives."""
        if not actor_id or os.sep in actor_id or actor_id.startswith("."):
            raise ValueError(f"bad actor id for a file name: {actor_id!r}")
        return self.root / f"{actor_id}.sqlite"

    def executor(self) -> ThreadPoolExecutor:
        """The shared thread pool (created on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(SQL_THREADS, thread_name_prefix="rivetkit-sql")
        return self._executor

    def open(self, actor_id: str) -> SqliteBackend:
        """A backend for the actor's database (the file is opened on first use)."""
        return SqliteBackend(self, self.path(actor_id))

    def delete(self, actor_id: str) -> None:
        """Remove the actor's database files (after a destroy)."""
        base = self.path(actor_id)
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{base}{suffix}").unlink()

    def shutdown(self) -> None:
        """Stop the threads (the driver stops)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class SqliteBackend:
    """One actor's SQLite file (implements :class:`rivetkit.db.SqlBackend`)."""

    def __init__(self, pool: SqlitePool, path: Path) -> None:
        self._pool = pool
        self._path = path
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._connection = connection
        return self._connection

    async def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(connection)`` on the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool.executor(), lambda: fn(self._connect()))

    async def close(self) -> None:
        """Close the file."""
        connection, self._connection = self._connection, None
        if connection is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool.executor(), connection.close)
