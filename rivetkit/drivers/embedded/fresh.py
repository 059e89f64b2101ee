"""Actors whose KV is known to be empty: created by this driver and not written since.

A new actor's start reads its snapshot, alarm, inspector token, connections, queue and
schedules (five store trips, each a hop to the writer thread and back) and its trace
recorder lists its stored chunks before its first write: all of it empty for an actor
created a moment ago. :class:`FreshActors` remembers the actors the driver created until the
first write to their KV is *submitted*; until then their reads are answered here, empty,
without a store trip. Since the store runs operations in submission order, a read submitted
after a write sees it: forgetting the actor when the write is submitted (not when it commits)
keeps every read's answer what the store would have given.

One writer goes around the driver: ``rivetkit inspect token`` (and the tests' helper) inserts
an actor's inspector token with its own SQLite connection
(:func:`rivetkit.drivers.embedded.offline.kv_put_if_absent`), maybe before the actor's first
start. Reads that may see that key (:data:`OFFLINE_KEYS`) go to the store, except right after
the start of a new actor: the operation that counts its generation also reads those keys
(:meth:`FreshActors.started`), and the start's own read that follows is answered with what it
read, as if it had run at that point of the store's order (no write of this process can come
between: one would have made the actor not fresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rivetkit.runtime.keys import INSPECTOR_TOKEN

__all__ = ["MAX_FRESH", "OFFLINE_KEYS", "FreshActors"]

#: Actors remembered at most (the oldest is forgotten first: its reads go to the store
#: again, which is always right). A started actor is forgotten at its first save.
MAX_FRESH: Final = 10_000
#: The KV keys written from outside the driver (see the module docstring).
OFFLINE_KEYS: Final = (INSPECTOR_TOKEN,)


def _misses_offline_keys(low: bytes, high: bytes | None) -> bool:
    """No key of :data:`OFFLINE_KEYS` is in ``low <= key < high`` (``high`` None: no end)."""
    return not any(low <= key and (high is None or key < high) for key in OFFLINE_KEYS)


# (start, end) -> _misses_offline_keys(start, end), for bytes bounds; cleared past the limit.
_EMPTY_RANGES: dict[tuple[bytes, bytes | None], bool] = {}
_MAX_RANGES: Final = 256


class FreshActors:
    """The ids of actors created by this driver whose KV nothing has written yet."""

    __slots__ = ("ids", "limit")

    def __init__(self, limit: int = MAX_FRESH) -> None:
        #: actor id -> the values of :data:`OFFLINE_KEYS` read at its start (None: not read
        #: yet). Read it, don't write it, from outside: ``actor_id in fresh.ids`` is what
        #: ``actor_id in fresh`` answers, without a Python call (the driver's hot paths).
        self.ids: dict[str, list[bytes | None] | None] = {}
        self.limit = limit

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, actor_id: object) -> bool:
        return actor_id in self.ids

    def empty_get(self, actor_id: str, keys: Sequence[bytes]) -> bool:
        """True when reading ``keys`` of ``actor_id`` needs no store trip: all missing."""
        return actor_id in self.ids and not any(key in OFFLINE_KEYS for key in keys)

    def get(self, actor_id: str, keys: Sequence[bytes]) -> list[bytes | None] | None:
        """The values of ``keys`` of ``actor_id`` when known here (missing ones None), or
        None when the store must be asked. Keys are not checked (the caller does).

        What a start read of :data:`OFFLINE_KEYS` answers one read only (the start's own,
        which follows it on the loop with no store trip between): a later read of those
        keys goes to the store again."""
        ids = self.ids
        if actor_id not in ids:
            return None
        known = ids[actor_id]
        out: list[bytes | None] = []
        used = False
        for key in keys:
            if key in OFFLINE_KEYS:
                if known is None:
                    return None
                out.append(known[OFFLINE_KEYS.index(key)])
                used = True
            else:
                out.append(None)
        if used:
            ids[actor_id] = None
        return out

    def empty_range(self, actor_id: str, start: bytes, end: bytes | None) -> bool:
        """True when listing ``start <= key < end`` of ``actor_id`` needs no store trip."""
        if actor_id not in self.ids:
            return False
        if start.__class__ is bytes and (end is None or end.__class__ is bytes):
            # The runtime lists a few constant ranges (a start's connections, queue,
            # schedules, trace chunks): their answers are kept.
            known = _EMPTY_RANGES.get((start, end))
            if known is None:
                known = _EMPTY_RANGES[start, end] = _misses_offline_keys(start, end)
                if len(_EMPTY_RANGES) > _MAX_RANGES:
                    _EMPTY_RANGES.clear()
            return known
        return _misses_offline_keys(bytes(start), None if end is None else bytes(end))

    def created(self, actor_id: str) -> None:
        """``actor_id`` was just created (its creation committed): its KV is empty."""
        ids = self.ids
        ids[actor_id] = None
        if len(ids) > self.limit:
            del ids[next(iter(ids))]

    def started(self, actor_id: str, offline: list[bytes | None]) -> None:
        """The start of ``actor_id`` read ``offline`` (the values of :data:`OFFLINE_KEYS`,
        in order) in the operation that counted its generation. Ignored unless the actor is
        still fresh (a write submitted since then forgot it)."""
        ids = self.ids
        if actor_id in ids:
            ids[actor_id] = list(offline)

    def written(self, actor_id: str) -> None:
        """A write to the actor's KV (or its deletion) is being submitted."""
        self.ids.pop(actor_id, None)
