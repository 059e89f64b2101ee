"""When each actor of this process started, became connectable and went to sleep.

The manager API of embedded mode (``GET /actors``) reports these moments the way the Rivet
Engine does (read from engine 2.3.19's ``GET /actors`` answers):

* ``start_ts``: the first start (a wake does not move it);
* ``connectable_ts``: the latest moment the actor became ready for requests, None while it
  is not running (starting, stopping, asleep, destroyed);
* ``sleep_ts``: the moment it went to sleep, None while it runs (and once destroyed);
* ``pending_allocation_ts``: None (embedded mode places an actor at once).

All in milliseconds since the epoch. :class:`LifecycleTimes` keeps them in memory, per actor
this process started (at most :data:`MAX_ACTORS`: the longest-asleep are forgotten first); an
actor that has not run in this process (it slept before a restart, or was created and not
woken yet), or was forgotten, is reported asleep since the later of its creation and the
start of this process. Sleeping actors with ids of the drivers' shape are kept in a
:class:`~rivetkit.runtime.sleeper_table.SleeperTable` (no object per sleeper), the others
in a dict.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Final

from rivetkit.runtime.sleeper_table import SleeperTable, pack_id

__all__ = ["MAX_ACTORS", "LifecycleTimes"]

#: Most actors whose moments are kept; beyond, the longest-asleep are forgotten (then
#: reported as not run in this process).
MAX_ACTORS: Final = 100_000

# A sleeping actor's moments are one int, not a list (the most common entry by far in a
# process holding many actors: ~32 B instead of ~150 B): bits 0-41 hold sleep_ts, the bits
# above start_ts + 1 (0: None). Moments outside 0..2**42 ms (year 2109) stay a tuple.
_BITS: Final = 42
_LIMIT: Final = 1 << _BITS
_MASK: Final = _LIMIT - 1
_U64: Final = 1 << 64

# A running (starting, stopping) actor's moments are one negative int too, not a list (one
# per live actor: ~40 B instead of ~120 B): ~(bits 0-41: connectable_ts + 1, bits above:
# start_ts + 1; 0: None). Moments outside 0..2**42 ms stay a [start_ts, connectable_ts,
# None] list.
# One actor's entry: a negative int (or that list) while it runs or stops, a non-negative
# packed int (or a (start_ts, sleep_ts) tuple) once it sleeps.
_Entry = list[int | None] | int | tuple[int | None, int]


def _asleep(start: int | None, sleep: int) -> int | tuple[int | None, int]:
    if 0 <= sleep < _LIMIT and (start is None or 0 <= start < _MASK):
        return (0 if start is None else start + 1) << _BITS | sleep
    return (start, sleep)


def _running(start: int | None, connectable: int | None) -> _Entry:
    """The entry of a running actor (``sleep_ts`` None)."""
    if (start is None or 0 <= start < _MASK) and (connectable is None or 0 <= connectable < _MASK):
        packed = (0 if start is None else start + 1) << _BITS
        return ~(packed | (0 if connectable is None else connectable + 1))
    return [start, connectable, None]


def _unpack(entry: _Entry) -> tuple[int | None, int | None, int | None]:
    """``(start_ts, connectable_ts, sleep_ts)`` of an entry."""
    if isinstance(entry, int):
        if entry < 0:
            packed = ~entry
            start, connectable = packed >> _BITS, packed & _MASK
            return (start - 1 if start else None), (connectable - 1 if connectable else None), None
        start = entry >> _BITS
        return (start - 1 if start else None), None, entry & _MASK
    if isinstance(entry, tuple):
        return entry[0], None, entry[1]
    return entry[0], entry[1], entry[2]


class LifecycleTimes:
    """The lifecycle moments of the actors of one runtime (see the module docstring)."""

    __slots__ = ("_clock", "_since", "_sleepers", "_times")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        #: When this process started keeping times (ms): the sleep time of an actor not
        #: seen running here.
        self._since = self._now()
        self._times: dict[str, _Entry] = {}  # actor id -> its moments (see _Entry)
        self._sleepers = SleeperTable()  # sleepers whose id packs (pack_id), not in _times

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _start(self, actor_id: str) -> tuple[bool, int | None]:
        """``(known, start_ts)`` of the actor (a sleeper leaves the table: the caller stores
        its running entry in ``_times``)."""
        entry = self._times.get(actor_id)
        if entry is not None:
            return True, _unpack(entry)[0]
        key = pack_id(actor_id)
        moments = None if key is None else self._sleepers.pop(key)
        if moments is None:
            return False, None
        return True, moments[0]

    def starting(self, actor_id: str) -> None:
        """The actor is being started (not connectable yet, not asleep)."""
        if actor_id not in self._times:  # _start inline: a sleeper, or new here
            key = pack_id(actor_id)
            moments = None if key is None else self._sleepers.pop(key)
            if moments is None:
                self._times[actor_id] = -1  # _running(None, None)
                return
            self._times[actor_id] = _running(moments[0], None)
            return
        self._times[actor_id] = _running(self._start(actor_id)[1], None)

    def started(self, actor_id: str) -> None:
        """The actor is ready for requests (its start finished)."""
        now = int(self._clock() * 1000)
        entry = self._times.get(actor_id)
        if type(entry) is int and entry < 0 and 0 <= now < _MASK:
            # The packed entry of :meth:`starting` (_unpack and _running, inline).
            start_bits = ~entry & ~_MASK
            self._times[actor_id] = ~((start_bits or (now + 1) << _BITS) | (now + 1))
            return
        start = self._start(actor_id)[1]
        self._times[actor_id] = _running(now if start is None else start, now)

    def stopping(self, actor_id: str) -> None:
        """The actor began to stop: no longer connectable."""
        entry = self._times.get(actor_id)
        if type(entry) is int and entry < 0:  # packed: its connectable_ts goes (inline)
            self._times[actor_id] = ~(~entry & ~_MASK)
            return
        known, start = self._start(actor_id)
        if known:
            self._times[actor_id] = _running(start, None)

    def stopped(self, actor_id: str) -> None:
        """The actor stopped (asleep, or destroyed: then :meth:`forget` follows)."""
        now = int(self._clock() * 1000)  # _now(), inline
        all_times = self._times
        sleepers = self._sleepers
        key = pack_id(actor_id)
        entry = all_times.pop(actor_id, None)  # re-inserted last: the newest sleeper
        start: int | None
        if type(entry) is int and entry < 0:  # packed, running (_unpack inline)
            start = (~entry >> _BITS) - 1
            if start < 0:
                start = None
        elif entry is not None:
            start = _unpack(entry)[0]
        else:
            moments = None if key is None else sleepers.pop(key)
            start = None if moments is None else moments[0]
        # (SleeperTable.fits inline)
        if key is not None and 0 <= now < _U64 and (start is None or 0 <= start < _U64 - 1):
            # Absent from the table: an id is either there or in _times, and popped above.
            sleepers.append(key, start, now)
        else:
            all_times[actor_id] = _asleep(start, now)
        if len(all_times) + sleepers._live > MAX_ACTORS:  # (len(sleepers), no __len__ frame)
            self._evict()

    def _evict(self) -> None:
        # The oldest sleepers go first (running actors are skipped): they are reported
        # asleep since this process started from then on.
        all_times = self._times
        in_dict: tuple[str, int | None] | None = None
        for actor_id in list(itertools.islice(all_times, 64)):
            _, connectable, sleep = _unpack(all_times[actor_id])
            if connectable is None:
                in_dict = actor_id, sleep
                break
        oldest = self._sleepers.oldest()
        if oldest is not None and (
            in_dict is None or (in_dict[1] is not None and oldest[1] <= in_dict[1])
        ):
            self._sleepers.pop(oldest[0])
        elif in_dict is not None:
            del all_times[in_dict[0]]

    def forget(self, actor_id: str) -> None:
        """The actor was destroyed: nothing more to report but its ``destroy_ts``."""
        self._times.pop(actor_id, None)
        key = pack_id(actor_id)
        if key is not None:
            self._sleepers.pop(key)

    def fields(self, actor_id: str, create_ts: int, destroy_ts: int | None) -> dict[str, Any]:
        """``start_ts``, ``connectable_ts``, ``sleep_ts`` and ``pending_allocation_ts`` of
        the actor, as the engine's actor JSON has them."""
        entry = self._times.get(actor_id)
        if entry is None:
            key = pack_id(actor_id)
            moments = None if key is None else self._sleepers.get(key)
            if moments is not None:
                entry = _asleep(*moments)
        if destroy_ts is not None:
            start = None if entry is None else _unpack(entry)[0]
            return {
                "start_ts": start,
                "pending_allocation_ts": None,
                "connectable_ts": None,
                "sleep_ts": None,
            }
        if entry is None:  # not run in this process: asleep (a request wakes it)
            return {
                "start_ts": None,
                "pending_allocation_ts": None,
                "connectable_ts": None,
                "sleep_ts": max(create_ts, self._since),
            }
        start, connectable, sleep = _unpack(entry)
        return {
            "start_ts": start,
            "pending_allocation_ts": None,
            "connectable_ts": connectable,
            "sleep_ts": sleep,
        }
