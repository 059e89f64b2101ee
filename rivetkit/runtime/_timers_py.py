"""Pure-Python twin of the timer bookkeeping (compiled twin: ``rivetkit._speedups._timers``).

:class:`TimerQueue` holds one deadline per key for all actors of a process (idle timers,
throttled saves, alarms). Re-arming or cancelling is O(1) amortised: the heap keeps stale
entries and skips them lazily, and is rebuilt when stale entries outnumber live ones (after
an arm, a cancel or a pop), so it never holds more than about twice the live keys: keys that
left (actors gone to sleep) are not kept alive by it. The owner keeps a single event-loop
timer armed at :meth:`next_deadline` and calls :meth:`pop_due` when it fires.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable


class TimerQueue:
    """Deadlines by key; the earliest first."""

    __slots__ = ("_deadlines", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._deadlines: dict[Hashable, tuple[float, int]] = {}
        self._seq = 0

    def arm(self, key: Hashable, when: float) -> None:
        """Set ``key``'s deadline to ``when`` (replacing any earlier one)."""
        self._seq += 1
        self._deadlines[key] = (when, self._seq)
        heapq.heappush(self._heap, (when, self._seq, key))
        self._maybe_compact()

    def cancel(self, key: Hashable) -> bool:
        """Forget ``key``'s deadline; True when it had one."""
        if self._deadlines.pop(key, None) is None:
            return False
        self._maybe_compact()
        return True

    def deadline(self, key: Hashable) -> float | None:
        """``key``'s deadline, or None."""
        entry = self._deadlines.get(key)
        return None if entry is None else entry[0]

    def next_deadline(self) -> float | None:
        """The earliest deadline, or None when empty."""
        heap = self._heap
        deadlines = self._deadlines
        while heap:
            when, seq, key = heap[0]
            entry = deadlines.get(key)
            if entry is not None and entry[1] == seq:
                return when
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> list[Hashable]:
        """Remove and return the keys whose deadline is ``<= now``, earliest first."""
        heap = self._heap
        deadlines = self._deadlines
        due: list[Hashable] = []
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = deadlines.get(key)
            if entry is not None and entry[1] == seq:
                del deadlines[key]
                due.append(key)
        if due:
            self._maybe_compact()
        return due

    def _maybe_compact(self) -> None:
        heap = self._heap
        live = len(self._deadlines)
        if not live:
            # Fresh containers: a dict never shrinks, and keys must not outlive their use.
            self._heap = []
            self._deadlines = {}
        elif len(heap) > 64 and len(heap) > 2 * live:
            self._compact()

    def _compact(self) -> None:
        self._deadlines = dict(self._deadlines)  # sized for what is left
        self._heap = [(when, seq, key) for key, (when, seq) in self._deadlines.items()]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._deadlines)

    def __contains__(self, key: object) -> bool:
        return key in self._deadlines
