"""The in-memory index of an actor's queue (:mod:`rivetkit.runtime.queue`) and its loading.

The index maps each known message id to an :class:`IndexEntry` (its name, its stored bytes and
where it is in its life: ``PENDING``, ``READY``, ``IN_FLIGHT``, ``DELETING``), in id order. It
is read once when the actor starts (:func:`load_index`, with the queue-scan twin) and kept in
step with every write by the queue, so receiving never reads the disk.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

from rivetkit.errors import RivetError
from rivetkit.protocol.actor_persist import QUEUE_METADATA
from rivetkit.runtime import keys
from rivetkit.runtime.queuescan import message_id, peek_name, scan

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver

__all__ = ["DELETING", "IN_FLIGHT", "PENDING", "READY", "IndexEntry", "QueueOwner", "load_index"]

logger = logging.getLogger("rivetkit.actor")

#: Its write is not committed yet: invisible to receivers.
PENDING: Final = 0
#: Stored, waiting for a receiver.
READY: Final = 1
#: Received with ``completable=True``, not completed yet.
IN_FLIGHT: Final = 2
#: Its delete is being written.
DELETING: Final = 3

_END_OF_MESSAGES: Final = keys.QUEUE_MESSAGE_PREFIX[:-1] + b"\x03"


class QueueOwner(Protocol):
    """What the queue needs from its actor instance."""

    driver: Driver
    actor_id: str
    options: Any
    abort_event: asyncio.Event

    def queue_wait_changed(self, delta: int) -> None:
        """A receive started (+1) or stopped (-1) waiting; waits do not keep it awake."""
        ...


class IndexEntry:
    """One message of the index: its name, its stored bytes and its state."""

    __slots__ = ("encoded", "name", "state")

    def __init__(self, name: str, encoded: bytes, state: int) -> None:
        self.name = name
        self.encoded = encoded
        self.state = state


async def load_index(owner: QueueOwner) -> tuple[dict[int, IndexEntry], int]:
    """Read the metadata and every queued message of ``owner``'s actor.

    Returns the index (every stored message ``READY``, in id order) and the next id to give:
    past both the stored metadata's and the last stored message's. Unreadable metadata is
    rebuilt and unreadable messages are skipped, each logged, as RivetKit does.
    """
    (raw_meta,) = await owner.driver.kv_get(owner.actor_id, [keys.QUEUE_METADATA])
    entries = await owner.driver.kv_list(
        owner.actor_id, keys.QUEUE_MESSAGE_PREFIX, _END_OF_MESSAGES
    )
    if not entries and raw_meta is None:  # nothing stored (a new actor)
        return {}, 1
    try:
        found = scan(entries, None, len(entries), _identity)
        messages = {ident: IndexEntry(peek_name(value), value, READY) for ident, value in found}
    except RivetError:
        messages = _load_tolerant(owner.actor_id, entries)
    index = dict(sorted(messages.items()))
    stored_next = 1
    if raw_meta is not None:
        try:
            stored_next = QUEUE_METADATA.decode(raw_meta).next_id
        except RivetError:
            logger.warning("actor %s: unreadable queue metadata; rebuilt", owner.actor_id)
    last = next(reversed(index), 0)
    return index, max(stored_next, last + 1, 1)


def _load_tolerant(actor_id: str, entries: list[tuple[bytes, bytes]]) -> dict[int, IndexEntry]:
    """The messages of ``entries``, skipping (and logging) unreadable ones, as RivetKit."""
    messages: dict[int, IndexEntry] = {}
    for key, value in entries:
        try:
            ident = message_id(key)
            messages[ident] = IndexEntry(peek_name(value), value, READY)
        except RivetError as exc:
            logger.warning(
                "actor %s: skipping an unreadable queue entry %s: %s",
                actor_id,
                bytes(key).hex(),
                exc,
            )
    return messages


def _identity(value: bytes) -> bytes:
    return value
