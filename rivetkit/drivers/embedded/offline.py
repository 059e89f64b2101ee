"""The embedded store seen from another process: one-off KV access to a data directory
while a server may be running on it (``rivetkit inspect token``).

A running server holds the data directory's lock, so another process cannot start an
:class:`~.driver.EmbeddedDriver` on it; these functions open the SQLite file directly and
run the same table operations (:mod:`.tables`) in their own short transaction. SQLite's
locking orders that transaction with the server's writer thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from . import tables
from .driver import DB_FILE_NAME

__all__ = ["kv_put_if_absent"]

#: How long to wait for the server's write transaction to finish (seconds).
_BUSY_TIMEOUT = 10.0


def kv_put_if_absent(
    data_dir: str | os.PathLike[str], actor_id: str, key: bytes, value: bytes
) -> bytes:
    """Store ``value`` at the live actor's KV ``key`` unless it has one; return the value
    the key holds afterwards (the one found, or ``value``).

    :raises LookupError: no database in ``data_dir``, or no live actor ``actor_id``
    """
    path = Path(data_dir) / DB_FILE_NAME
    if not path.is_file():
        raise LookupError(f"no rivetkit database in {data_dir} (expected {path})")
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None)
    try:
        record = tables.get_actor(conn, actor_id)
        if record is None:
            raise LookupError(f"no actor {actor_id!r} in {data_dir}")
        if record.destroy_ts is not None:
            raise LookupError(f"actor {actor_id!r} was destroyed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            (stored,) = tables.kv_get(conn, actor_id, [key])
            if stored is None:
                tables.kv_write(conn, actor_id, [(key, value)], [])
                stored = value
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return bytes(stored)
