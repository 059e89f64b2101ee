"""The actor's user key/value store (``c.kv``), stored under KV prefix ``[4]``.

Keys and values are bytes (a ``str`` is taken as its UTF-8 bytes). Limits follow RivetKit:
a key of at most 2,048 bytes (``kv.key_too_large``) and a value of at most 131,072 bytes
(``kv.value_too_large``). Ranges are half-open ``[start, end)`` and ordered by unsigned bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rivetkit.drivers.base import prefix_end
from rivetkit.errors import RivetError
from rivetkit.runtime.keys import USER_KV_PREFIX

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

MAX_KEY_SIZE = 2048
MAX_VALUE_SIZE = 131072
#: RivetKit reads batches 128 keys at a time; the same bound keeps one request small.
BATCH_CHUNK = 128

KeyLike = bytes | bytearray | memoryview | str
ValueLike = bytes | bytearray | memoryview | str


def _key(key: KeyLike) -> bytes:
    if isinstance(key, str):
        raw = key.encode()
    elif isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
    else:
        raise TypeError(f"kv keys are bytes or str, got {type(key).__name__}")
    if len(raw) > MAX_KEY_SIZE:
        raise RivetError(
            "kv",
            "key_too_large",
            f"key is {len(raw)} bytes; the limit is {MAX_KEY_SIZE}",
            metadata={"size": len(raw), "limit": MAX_KEY_SIZE},
        )
    return USER_KV_PREFIX + raw


def _value(value: ValueLike) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError(f"kv values are bytes or str, got {type(value).__name__}")
    if len(raw) > MAX_VALUE_SIZE:
        raise RivetError(
            "kv",
            "value_too_large",
            f"value is {len(raw)} bytes; the limit is {MAX_VALUE_SIZE}",
            metadata={"size": len(raw), "limit": MAX_VALUE_SIZE},
        )
    return raw


def _strip(entries: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    cut = len(USER_KV_PREFIX)
    return [(key[cut:], value) for key, value in entries]


class ActorKV:
    """Per-actor user KV (``c.kv``); every method is a coroutine answered by the driver."""

    __slots__ = ("_actor_id", "_driver")

    def __init__(self, driver: Driver, actor_id: str) -> None:
        self._driver = driver
        self._actor_id = actor_id

    async def get(self, key: KeyLike) -> bytes | None:
        """The value of ``key``, or None."""
        (value,) = await self._driver.kv_get(self._actor_id, [_key(key)])
        return value

    async def batch_get(self, keys: Sequence[KeyLike]) -> list[bytes | None]:
        """The values of ``keys`` in order (None where missing)."""
        full = [_key(k) for k in keys]
        result: list[bytes | None] = []
        for start in range(0, len(full), BATCH_CHUNK):
            result += await self._driver.kv_get(self._actor_id, full[start : start + BATCH_CHUNK])
        return result

    async def put(self, key: KeyLike, value: ValueLike) -> None:
        """Store ``value`` under ``key``."""
        await self._driver.kv_write(self._actor_id, puts=[(_key(key), _value(value))])

    async def batch_put(
        self, entries: Mapping[KeyLike, ValueLike] | Iterable[tuple[KeyLike, ValueLike]]
    ) -> None:
        """Store several entries at once (atomically, unlike RivetKit's chunked puts)."""
        items = entries.items() if isinstance(entries, Mapping) else entries
        puts = [(_key(k), _value(v)) for k, v in items]
        await self._driver.kv_write(self._actor_id, puts=puts)

    async def delete(self, key: KeyLike) -> None:
        """Delete ``key`` (no error when missing)."""
        await self._driver.kv_write(self._actor_id, deletes=[_key(key)])

    async def batch_delete(self, keys: Sequence[KeyLike]) -> None:
        """Delete several keys at once."""
        await self._driver.kv_write(self._actor_id, deletes=[_key(k) for k in keys])

    async def delete_range(self, start: KeyLike, end: KeyLike) -> None:
        """Delete every key in ``[start, end)``."""
        await self._driver.kv_delete_range(self._actor_id, _key(start), _key(end))

    async def list_prefix(
        self, prefix: KeyLike = b"", *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Entries whose key starts with ``prefix``, in key order (or reversed)."""
        full = _key(prefix)
        entries = await self._driver.kv_list(
            self._actor_id, full, prefix_end(full), reverse=reverse, limit=limit
        )
        return _strip(entries)

    async def list_range(
        self,
        start: KeyLike,
        end: KeyLike,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end``, in key order (or reversed)."""
        entries = await self._driver.kv_list(
            self._actor_id, _key(start), _key(end), reverse=reverse, limit=limit
        )
        return _strip(entries)
