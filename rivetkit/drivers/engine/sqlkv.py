"""Per-actor SQL databases of the engine driver: SQLite pages kept in the actor's KV.

In engine mode an actor may wake in any envoy process of its pool, so its ``c.db`` cannot be
a local file. The database file is instead stored in the actor's engine KV through an SQLite
VFS (``apsw``), and follows the actor wherever the engine places it.

**KV layout** (RivetKit's ``@rivetkit/sqlite-vfs`` layout; prefix ``[9]`` collides with none
of the runtime's keys ``[1]``..``[8]`` of DESIGN.md §5):

* ``[9, 0, file_tag]``: the file's metadata: vbare version 1 (``01 00``), then the size in
  bytes as a u64 little-endian. The file exists if and only if this key exists.
* ``[9, 1, file_tag, u32 big-endian chunk index]``: 4096 bytes of the file (the last chunk
  may be shorter). Bytes past the file size read as zeros.
* file tags: 0 the database, 1 its rollback journal (2 WAL and 3 SHM are never written:
  the VFS has no shared memory, so SQLite stays in rollback-journal mode).

**Writes and durability.** The VFS keeps the chunks it has read in a bounded per-actor cache
(clean chunks are evicted LRU; dirty ones stay until written) and *buffers* every write until
SQLite syncs the database file (``xSync``, i.e. at each commit). Then:

* if the dirty chunks and the new size fit in one KV put (the engine allows 128 keys and
  976 KiB per request; 127 pages of 4 KiB and the metadata), they are written by one request,
  which the engine applies atomically: the commit is all or nothing. The rollback journal
  never leaves memory in this case (no KV traffic for it at all).
* otherwise the journal, which SQLite has completed by then, is first written to the KV (its
  metadata key last), then the pages in batches of 128 keys, then SQLite deletes the journal
  (its metadata key first). A process killed in between leaves a *hot journal* in the KV,
  which SQLite plays back when the database is next opened, wherever that is.

A statement returns only once its commit is in the KV, so a commit survives a process kill.
Chunks past a shrunk file's end are deleted after the commit that shrank it.

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
import concurrent.futures
import logging
import os
import re
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import apsw

logger = logging.getLogger("rivetkit.sqlkv")

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

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

_T = TypeVar("_T")

#: Bytes of a file per KV entry (and the SQLite page size used for new databases).
CHUNK_SIZE: Final = 4096
#: First key byte of every SQLite entry (RivetKit's ``SQLITE_PREFIX``).
SQLITE_PREFIX: Final = 9
META_PREFIX: Final = 0
CHUNK_PREFIX: Final = 1
FILE_MAIN: Final = 0
FILE_JOURNAL: Final = 1
#: The engine's KV limits per request (engine/packages/pegboard/src/actor_kv/mod.rs).
MAX_KEYS: Final = 128
MAX_PUT_PAYLOAD: Final = 976 * 1024
#: Chunks listed when a database is opened (one KV request), and read ahead on a miss.
PRELOAD_CHUNKS: Final = 1024
READ_AHEAD: Final = 32
#: Clean chunks cached per database (dirty chunks are always kept until written).
CACHE_CHUNKS: Final = 4096
#: Threads shared by every actor database of a pool.
SQL_THREADS: Final = 2
#: The vbare version of the file metadata.
_META_VERSION: Final = b"\x01\x00"
_LAST_CHUNK: Final = 0xFFFFFFFF
_PATH_PREFIX: Final = "/rivetkit-kv/"
#: The Unix epoch as a Julian day, in milliseconds (SQLite's clock).
_JULIAN_EPOCH_MS: Final = 210_866_760_000_000


def meta_key(tag: int) -> bytes:
    """The metadata key of file ``tag``: ``[9, 0, tag]``."""
    return bytes((SQLITE_PREFIX, META_PREFIX, tag))


def chunk_key(tag: int, index: int) -> bytes:
    """The key of chunk ``index`` of file ``tag``: ``[9, 1, tag] + u32 big-endian``."""
    return bytes((SQLITE_PREFIX, CHUNK_PREFIX, tag)) + struct.pack(">I", index)


def encode_meta(size: int) -> bytes:
    """The metadata value: vbare v1 ``FileMeta{size: u64}``."""
    return _META_VERSION + struct.pack("<Q", size)


def decode_meta(value: bytes) -> int:
    """The file size stored in a metadata value."""
    if len(value) != 10 or value[:2] != _META_VERSION:
        raise ValueError(f"bad SQLite file metadata: {value.hex()}")
    size: int = struct.unpack("<Q", value[2:])[0]
    return size


# -- the KV ----------------------------------------------------------------------------------


class KvStore(Protocol):
    """One actor's KV as the VFS needs it (async; called on the event loop).

    ``put`` gets at most 128 entries and must apply them in one atomic request.
    """

    async def get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing)."""
        ...

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """Write the entries (one request, all or nothing)."""
        ...

    async def delete(self, keys: Sequence[bytes]) -> None:
        """Delete the keys."""
        ...

    async def delete_range(self, start: bytes, end: bytes) -> None:
        """Delete the entries with ``start <= key < end``."""
        ...

    async def list(self, start: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """At most ``limit`` entries with ``start <= key < end``, in key order."""
        ...


class DriverKv:
    """:class:`KvStore` over a driver's KV calls for one actor."""

    def __init__(self, driver: Driver, actor_id: str) -> None:
        self.driver = driver
        self.actor_id = actor_id

    async def get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order."""
        return await self.driver.kv_get(self.actor_id, keys)

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """One put request (within the limits, the driver sends one request)."""
        await self.driver.kv_write(self.actor_id, puts=entries)

    async def delete(self, keys: Sequence[bytes]) -> None:
        """Delete the keys."""
        await self.driver.kv_write(self.actor_id, deletes=keys)

    async def delete_range(self, start: bytes, end: bytes) -> None:
        """Delete a key range."""
        await self.driver.kv_delete_range(self.actor_id, start, end)

    async def list(self, start: bytes, end: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """List a key range."""
        return await self.driver.kv_list(self.actor_id, start, end, limit=limit)


class _Bridge:
    """Runs KV coroutines on the event loop from a SQLite thread and waits for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout

    def call(self, what: str, factory: Callable[[], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            return await factory()

        if self.loop.is_closed():
            raise apsw.IOError(f"KV {what} failed: the event loop is closed")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("the KV VFS must not be used on the event loop thread")
        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise apsw.IOError(f"KV {what} timed out after {self.timeout:g} s") from None
        except apsw.Error:
            raise
        except Exception as exc:
            raise apsw.IOError(f"KV {what} failed: {exc}") from exc


# -- files -----------------------------------------------------------------------------------


class _KvFile:
    """One file of an actor database (the database or its journal) and its chunk cache.

    ``valid`` counts the leading chunks whose KV value is the file's content; chunks from
    ``valid`` on are zeros until written (the KV may still hold older data there, after a
    shrink, until the next flush rewrites or deletes it).
    """

    def __init__(self, store: _ActorStore, tag: int, *, cache_chunks: int) -> None:
        self.store = store
        self.tag = tag
        self.exists = False
        #: Whether the file is in the KV (the database always, once written; the journal
        #: only when a commit did not fit in one request).
        self.persisted = False
        self.size = 0
        #: The size stored in the KV (None: no metadata key).
        self.stored_size: int | None = None
        self.valid = 0
        self.clean: OrderedDict[int, bytes] = OrderedDict()
        self.dirty: dict[int, bytearray] = {}
        self.cache_chunks = cache_chunks
        #: Whether the file shrank since the last flush (chunks past its end to delete).
        self.shrunk = False

    def opened(self, size: int) -> None:
        """The file exists in the KV with this size."""
        self.exists = self.persisted = True
        self.size = self.stored_size = size
        self.valid = _chunks(size)

    # -- chunks ------------------------------------------------------------------------------

    def _remember(self, index: int, data: bytes) -> None:
        self.clean[index] = data
        self.clean.move_to_end(index)
        while len(self.clean) > self.cache_chunks:
            self.clean.popitem(last=False)

    def load(self, index: int, value: bytes | None) -> bytes:
        """Cache a chunk read from the KV (bytes past the end of the file are dropped: they
        read as zeros); return it."""
        end = self.size - index * CHUNK_SIZE
        if end <= 0 or index >= self.valid:
            return b""
        data = (value or b"")[:end]
        self._remember(index, data)
        return data

    def _fetch(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The clean content of the chunks ``indexes`` that are not dirty: from the cache, or
        read from the KV (with a few chunks after them, cached for the next reads)."""
        limit = min(_chunks(self.size), self.valid) if self.persisted else 0
        found: dict[int, bytes] = {}
        wanted: list[int] = []
        for index in indexes:
            if index in self.dirty:
                continue
            clean = self.clean.get(index)
            if clean is not None:
                self.clean.move_to_end(index)
                found[index] = clean
            elif index < limit:
                wanted.append(index)
        if not wanted:
            return found
        asked = len(wanted)
        ahead = wanted[-1] + 1
        stop = min(limit, ahead + READ_AHEAD)
        while len(wanted) < MAX_KEYS and ahead < stop:
            if ahead not in self.dirty and ahead not in self.clean:
                wanted.append(ahead)
            ahead += 1
        values: list[bytes | None] = []
        for start in range(0, len(wanted), MAX_KEYS):
            batch = wanted[start : start + MAX_KEYS]
            values.extend(self.store.get([chunk_key(self.tag, index) for index in batch]))
        # The read-ahead chunks first, so that the cache keeps the asked ones as most recent.
        for index, value in zip(wanted[asked:], values[asked:]):
            self.load(index, value)
        for index, value in zip(wanted[:asked], values[:asked]):
            found[index] = self.load(index, value)
        return found

    def _chunk(self, index: int, fetched: dict[int, bytes]) -> bytes | bytearray:
        data = self.dirty.get(index)
        if data is not None:
            return data
        return fetched.get(index, b"")

    def _dirty_chunk(self, index: int, fetched: dict[int, bytes]) -> bytearray:
        """The chunk as a buffer to change (moved from the clean cache to the dirty set)."""
        chunk = self.dirty.get(index)
        if chunk is None:
            self.clean.pop(index, None)
            chunk = bytearray(fetched.get(index, b""))
            self.dirty[index] = chunk
        return chunk

    # -- file operations ---------------------------------------------------------------------

    def read(self, amount: int, offset: int) -> bytes:
        """Up to ``amount`` bytes at ``offset`` (short at the end of the file)."""
        end = min(offset + amount, self.size)
        if end <= offset:
            return b""
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        fetched = self._fetch(range(first, last + 1))
        parts: list[bytes] = []
        for index in range(first, last + 1):
            base = index * CHUNK_SIZE
            data = self._chunk(index, fetched)
            lo = max(offset, base) - base
            hi = min(end, base + CHUNK_SIZE) - base
            piece = bytes(data[lo:hi])
            if len(piece) < hi - lo:
                piece += bytes(hi - lo - len(piece))
            parts.append(piece)
        return b"".join(parts)

    def write(self, data: bytes, offset: int) -> None:
        """Write ``data`` at ``offset`` (buffered until the next sync)."""
        if not data:
            return
        end = offset + len(data)
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        partial = [
            index
            for index in {first, last}
            if index * CHUNK_SIZE < offset or end < min(self.size, (index + 1) * CHUNK_SIZE)
        ]
        fetched = self._fetch(sorted(partial))
        for index in range(first, last + 1):
            base = index * CHUNK_SIZE
            chunk = self._dirty_chunk(index, fetched)
            lo = max(offset, base) - base
            hi = min(end, base + CHUNK_SIZE) - base
            if len(chunk) < lo:
                chunk.extend(bytes(lo - len(chunk)))
            chunk[lo:hi] = data[base + lo - offset : base + hi - offset]
        if end > self.size:
            self.size = end

    def truncate(self, size: int) -> None:
        """Set the file size (a shrink drops the chunks past the end)."""
        if size >= self.size:
            self.size = size
            return
        count = _chunks(size)
        if size % CHUNK_SIZE:
            index = count - 1
            chunk = self._dirty_chunk(index, self._fetch([index]))
            del chunk[size - index * CHUNK_SIZE :]
        for cache in (self.clean, self.dirty):
            for index in [i for i in cache if i >= count]:
                del cache[index]
        self.size = size
        self.valid = min(self.valid, count)
        self.shrunk = True

    def needs_flush(self) -> bool:
        """Whether the KV is behind this file."""
        return bool(self.dirty) or self.stored_size != self.size or self.shrunk

    def _entries(self) -> list[tuple[bytes, bytes]]:
        """The chunks to put: the dirty ones, and zeros for never written chunks past
        ``valid`` (the KV may hold older data there)."""
        count = _chunks(self.size)
        indexes = set(self.dirty) | set(range(min(self.valid, count), count))
        entries = []
        for index in sorted(indexes):
            data = self.dirty.get(index)
            if data is None:
                data = bytearray(min(CHUNK_SIZE, self.size - index * CHUNK_SIZE))
            entries.append((chunk_key(self.tag, index), bytes(data)))
        return entries

    def flush(self) -> None:
        """Write the buffered changes to the KV (see the module docstring)."""
        if not self.needs_flush():
            return
        entries = self._entries()
        meta = (meta_key(self.tag), encode_meta(self.size))
        if len(entries) < MAX_KEYS and _payload(entries) + _payload([meta]) <= MAX_PUT_PAYLOAD:
            self.store.put([*entries, meta])
        else:
            if self.tag == FILE_MAIN:
                self.store.persist_journal()
            for batch in _batches(entries):
                self.store.put(batch)
            self.store.put([meta])
        self._stored()

    def persist(self) -> None:
        """Write the whole file to the KV (the journal, before a multi-request commit)."""
        if self.persisted:
            self.flush()
            return
        self.valid = 0  # nothing of this file is in the KV yet: every chunk is put
        for batch in _batches(self._entries()):
            self.store.put(batch)
        # Chunks past the end may remain from an older journal: they go (in _stored), then
        # the metadata key makes the file exist.
        self.shrunk = True
        self.store.put([(meta_key(self.tag), encode_meta(self.size))])
        self._stored()

    def _stored(self) -> None:
        """The KV now holds the file: cache the written chunks, delete those past the end."""
        count = _chunks(self.size)
        self.persisted = True
        self.stored_size = self.size
        self.valid = count
        for index in sorted(self.dirty):
            self._remember(index, bytes(self.dirty[index]))
        self.dirty.clear()
        if self.shrunk:
            self.shrunk = False
            self.store.delete_range(chunk_key(self.tag, count), chunk_key(self.tag, _LAST_CHUNK))

    def delete(self) -> None:
        """Delete the file (its metadata key first: that is the commit point of a journal)."""
        if self.persisted or self.stored_size is not None:
            self.store.delete([meta_key(self.tag)])
            self.store.delete_range(chunk_key(self.tag, 0), chunk_key(self.tag, _LAST_CHUNK))
        self.exists = False
        self.persisted = False
        self.size = 0
        self.stored_size = None
        self.valid = 0
        self.clean.clear()
        self.dirty.clear()
        self.shrunk = False


def _chunks(size: int) -> int:
    """Chunks of a file of ``size`` bytes."""
    return (size + CHUNK_SIZE - 1) // CHUNK_SIZE


def _payload(entries: Sequence[tuple[bytes, bytes]]) -> int:
    return sum(len(key) + 2 + len(value) for key, value in entries)


def _batches(entries: Sequence[tuple[bytes, bytes]]) -> Iterator[list[tuple[bytes, bytes]]]:
    """Split puts into requests within the engine's limits (128 keys, 976 KiB)."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for entry in entries:
        entry_size = _payload([entry])
        if batch and (len(batch) >= MAX_KEYS or size + entry_size > MAX_PUT_PAYLOAD):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


class _ActorStore:
    """The files of one actor database: its KV, the database and the journal."""

    def __init__(self, kv: KvStore, bridge: _Bridge, *, cache_chunks: int) -> None:
        self.kv = kv
        self.bridge = bridge
        self.main = _KvFile(self, FILE_MAIN, cache_chunks=cache_chunks)
        self.journal = _KvFile(self, FILE_JOURNAL, cache_chunks=1 << 62)
        #: KV requests sent (for tests and metrics).
        self.requests = 0

    def file(self, tag: int) -> _KvFile:
        return self.main if tag == FILE_MAIN else self.journal

    def open(self) -> None:
        """Read the metadata and the first chunks of the database (one KV request)."""
        start = bytes((SQLITE_PREFIX,))
        end = bytes((SQLITE_PREFIX + 1,))
        self.requests += 1
        entries = self.bridge.call("list", lambda: self.kv.list(start, end, PRELOAD_CHUNKS))
        chunks: list[tuple[int, int, bytes]] = []
        for key, value in entries:
            if len(key) == 3 and key[1] == META_PREFIX and key[2] in (FILE_MAIN, FILE_JOURNAL):
                self.file(key[2]).opened(decode_meta(value))
            elif len(key) == 7 and key[1] == CHUNK_PREFIX and key[2] in (FILE_MAIN, FILE_JOURNAL):
                chunks.append((key[2], struct.unpack(">I", key[3:])[0], value))
        for tag, index, value in chunks:
            file = self.file(tag)
            if file.exists:
                file.load(index, value)
        # Chunks of a file without its metadata key: a process died while it wrote them (a
        # journal that never became hot, a first commit of the database that never ended);
        # they are garbage. Journal chunks may lie past a listing cut short.
        seen = {tag for tag, _, _ in chunks}
        if len(entries) >= PRELOAD_CHUNKS:
            seen.add(FILE_JOURNAL)
        for tag in sorted(seen):
            if not self.file(tag).exists:
                self.delete_range(chunk_key(tag, 0), chunk_key(tag, _LAST_CHUNK))

    def get(self, keys: list[bytes]) -> list[bytes | None]:
        self.requests += 1
        return self.bridge.call("get", lambda: self.kv.get(keys))

    def put(self, entries: list[tuple[bytes, bytes]]) -> None:
        self.requests += 1
        self.bridge.call("put", lambda: self.kv.put(entries))

    def delete(self, keys: list[bytes]) -> None:
        self.requests += 1
        self.bridge.call("delete", lambda: self.kv.delete(keys))

    def delete_range(self, start: bytes, end: bytes) -> None:
        self.requests += 1
        self.bridge.call("delete range", lambda: self.kv.delete_range(start, end))

    def persist_journal(self) -> None:
        """Write the journal to the KV before a commit that takes several requests."""
        if self.journal.exists:
            self.journal.persist()

    def flush(self) -> None:
        """Write whatever the database has buffered (when closing)."""
        if self.main.exists and self.main.needs_flush():
            self.main.flush()


class _VfsFileBase:
    """What both file kinds answer alike: no reserved lock seen from elsewhere (one process
    uses an actor's database at a time), no file controls, chunk-sized sectors."""

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return CHUNK_SIZE


class _KvVfsFile(_VfsFileBase):
    """The file object SQLite gets from :meth:`_KvVfs.xOpen` for a KV-backed file."""

    def __init__(self, file: _KvFile) -> None:
        self.file = file

    def xRead(self, amount: int, offset: int) -> bytes:
        return self.file.read(amount, offset)

    def xWrite(self, data: bytes, offset: int) -> None:
        self.file.write(bytes(data), offset)

    def xTruncate(self, newsize: int) -> None:
        self.file.truncate(newsize)
        if self.file.tag == FILE_JOURNAL and self.file.persisted:
            self.file.flush()  # a journal truncated to zero may be a commit point

    def xSync(self, flags: int) -> None:
        if self.file.tag == FILE_MAIN or self.file.persisted:
            self.file.flush()

    def xFileSize(self) -> int:
        return self.file.size

    def xClose(self) -> None:
        if self.file.tag == FILE_MAIN and self.file.exists and self.file.needs_flush():
            self.file.flush()

    def xLock(self, level: int) -> None:
        pass  # one connection per actor database: no other process shares it

    def xUnlock(self, level: int) -> None:
        # The end of a transaction: SQLite may truncate the file after its last sync (VACUUM).
        file = self.file
        if file.tag == FILE_MAIN and level <= apsw.SQLITE_LOCK_SHARED and file.needs_flush():
            try:
                file.flush()
            except apsw.Error as exc:  # kept buffered: the next sync writes it
                logger.warning("writing a SQLite database to the KV failed: %s", exc)

    def xDeviceCharacteristics(self) -> int:
        return int(apsw.SQLITE_IOCAP_POWERSAFE_OVERWRITE)


class _MemoryFile(_VfsFileBase):
    """A temporary file SQLite asks for (temp tables, sort spills): memory only."""

    def __init__(self) -> None:
        self.data = bytearray()

    def xRead(self, amount: int, offset: int) -> bytes:
        return bytes(self.data[offset : offset + amount])

    def xWrite(self, data: bytes, offset: int) -> None:
        if len(self.data) < offset:
            self.data.extend(bytes(offset - len(self.data)))
        self.data[offset : offset + len(data)] = data

    def xTruncate(self, newsize: int) -> None:
        del self.data[newsize:]

    def xSync(self, flags: int) -> None:
        pass

    def xFileSize(self) -> int:
        return len(self.data)

    def xClose(self) -> None:
        self.data = bytearray()

    def xLock(self, level: int) -> None:
        pass

    def xUnlock(self, level: int) -> None:
        pass

    def xDeviceCharacteristics(self) -> int:
        return 0


class _KvVfs(apsw.VFS):
    """The process-wide VFS: file names ``/rivetkit-kv/<token>/db`` map to actor stores."""

    NAME: Final = f"rivetkit-kv-{uuid.uuid4().hex[:8]}"

    def __init__(self) -> None:
        super().__init__(self.NAME, base="")
        self._stores: dict[str, _ActorStore] = {}
        self._lock = threading.Lock()

    def attach(self, store: _ActorStore) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._stores[token] = store
        return f"{_PATH_PREFIX}{token}/db"

    def detach(self, path: str) -> None:
        with self._lock:
            self._stores.pop(self._split(path)[0], None)

    def _split(self, name: str) -> tuple[str, str]:
        if not name.startswith(_PATH_PREFIX):
            raise apsw.CantOpenError(f"not a KV database path: {name!r}")
        token, _, rest = name[len(_PATH_PREFIX) :].partition("/")
        return token, rest

    def _resolve(self, name: str) -> _KvFile | None:
        token, rest = self._split(name)
        with self._lock:
            store = self._stores.get(token)
        if store is None:
            raise apsw.CantOpenError(f"no open KV database for {name!r}")
        if rest == "db":
            return store.main
        if rest == "db-journal":
            return store.journal
        return None

    def xOpen(self, name: Any, flags: list[int]) -> Any:
        path = None if name is None else str(getattr(name, "filename", lambda: name)())
        file = self._resolve(path) if path is not None else None
        if file is None:
            if flags[0] & (apsw.SQLITE_OPEN_MAIN_DB | apsw.SQLITE_OPEN_WAL):
                raise apsw.CantOpenError(f"unsupported file for a KV database: {path!r}")
            flags[1] = flags[0]
            return _MemoryFile()
        if not file.exists:
            if not flags[0] & apsw.SQLITE_OPEN_CREATE:
                raise apsw.CantOpenError(f"{path} does not exist")
            file.exists = True
            file.size = 0
        flags[1] = flags[0]
        return _KvVfsFile(file)

    def xDelete(self, name: str, syncdir: bool) -> None:
        file = self._resolve(name)
        if file is not None:
            file.delete()

    def xAccess(self, name: str, flags: int) -> bool:
        file = self._resolve(name)
        return file is not None and file.exists

    def xFullPathname(self, name: str) -> str:
        return name

    def xRandomness(self, numbytes: int) -> bytes:
        return os.urandom(numbytes)

    def xSleep(self, microseconds: int) -> int:
        time.sleep(microseconds / 1e6)
        return microseconds

    def xCurrentTimeInt64(self) -> int:
        return time.time_ns() // 1_000_000 + _JULIAN_EPOCH_MS

    def xCurrentTime(self) -> float:
        return self.xCurrentTimeInt64() / 86_400_000

    def xGetLastError(self) -> tuple[int, str | None]:
        return 0, None


_vfs_lock = threading.Lock()
_vfs: _KvVfs | None = None


def _the_vfs() -> _KvVfs:
    global _vfs
    with _vfs_lock:
        if _vfs is None:
            _vfs = _KvVfs()
        return _vfs


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
        self.store: _ActorStore | None = None

    def _connect(self, loop: asyncio.AbstractEventLoop) -> KvConnection:
        if self._connection is None:
            vfs = _the_vfs()
            store = _ActorStore(
                self._kv, _Bridge(loop, self._pool.kv_timeout), cache_chunks=self._pool.cache_chunks
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
                    _the_vfs().detach(path)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool.executor(), close)
