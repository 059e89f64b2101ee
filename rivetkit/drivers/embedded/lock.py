"""The data-directory lock: one process owns a data directory at a time.

``<data_dir>/rivetkit.lock`` is locked with ``flock(LOCK_EX | LOCK_NB)`` and holds the owner's
pid. The kernel releases the lock when the process dies, even by SIGKILL, so a stale file never
blocks a restart. The file is never deleted: unlinking a lock file lets a second process lock
a fresh inode while a third still holds the old one. ``flock`` locks belong to the open file,
so a second driver in the *same* process is refused too. On Windows the first byte is locked
with ``msvcrt.locking``; elsewhere without ``fcntl`` the lock is skipped with a warning.
"""

from __future__ import annotations

import logging
import os
import sys

from rivetkit.errors import RivetError

__all__ = ["LOCK_FILE_NAME", "DataDirLock"]

logger = logging.getLogger("rivetkit.driver")

LOCK_FILE_NAME = "rivetkit.lock"


class DataDirLock:
    """The lock file of one data directory."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        self.path = os.path.join(self.data_dir, LOCK_FILE_NAME)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise RivetError ``driver/data_dir_locked`` naming the owner."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                pid = _read_pid(fd)
                raise RivetError(
                    "driver",
                    "data_dir_locked",
                    f"data directory {self.data_dir} is in use by another rivetkit process "
                    f"(pid {pid if pid is not None else 'unknown'}); stop it or use another "
                    "--data directory",
                    metadata={"data_dir": self.data_dir, "pid": pid},
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the file stays)."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            _unlock(fd)
        finally:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 64).decode().strip())
    except (OSError, ValueError):
        return None


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX systems have fcntl
        fcntl = None  # type: ignore[assignment]

    def _try_lock(fd: int) -> bool:
        if fcntl is None:  # pragma: no cover
            logger.warning("no file locking on this platform; data directory lock skipped")
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
