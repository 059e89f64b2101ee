"""The schema of ``rivetkit.db`` and the operations run on it by the writer thread.

Every function here takes the connection first and runs on the writer thread (see
:mod:`.store`); none of them commits, the store does.

Tables:

* ``kv(actor_id, key, value)``: every actor's KV. Keys are BLOBs, which SQLite compares with
  ``memcmp``: unsigned byte order, as RivetKit requires.
* ``actors``: one row per actor ever created. ``key_json`` holds the key segments exactly,
  ``key_str`` RivetKit's serialized key (:mod:`rivetkit.protocol.actor_keys`); a partial
  unique index keeps one live actor per ``(name, key_str)``. ``generation`` counts starts,
  ``alarm_ts`` is the pending alarm (epoch ms) or NULL.
* ``meta(key, value)``: ``schema_version``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from sys import intern
from typing import Any

from rivetkit.drivers.base import ActorRecord
from rivetkit.errors import RivetError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    actor_id TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (actor_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actors (
    actor_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_json TEXT NOT NULL,
    key_str TEXT NOT NULL,
    input BLOB,
    create_ts INTEGER NOT NULL,
    destroy_ts INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,
    alarm_ts INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS actors_live_name_key
    ON actors (name, key_str) WHERE destroy_ts IS NULL;
CREATE INDEX IF NOT EXISTS actors_alarm ON actors (alarm_ts) WHERE alarm_ts IS NOT NULL;
"""

_ACTOR_COLUMNS = "actor_id, name, key_json, input, create_ts, destroy_ts, generation"

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID_LENGTH = 30


# Random bytes to base36 digits: byte b -> digit b % 36, bytes 252-255 dropped (252 is
# 7 x 36), so each digit kept is uniform and independent.
_ID_DIGITS = bytes(ord(_BASE36[b % 36]) for b in range(256))
_ID_DROPPED = bytes(range(252, 256))
#: Random bytes drawn per ``os.urandom`` call for actor ids (about 134 ids).
_ID_DRAW = 4096
# [digits, start]: the base36 digits of ``digits[start:]`` are not handed out yet.
_id_pool: list[Any] = ["", 0]
_id_lock = threading.Lock()
# [(clock ms // 36, the base36 digits of that)]: an id's time but for its last character
# (the same for 36 ms of ids).
_id_stamp: list[tuple[int, str]] = [(-1, "")]


def _forget_id_pool() -> None:
    _id_pool[:] = ["", 0]


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_id_pool)


