"""The actor-local KV layout (DESIGN.md §5), identical on both drivers.

Values are vbare (2-byte little-endian version, then BARE) unless noted.
"""

from __future__ import annotations

#: Actor snapshot (``Actor`` v4: input, hasInitialized, state as CBOR, scheduled events).
PERSIST = b"\x01"
#: Prefix of hibernatable connections: ``[2] + conn_id`` (``Conn`` v4).
CONN_PREFIX = b"\x02"
#: Inspector token (raw UTF-8).
INSPECTOR_TOKEN = b"\x03"
#: Prefix of the user KV: ``[4] + user_key`` (raw bytes).
USER_KV_PREFIX = b"\x04"
#: Queue metadata (``QueueMetadata`` v4).
QUEUE_METADATA = b"\x05\x01\x01"
#: Prefix of queue messages: ``[5,1,2] + u64 big-endian id`` (``QueueMessage`` v4).
QUEUE_MESSAGE_PREFIX = b"\x05\x01\x02"
#: Last pushed alarm (``optional<i64>``, version 1).
LAST_PUSHED_ALARM = b"\x06"
#: Reserved by RivetKit: workflow storage and traces.
WORKFLOW_PREFIX = b"\x06\x01"
TRACES_PREFIX = b"\x07\x01"
#: Ours: recurring schedules and their history (no place for them in RivetKit's layout).
RECURRING_PREFIX = b"\x08"
#: RivetKit's SQLite VFS pages (engine driver's ``c.db``, :mod:`rivetkit.drivers.engine.sqlkv`).
SQLITE_PREFIX = b"\x09"


def conn_key(conn_id: str) -> bytes:
    """KV key of a hibernatable connection."""
    return CONN_PREFIX + conn_id.encode()


def user_key(key: bytes) -> bytes:
    """KV key of a user KV entry."""
    return USER_KV_PREFIX + key
