"""An in-memory actor KV for the trace recorder's tests (``TraceStorage`` / ``ActorTraces``
write their chunks through it and list the stored ones)."""

from __future__ import annotations

import asyncio
from typing import ClassVar


class MemoryStore:
    """A dict as the actor KV, counting writes; listing keeps key order (``reverse`` and
    ``limit`` as the drivers' ``kv_list``). With :attr:`answer_later` a write first lets
    the loop turn once, as a real store answers later."""

    answer_later: ClassVar[bool] = False

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.writes = 0

    async def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        """Apply ``deletes`` then ``puts``."""
        self.writes += 1
        if self.answer_later:
            await asyncio.sleep(0)
        for key in deletes:
            self.data.pop(key, None)
        self.data.update(puts)

    async def list(
        self, start: bytes, end: bytes | None, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The entries with ``start <= key < end`` (no end: to the last), in key order."""
        out = sorted(
            (k, v) for k, v in self.data.items() if k >= start and (end is None or k < end)
        )
        if reverse:
            out.reverse()
        return out if limit is None else out[:limit]


class LaterStore(MemoryStore):
    """A :class:`MemoryStore` whose writes answer after a loop turn."""

    answer_later = True
