"""SQLite files kept in an actor's KV: the key layout, the chunked files and their cache.

The pages of the engine driver's actor databases (see :mod:`.sqlkv`). A SQLite thread reaches
the actor's async KV through a :class:`KvBridge` (the event loop runs the request; the thread
waits for the answer).

**KV layout** (RivetKit's ``@rivetkit/sqlite-vfs`` layout; prefix ``[9]`` collides with none
of the runtime's keys ``[1]``..``[8]`` of DESIGN.md §5):

* ``[9, 0, file_tag]``: the file's metadata: vbare version 1 (``01 00``), then the size in
  bytes as a u64 little-endian. The file exists if and only if this key exists.
* ``[9, 1, file_tag, u32 big-endian chunk index]``: 4096 bytes of the file (the last chunk
  may be shorter). Bytes past the file size read as zeros.
* file tags: 0 the database, 1 its rollback journal (2 WAL and 3 SHM are never written:
  the VFS has no shared memory, so SQLite stays in rollback-journal mode).

**Writes and durability.** A :class:`KvFile` keeps the chunks it has read in a bounded cache
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

Chunks past a shrunk file's end are deleted after the commit that shrank it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

import apsw

from .kv import MAX_KEYS, MAX_PUT_PAYLOAD

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

__all__ = [
    "CACHE_CHUNKS",
    "CHUNK_SIZE",
    "FILE_JOURNAL",
    "FILE_MAIN",
    "ActorStore",
    "DriverKv",
    "KvBridge",
    "KvFile",
    "KvStore",
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
#: Chunks listed when a database is opened (one KV request), and read ahead on a miss.
PRELOAD_CHUNKS: Final = 1024
READ_AHEAD: Final = 32
#: Clean chunks cached per database (dirty chunks are always kept until written).
CACHE_CHUNKS: Final = 4096
#: Threads shared by every actor database of a pool.
#: The vbare version of the file metadata.
_META_VERSION: Final = b"\x01\x00"
_LAST_CHUNK: Final = 0xFFFFFFFF


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


class KvBridge:
    """Runs KV coroutines on the event loop from a SQLite thread and waits for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout

    def call(self, what: str, factory: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``factory()`` on the loop and wait for its result (apsw I/O errors on failure)."""

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


class KvFile:
    """One file of an actor database (the database or its journal) and its chunk cache.

    ``valid`` counts the leading chunks whose KV value is the file's content; chunks from
    ``valid`` on are zeros until written (the KV may still hold older data there, after a
    shrink, until the next flush rewrites or deletes it).
    """

    def __init__(self, store: ActorStore, tag: int, *, cache_chunks: int) -> None:
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


class ActorStore:
    """The files of one actor database: its KV, the database and the journal."""

    def __init__(self, kv: KvStore, bridge: KvBridge, *, cache_chunks: int) -> None:
        self.kv = kv
        self.bridge = bridge
        self.main = KvFile(self, FILE_MAIN, cache_chunks=cache_chunks)
        self.journal = KvFile(self, FILE_JOURNAL, cache_chunks=1 << 62)
        #: KV requests sent (for tests and metrics).
        self.requests = 0

    def file(self, tag: int) -> KvFile:
        """The database (``FILE_MAIN``) or its journal."""
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
        """One KV get, from a SQLite thread."""
        self.requests += 1
        return self.bridge.call("get", lambda: self.kv.get(keys))

    def put(self, entries: list[tuple[bytes, bytes]]) -> None:
        """One KV put, from a SQLite thread."""
        self.requests += 1
        self.bridge.call("put", lambda: self.kv.put(entries))

    def delete(self, keys: list[bytes]) -> None:
        """One KV delete, from a SQLite thread."""
        self.requests += 1
        self.bridge.call("delete", lambda: self.kv.delete(keys))

    def delete_range(self, start: bytes, end: bytes) -> None:
        """One KV range delete, from a SQLite thread."""
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
