"""The SQLite VFS (``apsw``) of the engine driver's actor databases.

One process-wide VFS (:func:`the_vfs`) maps file names ``/rivetkit-kv/<token>/db`` (and
``-journal``) to the :class:`~.sqlkv_pages.ActorStore` attached under that token; every other
file SQLite asks for (temp tables, sort spills) lives in memory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any, Final

import apsw

from .sqlkv_pages import CHUNK_SIZE, FILE_JOURNAL, FILE_MAIN, ActorStore, KvFile

__all__ = ["KvVfs", "the_vfs"]

logger = logging.getLogger("rivetkit.sqlkv")

_PATH_PREFIX: Final = "/rivetkit-kv/"
#: The Unix epoch as a Julian day, in milliseconds (SQLite's clock).
_JULIAN_EPOCH_MS: Final = 210_866_760_000_000


class VfsFileBase:
    """What both file kinds answer alike: no reserved lock seen from elsewhere (one process
    uses an actor's database at a time), no file controls, chunk-sized sectors."""

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return CHUNK_SIZE


class KvVfsFile(VfsFileBase):
    """The file object SQLite gets from :meth:`KvVfs.xOpen` for a KV-backed file."""

    def __init__(self, file: KvFile) -> None:
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


class MemoryFile(VfsFileBase):
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


class KvVfs(apsw.VFS):
    """The process-wide VFS: file names ``/rivetkit-kv/<token>/db`` map to actor stores."""

    NAME: Final = f"rivetkit-kv-{uuid.uuid4().hex[:8]}"

    def __init__(self) -> None:
        super().__init__(self.NAME, base="")
        self._stores: dict[str, ActorStore] = {}
        self._lock = threading.Lock()

    def attach(self, store: ActorStore) -> str:
        """Register ``store``; the database path to open with this VFS."""
        token = uuid.uuid4().hex
        with self._lock:
            self._stores[token] = store
        return f"{_PATH_PREFIX}{token}/db"

    def detach(self, path: str) -> None:
        """Forget the store of ``path`` (after its connection closed)."""
        with self._lock:
            self._stores.pop(self._split(path)[0], None)

    def _split(self, name: str) -> tuple[str, str]:
        if not name.startswith(_PATH_PREFIX):
            raise apsw.CantOpenError(f"not a KV database path: {name!r}")
        token, _, rest = name[len(_PATH_PREFIX) :].partition("/")
        return token, rest

    def _resolve(self, name: str) -> KvFile | None:
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
            return MemoryFile()
        if not file.exists:
            if not flags[0] & apsw.SQLITE_OPEN_CREATE:
                raise apsw.CantOpenError(f"{path} does not exist")
            file.exists = True
            file.size = 0
        flags[1] = flags[0]
        return KvVfsFile(file)

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
_vfs: KvVfs | None = None


def the_vfs() -> KvVfs:
    """The process-wide VFS (registered with SQLite on first use)."""
    global _vfs
    with _vfs_lock:
        if _vfs is None:
            _vfs = KvVfs()
        return _vfs
