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
start of this process.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Final

__all__ = ["MAX_ACTORS", "LifecycleTimes"]

#: Most actors whose moments are kept; beyond, the longest-asleep are forgotten (then
#: reported as not run in this process).
MAX_ACTORS: Final = 100_000


class LifecycleTimes:
    """The lifecycle moments of the actors of one runtime (see the module docstring)."""

    __slots__ = ("_clock", "_since", "_times")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        #: When this process started keeping times (ms): the sleep time of an actor not
        #: seen running here.
        self._since = self._now()
        # actor id -> [start_ts, connectable_ts, sleep_ts]
        self._times: dict[str, list[int | None]] = {}

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def starting(self, actor_id: str) -> None:
        """The actor is being started (not connectable yet, not asleep)."""
        times = self._times.get(actor_id)
        if times is None:
            self._times[actor_id] = [None, None, None]
        else:
            times[1] = None
            times[2] = None

    def started(self, actor_id: str) -> None:
        """The actor is ready for requests (its start finished)."""
        now = self._now()
        times = self._times.get(actor_id)
        if times is None:
            self._times[actor_id] = [now, now, None]
        else:
            if times[0] is None:
                times[0] = now
            times[1] = now
            times[2] = None

    def stopping(self, actor_id: str) -> None:
        """The actor began to stop: no longer connectable."""
        times = self._times.get(actor_id)
        if times is not None:
            times[1] = None

    def stopped(self, actor_id: str) -> None:
        """The actor stopped (asleep, or destroyed: then :meth:`forget` follows)."""
        now = self._now()
        all_times = self._times
        times = all_times.pop(actor_id, None)  # re-inserted last: the newest sleeper
        all_times[actor_id] = [None if times is None else times[0], None, now]
        if len(all_times) > MAX_ACTORS:
            self._evict()

    def _evict(self) -> None:
        # The oldest sleepers go first (running actors are skipped): they are reported
        # asleep since this process started from then on.
        all_times = self._times
        for actor_id in list(itertools.islice(all_times, 64)):
            if all_times[actor_id][1] is None:
                del all_times[actor_id]
                return

    def forget(self, actor_id: str) -> None:
        """The actor was destroyed: nothing more to report but its ``destroy_ts``."""
        self._times.pop(actor_id, None)

    def fields(self, actor_id: str, create_ts: int, destroy_ts: int | None) -> dict[str, Any]:
        """``start_ts``, ``connectable_ts``, ``sleep_ts`` and ``pending_allocation_ts`` of
        the actor, as the engine's actor JSON has them."""
        times = self._times.get(actor_id)
        if destroy_ts is not None:
            start = None if times is None else times[0]
            return {
                "start_ts": start,
                "pending_allocation_ts": None,
                "connectable_ts": None,
                "sleep_ts": None,
            }
        if times is None:  # not run in this process: asleep (a request wakes it)
            return {
                "start_ts": None,
                "pending_allocation_ts": None,
                "connectable_ts": None,
                "sleep_ts": max(create_ts, self._since),
            }
        return {
            "start_ts": times[0],
            "pending_allocation_ts": None,
            "connectable_ts": times[1],
            "sleep_ts": times[2],
        }
