"""Pure-Python twin of queue key scanning (compiled twin: ``rivetkit._speedups._queuescan``).

Queue messages live at KV ``[5,1,2] + u64 big-endian id``, so a prefix scan returns them in
FIFO order. :func:`scan` turns such entries into ``(id, message)`` pairs, reading each key's id
and, when a name filter is given, peeking at the message name in the value bytes before
paying for a full decode.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from rivetkit.errors import ProtocolError, RivetError
from rivetkit.runtime.keys import QUEUE_MESSAGE_PREFIX as PREFIX

#: A message key: the prefix, then the id as a u64 big-endian.
KEY_LENGTH = len(PREFIX) + 8
#: The only QueueMessage version RivetKit reads.
MESSAGE_VERSION = 4


def message_key(message_id: int) -> bytes:
    """The KV key of queue message ``message_id`` (ids start at 1)."""
    if not 0 <= message_id < 1 << 64:
        raise ValueError(f"queue message id out of range: {message_id}")
    return PREFIX + message_id.to_bytes(8, "big")


def message_id(key: bytes) -> int:
    """The id in a queue message key; ``queue/invalid_message_key`` if it is not one."""
    if len(key) != KEY_LENGTH or key[: len(PREFIX)] != PREFIX:
        raise RivetError(
            "queue",
            "invalid_message_key",
            f"not a queue message key: {bytes(key).hex()}",
        )
    return int.from_bytes(key[len(PREFIX) :], "big")


def peek_name(value: bytes) -> str:
    """The name of an encoded ``QueueMessage`` (vbare v4) without decoding the rest."""
    if len(value) < 3 or value[0] != MESSAGE_VERSION or value[1] != 0:
        raise ProtocolError("not a v4 queue message", code="invalid_persisted_data")
    length = 0
    shift = 0
    pos = 2
    while True:
        if pos >= len(value) or shift > 63:
            raise ProtocolError("bad queue message name length", code="invalid_persisted_data")
        byte = value[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    end = pos + length
    if end > len(value):
        raise ProtocolError("queue message name runs past the end", code="invalid_persisted_data")
    try:
        return bytes(value[pos:end]).decode()
    except UnicodeDecodeError:
        raise ProtocolError(
            "queue message name is not UTF-8", code="invalid_persisted_data"
        ) from None


def scan(
    entries: Sequence[tuple[bytes, bytes]],
    names: Collection[str] | None,
    limit: int,
    decode: Callable[[bytes], Any],
) -> list[tuple[int, Any]]:
    """Up to ``limit`` ``(id, decode(value))`` pairs, in key order, optionally by name."""
    found: list[tuple[int, Any]] = []
    if limit <= 0:
        return found
    for key, value in entries:
        ident = message_id(key)
        if names is not None and peek_name(value) not in names:
            continue
        found.append((ident, decode(value)))
        if len(found) >= limit:
            break
    return found
