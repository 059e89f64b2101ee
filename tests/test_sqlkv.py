"""The engine driver's KV-backed SQLite VFS (``rivetkit/drivers/engine/sqlkv.py``).

No engine here: the VFS runs against :class:`MemoryKv`, an in-memory KV that enforces the
engine's request limits (128 keys and 976 KiB per put, 2048-byte keys, 128 KiB values) and
can "kill the process" after N write requests (it then keeps a snapshot of what had reached
the KV and refuses everything else), so that a reopen from the snapshot shows what a new
process would find.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Sequence
from typing import Any

import pytest

from rivetkit.db import ActorDatabase
from rivetkit.drivers.engine.sqlkv import (
    CHUNK_SIZE,
    SqlKvBackend,
    SqlKvPool,
    chunk_key,
    decode_meta,
    encode_meta,
    meta_key,
)
from rivetkit.drivers.engine.sqlkv_pages import ActorStore, KvBridge
from rivetkit.errors import RivetError

MIGRATIONS = [
    "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL);",
    "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);",
]


class Killed(Exception):
    """The simulated process is dead: the KV no longer answers it."""


class MemoryKv:
    """An in-memory actor KV with the engine's limits (see the module docstring)."""

    def __init__(self, data: dict[bytes, bytes] | None = None, *, delay: float = 0.0) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})
        self.delay = delay
        self.requests: list[tuple[str, int]] = []
        #: Write requests still allowed before the "process" dies (None: no limit).
        self.writes_left: int | None = None
        self.snapshot: dict[bytes, bytes] | None = None
        self.hang = False
        #: Write requests (counted from 0) that fail once, the KV staying alive.
        self.fail_writes: set[int] = set()
        self._write_count = 0

    async def _enter(self, kind: str, count: int, *, write: bool) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hang:
            await asyncio.Event().wait()
        if self.snapshot is not None:
            raise Killed("the process was killed")
        if write:
            number = self._write_count
            self._write_count += 1
            if number in self.fail_writes:
                raise ConnectionError("a transient KV failure")
        if write and self.writes_left is not None:
            if self.writes_left == 0:
                self.snapshot = dict(self.data)
                raise Killed("the process was killed")
            self.writes_left -= 1
        self.requests.append((kind, count))

    async def get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        assert 0 < len(keys) <= 128
        await self._enter("get", len(keys), write=False)
        return [self.data.get(bytes(k)) for k in keys]

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        assert 0 < len(entries) <= 128, len(entries)
        assert sum(len(k) + 2 + len(v) for k, v in entries) <= 976 * 1024
        for key, value in entries:
            assert len(key) <= 2048 and len(value) <= 128 * 1024
        await self._enter("put", len(entries), write=True)
        for key, value in entries:
            self.data[bytes(key)] = bytes(value)

    async def delete(self, keys: Sequence[bytes]) -> None:
        assert 0 < len(keys) <= 128
        await self._enter("delete", len(keys), write=True)
        for key in keys:
            self.data.pop(bytes(key), None)

    async def delete_range(self, start: bytes, end: bytes) -> None:
        await self._enter("delete_range", 0, write=True)
        for key in [k for k in self.data if start <= k < end]:
            del self.data[key]

    async def list(self, start: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        await self._enter("list", 0, write=False)
        return sorted((k, v) for k, v in self.data.items() if start <= k < end)[:limit]

    def kill(self) -> None:
        """The process dies now: keep what reached the KV, refuse everything else."""
        self.snapshot = dict(self.data)

    def writes(self) -> list[tuple[str, int]]:
        return [r for r in self.requests if r[0] in ("put", "delete", "delete_range")]


def open_db(
    pool: SqlKvPool, kv: MemoryKv, migrations: Sequence[Any] = MIGRATIONS
) -> tuple[ActorDatabase, list[SqlKvBackend]]:
    backends: list[SqlKvBackend] = []

    def opener() -> SqlKvBackend:
        backend = pool.open(kv)
        backends.append(backend)
        return backend

    return ActorDatabase(opener, migrations), backends


@pytest.fixture(params=[4096, 8], ids=["cache", "tiny-cache"])
def pool(request: pytest.FixtureRequest) -> Any:
    """The pool, with the default chunk cache and with one so small that SQLite's reads keep
    going back to the KV."""
    pool = SqlKvPool(kv_timeout=30.0, cache_chunks=request.param)
    yield pool
    pool.shutdown()


async def _close_quietly(db: ActorDatabase) -> None:
    with contextlib.suppress(Exception):
        await db.close()


@pytest.mark.asyncio
async def test_notes_roundtrip_and_reopen(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    await db.open()
    assert (await db.execute("INSERT INTO notes (text) VALUES (?)", "one")).last_row_id == 1
    assert (await db.execute("INSERT INTO notes (text) VALUES (?)", "two")).last_row_id == 2
    changed = await db.execute("UPDATE notes SET text = text || '!' WHERE id >= ?", 1)
    assert changed.rows_affected == 2
    await db.close()
    # Reopened from the same KV (a new process would see exactly these keys).
    again, _ = open_db(pool, MemoryKv(kv.data))
    rows = await again.query("SELECT id, text FROM notes ORDER BY id")
    assert rows == [{"id": 1, "text": "one!"}, {"id": 2, "text": "two!"}]
    assert await again.query("SELECT text FROM notes WHERE id = 99") == []
    await again.close()


@pytest.mark.asyncio
async def test_migrations_run_once(pool: SqlKvPool) -> None:
    calls: list[int] = []

    def seed(conn: Any) -> None:
        calls.append(1)
        conn.execute("INSERT INTO notes (text) VALUES (?)", ("seed",))
        assert conn.execute("SELECT COUNT(*) FROM notes").fetchone() == (1,)

    kv = MemoryKv()
    for _ in range(3):
        db, _ = open_db(pool, kv, [*MIGRATIONS, seed])
        await db.open()
        assert [r["text"] for r in await db.query("SELECT text FROM notes")] == ["seed"]
        await db.close()
    assert calls == [1]
    # A later version adds a migration: only the new one runs.
    db, _ = open_db(pool, kv, [*MIGRATIONS, seed, "ALTER TABLE notes ADD COLUMN tag TEXT"])
    await db.execute("UPDATE notes SET tag = 'x'")
    assert await db.query("SELECT text, tag FROM notes") == [{"text": "seed", "tag": "x"}]
    assert await db.query("SELECT MAX(version) AS v FROM _rivetkit_migrations") == [{"v": 4}]
    await db.close()
    assert calls == [1]


@pytest.mark.asyncio
async def test_failed_migration_rolls_back(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv, [*MIGRATIONS, "INSERT INTO notes (text) VALUES ('a'); BOGUS;"])
    with pytest.raises(RivetError) as info:
        await db.open()
    assert info.value.group == "sqlite"
    db, _ = open_db(pool, kv)
    assert await db.query("SELECT * FROM notes") == []
    await db.close()


@pytest.mark.asyncio
async def test_transactions_roll_back_on_error(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    async with db.transaction():
        await db.execute("INSERT INTO notes (text) VALUES ('a')")
        await db.execute("INSERT INTO notes (text) VALUES ('b')")
    with pytest.raises(ValueError):
        async with db.transaction():
            await db.execute("INSERT INTO notes (text) VALUES ('c')")
            await db.execute("INSERT INTO blobs (data) VALUES (?)", os.urandom(300_000))
            raise ValueError("roll back")
    with pytest.raises(RivetError):
        async with db.transaction():
            await db.execute("INSERT INTO notes (text) VALUES ('d')")
            await db.execute("INSERT INTO nowhere VALUES (1)")
    assert [r["text"] for r in await db.query("SELECT text FROM notes ORDER BY id")] == ["a", "b"]
    assert await db.query("SELECT COUNT(*) AS n FROM blobs") == [{"n": 0}]
    await db.close()
    db, _ = open_db(pool, MemoryKv(kv.data))
    assert [r["text"] for r in await db.query("SELECT text FROM notes ORDER BY id")] == ["a", "b"]
    assert await db.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    await db.close()


@pytest.mark.asyncio
async def test_large_blobs_span_pages_and_requests(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    blobs = {i: os.urandom(size) for i, size in enumerate([5_000, 700_000, 2_500_000], 1)}
    for i, data in blobs.items():
        await db.execute("INSERT INTO blobs (id, data) VALUES (?, ?)", i, data)
    rows = await db.query("SELECT id, data FROM blobs ORDER BY id")
    assert {r["id"]: r["data"] for r in rows} == blobs
    await db.close()
    # Every value is one 4 KiB chunk at most; the puts respected the limits (MemoryKv).
    assert max(len(v) for v in kv.data.values()) <= CHUNK_SIZE
    assert all(k[0] == 9 for k in kv.data)
    reopened, _ = open_db(pool, MemoryKv(kv.data))
    rows = await reopened.query("SELECT id, data FROM blobs ORDER BY id")
    assert {r["id"]: r["data"] for r in rows} == blobs
    assert await reopened.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    await reopened.close()


@pytest.mark.asyncio
async def test_small_commit_is_one_put_and_no_journal_in_kv(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    await db.open()
    kv.requests.clear()
    await db.execute("INSERT INTO notes (text) VALUES ('x')")
    # The changed pages (page 1, the table's, sqlite_sequence's) and the file size: one
    # atomic request.
    assert kv.writes() == [("put", 4)]
    assert kv.requests == kv.writes()  # and nothing read: the pages were cached
    assert not [k for k in kv.data if k[:3] in (b"\x09\x00\x01", b"\x09\x01\x01")]
    await db.close()


@pytest.mark.asyncio
async def test_kv_layout(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    await db.execute("INSERT INTO notes (text) VALUES ('x')")
    await db.close()
    assert meta_key(0) == b"\x09\x00\x00"
    assert chunk_key(0, 258) == b"\x09\x01\x00\x00\x00\x01\x02"
    assert encode_meta(8192) == b"\x01\x00" + (8192).to_bytes(8, "little")
    size = decode_meta(kv.data[meta_key(0)])
    pages = [k for k in kv.data if k[:3] == b"\x09\x01\x00"]
    assert size == len(pages) * CHUNK_SIZE and len(pages) >= 2
    assert sorted(kv.data) == sorted([meta_key(0), *pages])
    assert kv.data[chunk_key(0, 0)][:16] == b"SQLite format 3\x00"
    assert int.from_bytes(kv.data[chunk_key(0, 0)][16:18], "big") == CHUNK_SIZE


@pytest.mark.asyncio
async def test_kill_during_a_multi_request_commit_rolls_back(pool: SqlKvPool) -> None:
    """A commit too big for one KV request, cut after each of its write requests in turn:
    a reopen from what reached the KV shows the old data (the hot journal is played back),
    or the new data once the journal is deleted (the commit point)."""
    old, new = os.urandom(900_000), os.urandom(900_000)
    base = MemoryKv()
    db, _ = open_db(pool, base)
    await db.execute("INSERT INTO blobs (id, data) VALUES (1, ?)", old)
    await db.execute("INSERT INTO notes (text) VALUES ('kept')")
    await db.close()

    # How many write requests the update takes when nothing fails.
    probe = MemoryKv(base.data)
    db, _ = open_db(pool, probe)
    await db.open()
    probe.requests.clear()
    await db.execute("UPDATE blobs SET data = ? WHERE id = 1", new)
    await db.close()
    writes = probe.writes()
    total = len(writes)
    assert total > 4, writes
    # The commit point: the journal's metadata key deleted (its chunks go right after).
    commit_point = writes.index(("delete", 1))
    assert commit_point >= total - 2, writes

    for cut in range(total):
        kv = MemoryKv(base.data)
        db, _ = open_db(pool, kv)
        await db.open()
        kv.writes_left = cut
        with pytest.raises(RivetError):
            await db.execute("UPDATE blobs SET data = ? WHERE id = 1", new)
        await _close_quietly(db)
        assert kv.snapshot is not None
        after = MemoryKv(kv.snapshot)
        db, _ = open_db(pool, after)
        rows = await db.query("SELECT data FROM blobs WHERE id = 1")
        expected = old if cut <= commit_point else new
        assert rows == [{"data": expected}], f"cut after {cut} of {total} writes: {writes}"
        assert await db.query("SELECT text FROM notes") == [{"text": "kept"}]
        assert await db.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        await db.close()
        # The journal was played back and deleted: only the database file remains.
        left = [k for k in after.data if k[:3] not in (b"\x09\x00\x00", b"\x09\x01\x00")]
        assert left == [], f"cut after {cut} of {total} writes: {left}"


@pytest.mark.asyncio
async def test_kill_right_after_commit_keeps_it(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    await db.execute("INSERT INTO notes (text) VALUES ('a')")
    async with db.transaction():
        await db.execute("INSERT INTO notes (text) VALUES ('b')")
        await db.execute("INSERT INTO blobs (data) VALUES (?)", os.urandom(1_000_000))
    kv.kill()  # nothing after this reaches the KV (not even a close)
    await _close_quietly(db)
    assert kv.snapshot is not None
    db, _ = open_db(pool, MemoryKv(kv.snapshot))
    assert [r["text"] for r in await db.query("SELECT text FROM notes ORDER BY id")] == ["a", "b"]
    assert await db.query("SELECT length(data) AS n FROM blobs") == [{"n": 1_000_000}]
    await db.close()


@pytest.mark.asyncio
async def test_vacuum_deletes_chunks_past_the_end(pool: SqlKvPool) -> None:
    kv = MemoryKv()
    db, _ = open_db(pool, kv)
    await db.execute("INSERT INTO blobs (data) VALUES (?)", os.urandom(1_000_000))
    grown = len(kv.data)
    await db.execute("DELETE FROM blobs")
    await db.execute("VACUUM")
    assert len(kv.data) < grown // 10
    size = decode_meta(kv.data[meta_key(0)])
    assert sorted(k for k in kv.data if k[1] == 1) == [
        chunk_key(0, i) for i in range(size // CHUNK_SIZE)
    ]
    await db.close()
    db, _ = open_db(pool, MemoryKv(kv.data))
    assert await db.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    await db.close()


@pytest.mark.asyncio
async def test_concurrent_actors_are_isolated(pool: SqlKvPool) -> None:
    kvs = [MemoryKv(delay=0.001) for _ in range(4)]
    dbs = [open_db(pool, kv)[0] for kv in kvs]

    async def work(index: int, db: ActorDatabase) -> None:
        for n in range(15):
            await db.execute("INSERT INTO notes (text) VALUES (?)", f"{index}-{n}")
            if n % 5 == 0:
                async with db.transaction():
                    await db.execute("INSERT INTO blobs (data) VALUES (?)", bytes([index]) * 9000)

    await asyncio.gather(*(work(i, db) for i, db in enumerate(dbs)))
    for db in dbs:
        await db.close()
    for index, kv in enumerate(kvs):
        db, _ = open_db(pool, MemoryKv(kv.data))
        texts = [r["text"] for r in await db.query("SELECT text FROM notes ORDER BY id")]
        assert texts == [f"{index}-{n}" for n in range(15)]
        blobs = await db.query("SELECT data FROM blobs")
        assert [r["data"] for r in blobs] == [bytes([index]) * 9000] * 3
        await db.close()


@pytest.mark.asyncio
async def test_the_event_loop_keeps_running_during_kv_calls(pool: SqlKvPool) -> None:
    kv = MemoryKv(delay=0.05)
    db, _ = open_db(pool, kv)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await db.execute("INSERT INTO notes (text) VALUES ('slow')")
    seen = ticks
    stop.set()
    await task
    # Opening (a list) and migrating and inserting (puts) each waited >= 50 ms on the KV,
    # while the loop went on ticking.
    assert seen >= 5
    await db.close()


@pytest.mark.asyncio
async def test_kv_failures_and_timeouts_are_sqlite_errors() -> None:
    pool = SqlKvPool(kv_timeout=0.3)
    try:
        kv = MemoryKv()
        db, _ = open_db(pool, kv)
        await db.execute("INSERT INTO notes (text) VALUES ('a')")
        kv.hang = True
        with pytest.raises(RivetError) as info:
            await db.execute("INSERT INTO notes (text) VALUES ('b')")
        assert info.value.group == "sqlite" and "timed out" in info.value.message
        kv.hang = False
        await _close_quietly(db)
        db, _ = open_db(pool, MemoryKv(kv.data))
        assert [r["text"] for r in await db.query("SELECT text FROM notes")] == ["a"]
        await db.close()
    finally:
        pool.shutdown()


@pytest.mark.asyncio
async def test_sqlite3_like_connection(pool: SqlKvPool) -> None:
    backend = pool.open(MemoryKv())

    def use(conn: Any) -> dict[str, Any]:
        conn.executescript("CREATE TABLE t (a INTEGER, b TEXT); CREATE INDEX t_a ON t (a);")
        many = conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(5)])
        empty = conn.execute("SELECT a, b FROM t WHERE a > ?", (100,))
        update = conn.execute("/* c */ UPDATE t SET b = 'x' WHERE a < 3")
        select = conn.execute("SELECT a FROM t ORDER BY a")
        named = conn.execute("SELECT b FROM t WHERE a = :a", {"a": 4}).fetchone()
        conn.execute("BEGIN")
        inside = conn.in_transaction
        conn.rollback()
        return {
            "many": many.rowcount,
            "empty": ([d[0] for d in empty.description], empty.fetchall()),
            "update": update.rowcount,
            "select": (select.rowcount, select.fetchone(), select.fetchmany(2), list(select)),
            "named": named,
            "tx": (inside, conn.in_transaction),
        }

    result = await backend.run(use)
    assert result == {
        "many": 5,
        "empty": (["a", "b"], []),
        "update": 3,
        "select": (-1, (0,), [(1,), (2,)], [(3,), (4,)]),
        "named": ("4",),
        "tx": (True, False),
    }
    await backend.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(6))
async def test_file_against_a_bytearray_model(seed: int) -> None:
    """Unaligned reads, writes, truncates and syncs of a KV-backed file (with a tiny cache,
    so chunks are evicted and read back) match a plain bytearray, before and after reopen."""
    kv = MemoryKv()
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)

    def exercise() -> bytes:
        store = ActorStore(kv, KvBridge(loop, 30.0), cache_chunks=3)
        store.open()
        file = store.main
        file.exists = True
        model = bytearray()
        for _ in range(300):
            op = rng.random()
            if op < 0.45:
                offset = rng.randrange(0, len(model) + 3 * CHUNK_SIZE)
                data = rng.randbytes(rng.randrange(1, 3 * CHUNK_SIZE))
                file.write(data, offset)
                if len(model) < offset:
                    model.extend(bytes(offset - len(model)))
                model[offset : offset + len(data)] = data
            elif op < 0.75:
                offset = rng.randrange(0, len(model) + CHUNK_SIZE)
                amount = rng.randrange(1, 2 * CHUNK_SIZE)
                assert file.read(amount, offset) == bytes(model[offset : offset + amount])
            elif op < 0.85:
                size = rng.randrange(0, len(model) + 1)
                file.truncate(size)
                del model[size:]
            elif op < 0.95:
                file.flush()
            else:  # a new process opens what the KV holds
                file.flush()
                store = ActorStore(kv, KvBridge(loop, 30.0), cache_chunks=3)
                store.open()
                file = store.main
            assert file.size == len(model)
        file.flush()
        return bytes(model)

    model = await asyncio.to_thread(exercise)

    def reopen() -> bytes:
        store = ActorStore(MemoryKv(kv.data), KvBridge(loop, 30.0), cache_chunks=2)
        store.open()
        assert store.main.size == len(model)
        return store.main.read(len(model) + 10, 0)

    assert await asyncio.to_thread(reopen) == model
    # No chunk past the end is left in the KV.
    count = (len(model) + CHUNK_SIZE - 1) // CHUNK_SIZE
    assert sorted(k for k in kv.data if k[1] == 1) == [chunk_key(0, i) for i in range(count)]


@pytest.mark.asyncio
async def test_kill_during_the_first_commit_of_a_new_database(pool: SqlKvPool) -> None:
    """The very first commit is too big for one request and is cut: a reopen finds an empty
    database (or the whole commit, past its commit point) and no garbage in the KV."""
    script = "BEGIN; CREATE TABLE b (x); INSERT INTO b VALUES (zeroblob(600000)); COMMIT;"

    def tables(conn: Any) -> list[tuple[Any, ...]]:
        return conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()

    probe = MemoryKv()
    backend = pool.open(probe)
    await backend.run(lambda conn: conn.executescript(script))
    await backend.close()
    total = len(probe.writes())
    for cut in range(total):
        kv = MemoryKv()
        kv.writes_left = cut
        backend = pool.open(kv)
        with pytest.raises(Exception):  # noqa: B017 (an apsw I/O error)
            await backend.run(lambda conn: conn.executescript(script))
        with contextlib.suppress(Exception):
            await backend.close()
        assert kv.snapshot is not None
        after = MemoryKv(kv.snapshot)
        backend = pool.open(after)
        found = await backend.run(tables)
        assert found in ([], [("b",)]), f"cut after {cut} of {total} writes"
        ok = await backend.run(lambda conn: conn.execute("PRAGMA integrity_check").fetchall())
        assert ok == [("ok",)]
        await backend.close()
        files = {k[:3] for k in after.data}
        assert files <= {b"\x09\x00\x00", b"\x09\x01\x00"}, f"cut after {cut}: {files}"
        if not after.data.get(meta_key(0)):
            assert not after.data, f"cut after {cut}: garbage {sorted(after.data)[:3]}"


@pytest.mark.asyncio
async def test_a_transient_kv_failure_fails_one_commit_only(pool: SqlKvPool) -> None:
    """One write request of a big commit fails (the KV stays up): that statement fails, the
    database stays consistent, the next statements work, and a reopen agrees."""
    old, new = os.urandom(700_000), os.urandom(700_000)
    base = MemoryKv()
    db, _ = open_db(pool, base)
    await db.execute("INSERT INTO blobs (id, data) VALUES (1, ?)", old)
    await db.close()
    probe = MemoryKv(base.data)
    db, _ = open_db(pool, probe)
    await db.open()
    probe.requests.clear()
    await db.execute("UPDATE blobs SET data = ? WHERE id = 1", new)
    await db.close()
    total = len(probe.writes())
    for failing in range(total):
        kv = MemoryKv(base.data)
        db, _ = open_db(pool, kv)
        await db.open()
        kv.fail_writes = {kv._write_count + failing}
        try:
            await db.execute("UPDATE blobs SET data = ? WHERE id = 1", new)
            expected = new
        except RivetError:
            expected = None  # failed: old, or new if only the journal's cleanup failed
        rows = await db.query("SELECT data FROM blobs WHERE id = 1")
        assert rows[0]["data"] in ((old, new) if expected is None else (expected,))
        seen = rows[0]["data"]
        await db.execute("INSERT INTO notes (text) VALUES ('next')")
        await db.close()
        db, _ = open_db(pool, MemoryKv(kv.data))
        assert await db.query("SELECT data FROM blobs WHERE id = 1") == [{"data": seen}]
        assert await db.query("SELECT text FROM notes") == [{"text": "next"}]
        assert await db.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        await db.close()
