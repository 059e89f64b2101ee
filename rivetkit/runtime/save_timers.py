"""One loop timer for the throttled state saves of every actor on an event loop.

Each actor with changed state has a save due ``state_save_interval`` after its last one: with
many actors that is one timer per save. :class:`SaveTimers` keeps them in one heap of
``[when, seq, callback]`` lists (compared in C, unlike asyncio's ``TimerHandle``) under a
single ``loop.call_at`` for the earliest, and runs every entry due when it fires (those due
within the loop's clock resolution too, as asyncio does), in the order they were scheduled for
equal times. A cancelled entry stays in the heap, inert, until its time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["SaveTimer", "SaveTimers"]

#: One scheduled call: ``[when, seq, callback]``; ``callback`` is None once cancelled.
SaveTimer = list[Any]

_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SaveTimers] = (
    weakref.WeakKeyDictionary()
)


class SaveTimers:
    """The save timers of one event loop (get them with :meth:`of`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the registry maps the loop to this object, which must not keep it alive.
        self._loop_ref = weakref.ref(loop)
        self._heap: list[SaveTimer] = []
        self._seq = itertools.count()
        # Weak too: a TimerHandle holds its loop.
        self._handle: weakref.ref[asyncio.TimerHandle] | None = None
        self._armed_at = float("inf")
        # asyncio runs timers due within its clock resolution; uvloop's clock is in ms.
        self._resolution: float = getattr(loop, "_clock_resolution", 0.001)

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> SaveTimers:
        """The timers of ``loop`` (created on first use)."""
        timers = _BY_LOOP.get(loop)
        if timers is None:
            timers = _BY_LOOP[loop] = cls(loop)
        return timers

    def call_later(self, delay: float, callback: Callable[[], None]) -> SaveTimer:
        """Run ``callback()`` on the loop ``delay`` seconds from now (at once if ``delay`` is
        not positive: at the next turn of the loop)."""
        loop = self._loop_ref()
        if loop is None:
            raise RuntimeError("the event loop of these save timers is gone")
        when = loop.time() + delay
        entry: SaveTimer = [when, next(self._seq), callback]
        heapq.heappush(self._heap, entry)
        if when < self._armed_at:
            self._arm(loop, when)
        return entry

    @staticmethod
    def cancel(entry: SaveTimer) -> None:
        """Drop a scheduled call (nothing if it already ran)."""
        entry[2] = None

    def __len__(self) -> int:
        """Entries in the heap, cancelled ones included."""
        return len(self._heap)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        handle = self._handle() if self._handle is not None else None
        if handle is not None:
            handle.cancel()
        self._armed_at = when
        self._handle = weakref.ref(loop.call_at(when, self._fire))

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = float("inf")
        loop = self._loop_ref()
        if loop is None:
            return
        heap = self._heap
        end = loop.time() + self._resolution
        due: list[Callable[[], None]] = []
        while heap and heap[0][0] <= end:
            callback = heapq.heappop(heap)[2]
            if callback is not None:
                due.append(callback)
        if heap:
            self._arm(loop, heap[0][0])
        for callback in due:
            try:
                callback()
            except Exception as exc:  # as the loop would: report it, run the others
                loop.call_exception_handler(
                    {"message": "a save timer callback failed", "exception": exc}
                )
