"""The moments of sleeping actors in flat buffers: no Python object per sleeper.

A process holding 100,000 sleeping actors kept, for each, an id string, an int and a dict
entry (about 160 bytes) allocated while the actor was awake, in the middle of its
short-lived objects: their pages could not go back to the system once it slept.
:class:`SleeperTable` keeps ``(start_ts, sleep_ts)`` per sleeper as one 36-byte record in
chunks of 64 KiB (oldest first) and finds it through an open-addressing index (an ``array``
of record numbers, a third to two thirds full): about 50 bytes per sleeper, in a few large
blocks.

Only ids of the shape both drivers make (:func:`pack_id`: 30 lowercase base36 characters,
stored as 20 bytes) fit; :class:`~rivetkit.runtime.lifecycle_times.LifecycleTimes` keeps any
other id in its dict.
"""

from __future__ import annotations

from array import array
from typing import Final

__all__ = ["ID_LENGTH", "SleeperTable", "pack_id"]

#: Characters in an id the table takes.
ID_LENGTH: Final = 30
_KEY: Final = 20  # bytes of a packed id (36**30 < 2**156)
_RECORD: Final = _KEY + 16  # packed id, start_ts + 1 (0: None), sleep_ts: u64 little-endian
_DEAD: Final = 0xFF  # first byte of a removed record (a packed id's first byte is < 0x10)
_EMPTY: Final = -1  # index slot never used
_GONE: Final = -2  # index slot whose record was removed
_MIN_SLOTS: Final = 1024
_PER_CHUNK: Final = 1820  # records per chunk: 65,520 bytes
_CHUNK: Final = _PER_CHUNK * _RECORD
_U64: Final = 1 << 64


def pack_id(actor_id: str) -> bytes | None:
    """The 20-byte key of an id of 30 lowercase base36 characters; None for any other."""
    if (
        len(actor_id) != ID_LENGTH
        or not actor_id.isascii()
        or not actor_id.isalnum()
        or actor_id != actor_id.lower()
    ):
        return None
    return int(actor_id, 36).to_bytes(_KEY, "big")


