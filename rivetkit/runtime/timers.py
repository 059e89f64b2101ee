"""Timer bookkeeping: the selected twin of :class:`TimerQueue` (see ``_timers_py``), and
:class:`SleepTimers`, the idle timers of every actor of a process on one loop timer."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.runtime._timers_py import TimerQueue
else:
    TimerQueue = _twins.load("_timers", "rivetkit.runtime._timers_py").TimerQueue

__all__ = ["TOLERANCE", "SleepTimers", "TimerQueue"]

logger = logging.getLogger("rivetkit.runtime")

#: Deadlines this close (seconds) are due: the loop may run a timer a hair early, and a
#: re-arm for a deadline a microsecond away would only spin.
TOLERANCE = 0.001


class SleepTimers:
    """Idle deadlines (event-loop time) by key, for all actors of a process.

    One :class:`TimerQueue` holds the deadlines and one ``loop.call_at`` handle is armed at
    the earliest of them; it is re-armed only when an earlier deadline arrives, so arming is
    a heap push and a compare. Cancelling only forgets the key: the loop timer may still
    fire, finds nothing due and re-arms for what is left. When the timer fires, every key
    whose deadline has passed is removed and ``on_due(key)`` is called for it (in deadline
    order); the callee re-checks whatever it needs and may arm again.

    The keys are actor ids (strings), so a stale heap entry never keeps an actor's
    instance alive.
    """

    __slots__ = ("_armed_at", "_handle", "_loop", "_on_due", "_queue")

    def __init__(
        self,
        on_due: Callable[[Hashable], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._queue = TimerQueue()
        self._on_due = on_due
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def now(self) -> float:
        """The event loop's time (the clock of the deadlines)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def horizon(self) -> float:
        """Deadlines up to this time count as reached."""
        return self.now() + TOLERANCE

    def arm(self, key: Hashable, when: float) -> None:
        """Set ``key``'s deadline to ``when`` (loop time), replacing any other."""
        self._queue.arm(key, when)
        if when < self._armed_at:
            self._set_handle(when)

    def cancel(self, key: Hashable) -> bool:
        """Forget ``key``'s deadline; True when it had one."""
        found = self._queue.cancel(key)
        if found and not len(self._queue) and self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed_at = math.inf
        return found

    def deadline(self, key: Hashable) -> float | None:
        """``key``'s deadline, or None."""
        return self._queue.deadline(key)

    def close(self) -> None:
        """Cancel the loop timer; the deadlines are kept but no longer fire."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = math.inf

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, key: object) -> bool:
        return key in self._queue

    # -- internals -------------------------------------------------------------------------

    def _set_handle(self, when: float) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(when, self._fire)
        self._armed_at = when

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        queue = self._queue
        due = queue.pop_due(self.horizon())
        following = queue.next_deadline()
        if following is not None:
            self._set_handle(following)
        on_due = self._on_due
        for key in due:
            try:
                on_due(key)
            except Exception:
                logger.exception("an idle timer callback failed for %r", key)
