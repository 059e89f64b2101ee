"""One timer for the alarms of every actor of the process.

Alarms live in a heap of ``(when_ms, actor_id, seq)``; each actor's live entry is the one
whose ``seq`` matches ``_live[actor_id]``, and older entries are skipped when they surface
(lazy deletion), so setting or clearing an alarm is O(log n) with no search. A single
``loop.call_at`` handle is armed for the earliest live entry and re-armed only when that
changes. Time comes from an injectable wall clock (epoch seconds); the loop delay is computed
from it, and capped so that a jump of the wall clock is noticed within :data:`MAX_DELAY`.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MAX_DELAY", "AlarmTimers"]

#: Longest loop delay armed at once, in seconds.
MAX_DELAY = 60.0


class AlarmTimers:
    """Alarm times by actor, firing ``on_due(actor_id, when_ms)`` when each is reached."""

    def __init__(self, clock: Callable[[], float], on_due: Callable[[str, int], Any]) -> None:
        self._clock = clock
        self._on_due = on_due
        self._heap: list[tuple[int, str, int]] = []
        # actor_id -> (seq, when_ms) of its live entry.
        self._live: dict[str, tuple[int, int]] = {}
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_when: int | None = None

    def __len__(self) -> int:
        return len(self._live)

    def get(self, actor_id: str) -> int | None:
        """The pending alarm of ``actor_id`` (epoch ms), or None."""
        entry = self._live.get(actor_id)
        return None if entry is None else entry[1]

    def next_due(self) -> int | None:
        """The earliest pending alarm (epoch ms), or None."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start arming timers on ``loop``."""
        self._loop = loop
        self._arm()

    def close(self) -> None:
        """Stop the timer; pending alarms stay in memory but no longer fire."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_when = None
        self._loop = None

    def load(self, entries: Iterable[tuple[str, int]]) -> None:
        """Set many alarms at once (at start), then arm the timer once."""
        for actor_id, when_ms in entries:
            self._put(actor_id, when_ms)
        self._arm()

    def set(self, actor_id: str, when_ms: int | None) -> None:
        """Set the alarm of ``actor_id`` to ``when_ms`` (epoch ms), or clear it with None."""
        if when_ms is None:
            if self._live.pop(actor_id, None) is not None:
                self._maybe_compact()
            # A timer armed for the cleared entry fires once, finds it stale and re-arms.
            return
        self._put(actor_id, when_ms)
        if self._armed_when is None or when_ms < self._armed_when:
            self._arm()

    def poll(self) -> list[Any]:
        """Fire every alarm due by the clock now, then re-arm (tests call this after moving
        a fake clock). Returns what ``on_due`` returned for each, in firing order."""
        now_ms = self._clock() * 1000.0
        heap = self._heap
        live = self._live
        due: list[tuple[str, int]] = []
        while heap and heap[0][0] <= now_ms:
            when_ms, actor_id, seq = heapq.heappop(heap)
            entry = live.get(actor_id)
            if entry is not None and entry[0] == seq:
                del live[actor_id]
                due.append((actor_id, when_ms))
        self._arm()
        return [self._on_due(actor_id, when_ms) for actor_id, when_ms in due]

    # -- internals -------------------------------------------------------------------------

    def _put(self, actor_id: str, when_ms: int) -> None:
        self._seq += 1
        self._live[actor_id] = (self._seq, when_ms)
        heapq.heappush(self._heap, (when_ms, actor_id, self._seq))
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        # Stale entries of alarms set again and again would otherwise pile up.
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [(when, aid, seq) for aid, (seq, when) in self._live.items()]
            heapq.heapify(self._heap)

    def _drop_stale(self) -> None:
        heap = self._heap
        live = self._live
        while heap:
            _, actor_id, seq = heap[0]
            entry = live.get(actor_id)
            if entry is not None and entry[0] == seq:
                return
            heapq.heappop(heap)

    def _arm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._drop_stale()
        if not self._heap:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            self._armed_when = None
            return
        when_ms = self._heap[0][0]
        if self._handle is not None:
            if self._armed_when == when_ms:
                return
            self._handle.cancel()
        delay = min(max(when_ms / 1000.0 - self._clock(), 0.0), MAX_DELAY)
        self._handle = loop.call_at(loop.time() + delay, self._on_timer)
        self._armed_when = when_ms

    def _on_timer(self) -> None:
        self._handle = None
        self._armed_when = None
        self.poll()