class SleeperTable:
    """``packed id -> (start_ts | None, sleep_ts)`` (milliseconds), oldest first."""

    __slots__ = ("_chunks", "_count", "_head", "_index", "_live", "_mask", "_used")

    def __init__(self) -> None:
        # Records numbered in the order they were put, in chunks allocated whole (a chunk is
        # never resized: what a process holds grows by whole chunks).
        self._chunks: list[bytearray] = []
        self._count = 0  # records written (live or removed)
        self._index = array("i", [_EMPTY]) * _MIN_SLOTS  # record numbers, _EMPTY, _GONE
        self._mask = _MIN_SLOTS - 1
        self._live = 0  # records not removed
        self._used = 0  # index slots not _EMPTY
        self._head = 0  # no live record before this number

    def __len__(self) -> int:
        return self._live

    @staticmethod
    def fits(start: int | None, sleep: int) -> bool:
        """Whether these moments can be stored (non-negative, below 2**64 - 1)."""
        return 0 <= sleep < _U64 and (start is None or 0 <= start < _U64 - 1)

    def _record(self, number: int) -> tuple[bytearray, int]:
        """The chunk holding record ``number`` and the record's offset in it."""
        chunk, at = divmod(number, _PER_CHUNK)
        return self._chunks[chunk], at * _RECORD

    def _find(self, key: bytes) -> int:
        """The index slot holding ``key``'s record, or -1."""
        index, mask = self._index, self._mask
        slot = hash(key) & mask
        while True:
            number = index[slot]
            if number == _EMPTY:
                return -1
            if number >= 0:
                chunk, at = self._record(number)
                if chunk[at : at + _KEY] == key:
                    return slot
            slot = (slot + 1) & mask

    def _read(self, number: int) -> tuple[int | None, int]:
        chunk, at = self._record(number)
        start = int.from_bytes(chunk[at + _KEY : at + _KEY + 8], "little")
        sleep = int.from_bytes(chunk[at + _KEY + 8 : at + _RECORD], "little")
        return (start - 1 if start else None), sleep

    def get(self, key: bytes) -> tuple[int | None, int] | None:
        """``(start_ts, sleep_ts)`` of ``key``, or None."""
        slot = self._find(key)
        return None if slot < 0 else self._read(self._index[slot])

    def pop(self, key: bytes) -> tuple[int | None, int] | None:
        """Remove ``key``; its ``(start_ts, sleep_ts)``, or None when absent."""
        slot = self._find(key)
        if slot < 0:
            return None
        number = self._index[slot]
        moments = self._read(number)
        self._index[slot] = _GONE
        chunk, at = self._record(number)
        chunk[at] = _DEAD
        self._live -= 1
        if self._count - self._live > max(self._live, _MIN_SLOTS):
            self._rebuild()  # mostly removed records: compact
        return moments

    def put(self, key: bytes, start: int | None, sleep: int) -> None:
        """Store ``key``'s moments as the newest record (replacing any it had); see
        :meth:`fits`."""
        self.pop(key)
        self.append(key, start, sleep)

    def append(self, key: bytes, start: int | None, sleep: int) -> None:
        """:meth:`put` of a ``key`` known absent (the caller just popped it, or holds it
        elsewhere): no lookup first."""
        if (self._used + 1) * 3 > len(self._index) * 2:
            self._rebuild()
        number = self._count
        chunk_number, at = divmod(number, _PER_CHUNK)
        if chunk_number == len(self._chunks):
            self._chunks.append(bytearray(_CHUNK))
        chunk = self._chunks[chunk_number]
        at *= _RECORD
        chunk[at : at + _KEY] = key
        chunk[at + _KEY : at + _KEY + 8] = (0 if start is None else start + 1).to_bytes(8, "little")
        chunk[at + _KEY + 8 : at + _RECORD] = sleep.to_bytes(8, "little")
        self._count = number + 1
        self._place(key, number)
        self._live += 1

    def _place(self, key: bytes, number: int) -> None:
        index, mask = self._index, self._mask
        slot = hash(key) & mask
        while index[slot] >= 0:
            slot = (slot + 1) & mask
        if index[slot] == _EMPTY:
            self._used += 1
        index[slot] = number

    def oldest(self) -> tuple[bytes, int] | None:
        """The key and ``sleep_ts`` of the record put first, or None when empty."""
        number, count = self._head, self._count
        while number < count:
            chunk, at = self._record(number)
            if chunk[at] != _DEAD:
                break
            number += 1
        self._head = number
        if number >= count:
            return None
        chunk, at = self._record(number)
        return bytes(chunk[at : at + _KEY]), self._read(number)[1]

    def _rebuild(self) -> None:
        """Drop removed records and index the live ones in a table sized for them."""
        slots = _MIN_SLOTS
        while slots < (self._live + 1) * 3:  # at most a third full after this
            slots *= 2
        if self._live == self._count:  # nothing removed: the records stay where they are
            self._index = array("i", [_EMPTY]) * slots
            self._mask = slots - 1
            self._used = 0
            for number in range(self._count):
                chunk, at = self._record(number)
                self._place(bytes(chunk[at : at + _KEY]), number)
            return
        records = []
        for number in range(self._head, self._count):
            chunk, at = self._record(number)
            if chunk[at] != _DEAD:
                records.append(bytes(chunk[at : at + _RECORD]))
        self._chunks = []
        self._count = 0
        self._index = array("i", [_EMPTY]) * slots
        self._mask = slots - 1
        self._used = 0
        self._head = 0
        for record in records:
            number = self._count
            chunk_number, at = divmod(number, _PER_CHUNK)
            if chunk_number == len(self._chunks):
                self._chunks.append(bytearray(_CHUNK))
            self._chunks[chunk_number][at * _RECORD : (at + 1) * _RECORD] = record
            self._count = number + 1
            self._place(record[:_KEY], number)