def new_actor_id() -> str:
    """A fresh actor id: 30 lowercase base36 characters, the creation time then about 113
    random bits.

    The engine's ids are opaque lowercase base36 strings of this length; clients treat ids
    as opaque, so ids of the same shape keep URLs and logs looking alike. The first
    :data:`_ID_TIME` characters are the wall clock in milliseconds (modulo ``36**8``, about
    89 years), so that ids drawn later sort later: the rows of new actors (their ``actors``
    row, the id index and their KV, all keyed by the id) are written at the end of the
    B-trees, near each other, instead of at random pages (a commit writes each page it
    changed; at 20,000 actors random ids made the writer thread's CPU per created actor
    about twice as high). The other characters are uniform and independent, from a pool
    of ``os.urandom`` bytes: one system call serves about 180 ids. A forked child drops
    the pool it inherited, so no id is drawn twice.
    """
    high, low = divmod(int(time.time() * 1000) % _ID_TIME_SPAN, 36)
    stamp = _id_stamp[0]
    if stamp[0] != high:
        stamp = _id_stamp[0] = (high, "".join([_BASE36[high // d % 36] for d in _ID_TIME_DIVS]))
    with _id_lock:
        pool = _id_pool
        digits: str = pool[0]
        start: int = pool[1]
        end = start + _ID_RANDOM
        if end > len(digits):
            digits = digits[start:]
            while len(digits) < _ID_RANDOM:
                digits += os.urandom(_ID_DRAW).translate(_ID_DIGITS, _ID_DROPPED).decode("ascii")
            pool[0] = digits
            start, end = 0, _ID_RANDOM
        pool[1] = end
        random = digits[start:end]
    return stamp[1] + _BASE36[low] + random


#: Characters of an id holding the time; the random ones after them.
_ID_TIME = 8
_ID_RANDOM = _ID_LENGTH - _ID_TIME
_ID_TIME_SPAN = 36**_ID_TIME
# The place values of an id's time characters but the last (see _id_stamp).
_ID_TIME_DIVS = [36**i for i in range(_ID_TIME - 2, -1, -1)]


def init_schema(conn: sqlite3.Connection) -> None:
    """Create the tables (idempotent) and check the schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise RivetError(
                "driver",
                "unsupported_schema",
                f"the database has schema version {row[0]}, newer than this rivetkit "
                f"supports ({SCHEMA_VERSION}); upgrade rivetkit",
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def check_bytes(what: str, value: Any) -> None:
    """TypeError unless ``value`` is bytes-like (KV keys, values and range bounds)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"KV {what} must be bytes, not {type(value).__name__}")


# -- KV --------------------------------------------------------------------------------------


def kv_get(conn: sqlite3.Connection, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None]:
    """Values of ``keys`` in order (None where missing)."""
    for key in keys:
        check_bytes("keys", key)
    if len(keys) == 1:
        row = conn.execute(
            "SELECT value FROM kv WHERE actor_id = ? AND key = ?", (actor_id, keys[0])
        ).fetchone()
        return [None if row is None else row[0]]
    if not keys or len(keys) > _GET_IN_MAX:
        return [
            None if row is None else row[0]
            for row in (
                conn.execute(
                    "SELECT value FROM kv WHERE actor_id = ? AND key = ?", (actor_id, key)
                ).fetchone()
                for key in keys
            )
        ]
    # One statement for the few keys of a start (each statement is a GIL hand-off).
    found = dict(
        conn.execute(
            "SELECT key, value FROM kv WHERE actor_id = ? AND key IN ("
            + ",".join("?" * len(keys))
            + ")",
            (actor_id, *keys),
        ).fetchall()
    )
    return [found.get(bytes(key)) for key in keys]


# Keys read by one ``IN (...)`` statement at most (bound parameters stay few).
_GET_IN_MAX = 64


def kv_write(
    conn: sqlite3.Connection,
    actor_id: str,
    puts: Sequence[tuple[bytes, bytes]],
    deletes: Sequence[bytes],
) -> None:
    """Delete ``deletes``, then put ``puts``."""
    for key in deletes:
        check_bytes("keys", key)
    for key, value in puts:
        check_bytes("keys", key)
        check_bytes("values", value)
    if deletes:
        conn.executemany(
            "DELETE FROM kv WHERE actor_id = ? AND key = ?", [(actor_id, k) for k in deletes]
        )
    if puts:
        conn.executemany(
            "INSERT OR REPLACE INTO kv (actor_id, key, value) VALUES (?, ?, ?)",
            [(actor_id, k, v) for k, v in puts],
        )


# Rows per multi-row INSERT of kv_put_rows: 3 parameters a row, within SQLite's limit on
# bound parameters (999 before SQLite 3.32, 32766 since).
PUT_ROWS_CHUNK = 2000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 333


def check_puts(puts: Sequence[tuple[bytes, bytes]]) -> None:
    """The checks :func:`kv_write` makes on ``puts`` (TypeError for a non-bytes key/value)."""
    for key, value in puts:
        check_bytes("keys", key)
        check_bytes("values", value)


def kv_put_rows(conn: sqlite3.Connection, rows: Sequence[tuple[str, bytes, bytes]]) -> None:
    """Put ``(actor_id, key, value)`` rows in order (a later row for a key wins), with one
    multi-row ``INSERT`` per :data:`PUT_ROWS_CHUNK` rows.

    The store runs consecutive puts-only :func:`kv_write` operations of a batch this way:
    the writer thread gives up the GIL around each SQLite call and, while the event loop is
    busy, may wait up to the interpreter's switch interval (5 ms) to get it back, so the
    number of statements per batch, not their size, bounds a busy process's write rate.
    """
    for start in range(0, len(rows), PUT_ROWS_CHUNK):
        chunk = rows[start : start + PUT_ROWS_CHUNK]
        conn.execute(
            "INSERT OR REPLACE INTO kv (actor_id, key, value) VALUES "
            + ",".join(["(?, ?, ?)"] * len(chunk)),
            [field for row in chunk for field in row],
        )


def kv_put_fields(conn: sqlite3.Connection, fields: list[Any]) -> None:
    """:func:`kv_put_rows` with the rows' fields flat: ``actor_id, key, value`` for each
    row in turn (no tuple per row)."""
    step = 3 * PUT_ROWS_CHUNK
    for start in range(0, len(fields), step):
        chunk = fields[start : start + step] if start or len(fields) > step else fields
        conn.execute(
            "INSERT OR REPLACE INTO kv (actor_id, key, value) VALUES "
            + ",".join(["(?, ?, ?)"] * (len(chunk) // 3)),
            chunk,
        )


def kv_list(
    conn: sqlite3.Connection,
    actor_id: str,
    start: bytes,
    end: bytes | None,
    reverse: bool,
    limit: int | None,
) -> list[tuple[bytes, bytes]]:
    """Entries with ``start <= key < end`` in key order (descending when ``reverse``)."""
    check_bytes("range bounds", start)
    sql = "SELECT key, value FROM kv WHERE actor_id = ? AND key >= ?"
    params: list[Any] = [actor_id, start]
    if end is not None:
        check_bytes("range bounds", end)
        sql += " AND key < ?"
        params.append(end)
    sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, limit))
    return conn.execute(sql, params).fetchall()


def kv_delete_range(
    conn: sqlite3.Connection, actor_id: str, start: bytes, end: bytes | None
) -> None:
    """Delete entries with ``start <= key < end``."""
    check_bytes("range bounds", start)
    if end is None:
        conn.execute("DELETE FROM kv WHERE actor_id = ? AND key >= ?", (actor_id, start))
    else:
        check_bytes("range bounds", end)
        conn.execute(
            "DELETE FROM kv WHERE actor_id = ? AND key >= ? AND key < ?", (actor_id, start, end)
        )


# -- actors ----------------------------------------------------------------------------------


def key_from_json(key_json: str) -> list[str]:
    """``json.loads(key_json)`` for a stored ``key_json``, without the JSON decoder for the
    common shape :func:`_key_json` writes: a list of strings with nothing escaped and no
    control or other unprintable character (``["a","b"]``). Inside such a list no segment
    holds a ``"``, so splitting at ``","`` finds the segments; anything else (escapes,
    whitespace, other values) goes to ``json.loads``."""
    if key_json == "[]":
        return []
    if key_json[:2] == '["' and key_json[-2:] == '"]' and len(key_json) >= 4:
        inner = key_json[2:-2]
        if "\\" not in inner and inner.isprintable():
            if '"' not in inner:  # one segment
                return [inner]
            parts = inner.split('","')
            if inner.count('"') == 2 * (len(parts) - 1):
                return parts[:]  # split's list holds room for 12: a copy is exact
    key: list[str] = json.loads(key_json)
    return key


def _record(row: Sequence[Any], actor_id: str | None = None) -> ActorRecord:
    """The record of an ``actors`` row (:data:`_ACTOR_COLUMNS`); ``actor_id`` is the caller's
    string equal to ``row[0]``, kept instead of the row's (one string less per live actor,
    which the driver and the runtime keep with the record). The name is interned: every
    record of one actor type shares one string."""
    return ActorRecord(
        row[0] if actor_id is None else actor_id,
        intern(row[1]),
        key_from_json(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
    )


def _find_live(conn: sqlite3.Connection, name: str, key_str: str) -> ActorRecord | None:
    row = conn.execute(
        f"SELECT {_ACTOR_COLUMNS} FROM actors "
        "WHERE name = ? AND key_str = ? AND destroy_ts IS NULL",
        (name, key_str),
    ).fetchone()
    return None if row is None else _record(row)


# json.dumps(key, ensure_ascii=False, separators=(",", ":")) without an encoder per call.
_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _key_json(key: list[str]) -> str:
    """``json.dumps(key, ensure_ascii=False, separators=(",", ":"))``, without the JSON
    encoder for a list of strings that need no escape (no ``"``, ``\\`` or control
    character: written as they are; the segments hold no ``"`` when the joined text has
    just the separators' quotes)."""
    if key.__class__ is list:
        if not key:
            return "[]"
        try:
            joined = '","'.join(key)
        except TypeError:  # not all strings: the encoder says what it makes of them
            return _json_encode(key)
        if "\\" not in joined and joined.count('"') == 2 * (len(key) - 1) and joined.isprintable():
            return '["' + joined + '"]'
    return _json_encode(key)


def _insert(
    conn: sqlite3.Connection,
    name: str,
    key: list[str],
    key_str: str,
    input: bytes | None,
    create_ts: int,
) -> ActorRecord:
    key_json = _key_json(key)
    while True:
        actor_id = new_actor_id()
        try:
            conn.execute(
                "INSERT INTO actors (actor_id, name, key_json, key_str, input, create_ts, "
                "generation) VALUES (?, ?, ?, ?, ?, ?, 0)",
                (actor_id, name, key_json, key_str, input, create_ts),
            )
        except sqlite3.IntegrityError:
            # The id is taken (astronomically unlikely): draw another. The live (name, key)
            # was checked free by the caller in this transaction, so nothing else conflicts.
            if conn.execute("SELECT 1 FROM actors WHERE actor_id = ?", (actor_id,)).fetchone():
                continue
            raise
        return ActorRecord(actor_id, name, key, input, create_ts, None, 0)


def create_actor(
    conn: sqlite3.Connection,
    name: str,
    key: list[str],
    key_str: str,
    input: bytes | None,
    create_ts: int,
) -> ActorRecord:
    """Insert a new actor; RivetError ``actor/duplicate_key`` if ``(name, key)`` is live."""
    if _find_live(conn, name, key_str) is not None:
        raise RivetError(
            "actor",
            "duplicate_key",
            f"an actor named {name!r} with key {key_str!r} already exists",
            metadata={"name": name, "key": key_str},
        )
    return _insert(conn, name, key, key_str, input, create_ts)


def get_or_create_actor(
    conn: sqlite3.Connection,
    name: str,
    key: list[str],
    key_str: str,
    input: bytes | None,
    create_ts: int,
) -> tuple[ActorRecord, bool]:
    """The live actor ``(name, key)``, inserted when missing; ``(record, created)``."""
    found = _find_live(conn, name, key_str)
    if found is not None:
        return found, False
    return _insert(conn, name, key, key_str, input, create_ts), True


#: Operations at most in one run of :func:`get_or_create_actors` or
#: :func:`begin_generations_reading` (6 bound parameters a row, within SQLite's limit).
RUN_CHUNK = 1000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 150

# Outcomes of a run: (True, result) or (False, exception) for each operation, in order.
Outcomes = list[tuple[bool, Any]]


def get_or_create_actors(
    conn: sqlite3.Connection, calls: Sequence[tuple[Any, ...]]
) -> Outcomes | None:
    """:func:`get_or_create_actor` for each of ``calls`` (its arguments after ``conn``) with
    two statements in all: the live actors of every ``(name, key)`` are read first, then
    the missing ones inserted with one multi-row ``INSERT`` (the only write, and the last
    statement: if it fails, nothing was written).

    The outcomes are those of the calls one by one, in order; None (nothing written) when
    the same missing ``(name, key)`` comes twice, which only one by one can answer. The
    store runs consecutive creations this way (:data:`RUNS`): each statement is a GIL
    hand-off for the writer thread.
    """
    pairs: list[Any] = []
    for call in calls:
        pairs += (call[0], call[2])
    found: dict[tuple[str, str], Any] = {}
    for row in conn.execute(
        "SELECT a.name, a.key_str, a.actor_id, a.name, a.key_json, a.input, a.create_ts, "
        "a.destroy_ts, a.generation FROM (VALUES "
        + ",".join(["(?, ?)"] * len(calls))
        + ") AS v CROSS JOIN actors AS a "
        "ON a.name = v.column1 AND a.key_str = v.column2 AND a.destroy_ts IS NULL",
        pairs,
    ):
        found[(row[0], row[1])] = row
    outcomes: Outcomes = []
    fields: list[Any] = []
    missing: set[tuple[str, str]] = set()
    for name, key, key_str, input, create_ts in calls:
        row = found.get((name, key_str))
        if row is not None:
            try:
                outcomes.append((True, (_record(row[2:]), False)))
            except Exception as exc:
                outcomes.append((False, exc))
            continue
        if (name, key_str) in missing:
            return None  # one by one, the second would find the first
        missing.add((name, key_str))
        try:
            key_json = _key_json(key)
        except Exception as exc:
            outcomes.append((False, exc))
            continue
        actor_id = new_actor_id()
        fields += (actor_id, name, key_json, key_str, input, create_ts)
        outcomes.append((True, (ActorRecord(actor_id, name, key, input, create_ts, None, 0), True)))
    if fields:
        conn.execute(
            "INSERT INTO actors (actor_id, name, key_json, key_str, input, create_ts, "
            "generation) VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, 0)"] * (len(fields) // 6)),
            fields,
        )
    return outcomes


def begin_generations_reading(
    conn: sqlite3.Connection, calls: Sequence[tuple[Any, ...]]
) -> Outcomes | None:
    """:func:`begin_generation_reading` for each of ``calls`` (``(actor_id, keys)``) with
    two statements in all: every call's KV values are read first, then the generations
    counted with one ``UPDATE ... RETURNING`` (the only write, and the last statement).

    The outcomes are those of the calls one by one, in order (the reads touch the KV, the
    update the actors: their order does not matter); None (nothing written) when an actor
    comes twice or SQLite has no ``RETURNING``.
    """
    if not _RETURNING:
        return None
    ids = [call[0] for call in calls]
    if len(set(ids)) != len(ids):
        return None  # one by one, each counts one more generation
    pairs: list[Any] = []
    failed: dict[int, Exception] = {}
    for i, (actor_id, keys) in enumerate(calls):
        try:
            for key in keys:
                check_bytes("keys", key)
        except Exception as exc:  # this call fails alone, before its write
            failed[i] = exc
            continue
        for key in keys:
            pairs += (actor_id, key)
    values: dict[tuple[str, bytes], bytes] = {}
    if pairs:
        for actor_id, key, value in conn.execute(
            "SELECT kv.actor_id, kv.key, kv.value FROM (VALUES "
            + ",".join(["(?, ?)"] * (len(pairs) // 2))
            + ") AS v CROSS JOIN kv ON kv.actor_id = v.column1 AND kv.key = v.column2",
            pairs,
        ):
            values[(actor_id, key)] = value
    live = [actor_id for i, actor_id in enumerate(ids) if i not in failed]
    rows: dict[str, Any] = {}
    if live:
        for row in conn.execute(
            "UPDATE actors SET generation = generation + 1 WHERE destroy_ts IS NULL "
            "AND actor_id IN (" + ",".join("?" * len(live)) + f") RETURNING {_ACTOR_COLUMNS}",
            live,
        ).fetchall():  # the statement runs to its end (and is reset) before the commit
            rows[row[0]] = row
    outcomes: Outcomes = []
    for i, (actor_id, keys) in enumerate(calls):
        if i in failed:
            outcomes.append((False, failed[i]))
            continue
        row = rows.get(actor_id)
        if row is None:
            missing = RivetError("actor", "not_found", f"actor {actor_id} not found")
            outcomes.append((False, missing))
            continue
        try:
            record = _record(row, actor_id)
        except Exception as exc:
            outcomes.append((False, exc))
            continue
        outcomes.append((True, (record, [values.get((actor_id, bytes(key))) for key in keys])))
    return outcomes


def get_actor(conn: sqlite3.Connection, actor_id: str) -> ActorRecord | None:
    """The actor with this id, destroyed or not."""
    row = conn.execute(
        f"SELECT {_ACTOR_COLUMNS} FROM actors WHERE actor_id = ?", (actor_id,)
    ).fetchone()
    return None if row is None else _record(row, actor_id)


def find_actor(conn: sqlite3.Connection, name: str, key_str: str) -> ActorRecord | None:
    """The live actor ``(name, key)``."""
    return _find_live(conn, name, key_str)


def list_actors(conn: sqlite3.Connection, name: str | None) -> list[ActorRecord]:
    """Live actors (of one name, when given), oldest first."""
    sql = f"SELECT {_ACTOR_COLUMNS} FROM actors WHERE destroy_ts IS NULL"
    params: tuple[Any, ...] = ()
    if name is not None:
        sql += " AND name = ?"
        params = (name,)
    sql += " ORDER BY create_ts, rowid"
    return [_record(row) for row in conn.execute(sql, params)]


def begin_generation(conn: sqlite3.Connection, actor_id: str) -> ActorRecord:
    """Count one more start of a live actor; its record with the new generation.

    RivetError ``actor/not_found`` when the actor is unknown or destroyed.
    """
    if _RETURNING:  # one statement instead of a read and a write
        # fetchall: the statement runs to its end (and is reset) before the commit.
        rows = conn.execute(
            "UPDATE actors SET generation = generation + 1 "
            f"WHERE actor_id = ? AND destroy_ts IS NULL RETURNING {_ACTOR_COLUMNS}",
            (actor_id,),
        ).fetchall()
        if not rows:
            raise RivetError("actor", "not_found", f"actor {actor_id} not found")
        return _record(rows[0], actor_id)
    record = get_actor(conn, actor_id)
    if record is None or record.destroy_ts is not None:
        raise RivetError("actor", "not_found", f"actor {actor_id} not found")
    generation = record.generation + 1
    conn.execute("UPDATE actors SET generation = ? WHERE actor_id = ?", (generation, actor_id))
    return record._replace(generation=generation)


def begin_generation_reading(
    conn: sqlite3.Connection, actor_id: str, keys: Sequence[bytes]
) -> tuple[ActorRecord, list[bytes | None]]:
    """:func:`begin_generation` with the values of the actor's KV ``keys`` (one operation:
    the start of a new actor reads them next). The read comes first, so that the write is
    the operation's last statement (see :data:`ONE_WRITE`); it does not touch the KV."""
    values = kv_get(conn, actor_id, keys)
    return begin_generation(conn, actor_id), values


# UPDATE ... RETURNING: SQLite 3.35 and later.
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)


def mark_destroyed(conn: sqlite3.Connection, actor_id: str, destroy_ts: int) -> None:
    """Delete the actor's KV, clear its alarm and mark it destroyed."""
    conn.execute("DELETE FROM kv WHERE actor_id = ?", (actor_id,))
    conn.execute(
        "UPDATE actors SET destroy_ts = ?, alarm_ts = NULL "
        "WHERE actor_id = ? AND destroy_ts IS NULL",
        (destroy_ts, actor_id),
    )


# -- alarms ----------------------------------------------------------------------------------


def set_alarm(conn: sqlite3.Connection, actor_id: str, when_ms: int | None) -> None:
    """Store (or clear) the alarm of a live actor."""
    conn.execute(
        "UPDATE actors SET alarm_ts = ? WHERE actor_id = ? AND destroy_ts IS NULL",
        (when_ms, actor_id),
    )


def clear_alarm_if(conn: sqlite3.Connection, actor_id: str, when_ms: int) -> None:
    """Clear the stored alarm if it is still ``when_ms`` (a newer one is kept)."""
    conn.execute(
        "UPDATE actors SET alarm_ts = NULL WHERE actor_id = ? AND alarm_ts = ?",
        (actor_id, when_ms),
    )


def load_alarms(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """``(actor_id, alarm_ts)`` of every live actor with an alarm."""
    return conn.execute(
        "SELECT actor_id, alarm_ts FROM actors WHERE alarm_ts IS NOT NULL AND destroy_ts IS NULL"
    ).fetchall()


#: Write operations whose only statement that changes anything is the last one they run,
#: with nothing but result building after it (the statements before are reads, and an
#: actor insert that fails on a taken id changes nothing either). A failing SQL statement
#: leaves nothing behind, so when one of these fails nothing of it was written: the store
#: runs them without a savepoint of their own.
ONE_WRITE: frozenset[Any] = frozenset(
    {
        create_actor,
        get_or_create_actor,
        begin_generation,
        begin_generation_reading,
        set_alarm,
        clear_alarm_if,
    }
)

#: Operations the store runs several at once when they come in a row: the operation, its
#: number of positional arguments after ``conn``, and the function running a run of them
#: (their argument tuples; the outcomes in order, or None to run them one by one).
RUNS: dict[Any, tuple[int, Any]] = {
    get_or_create_actor: (5, get_or_create_actors),
    begin_generation_reading: (2, begin_generations_reading),
}
