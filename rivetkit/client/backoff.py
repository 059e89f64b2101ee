"""Exponential backoff and deadlines, with an injectable clock for tests.

The TypeScript client retries with p-retry (factor 2, no jitter): ``GET /metadata`` from
500 ms up to 15 s between attempts, the connection's (re)connect loop from 250 ms up to 30 s.
:class:`Backoff` gives the same sequence; :class:`Deadline` bounds a retry loop in time,
which the TypeScript client does not do for the metadata lookup (it retries forever).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = [
    "CONNECT_BACKOFF",
    "METADATA_BACKOFF",
    "Backoff",
    "Clock",
    "Deadline",
]

#: A monotonic clock in seconds.
Clock = Callable[[], float]

#: ``(initial, maximum)`` delays of the metadata lookup, in seconds.
METADATA_BACKOFF: Final = (0.5, 15.0)
#: ``(initial, maximum)`` delays of the connection's (re)connect loop, in seconds.
CONNECT_BACKOFF: Final = (0.25, 30.0)


class Backoff:
    """Delays ``initial``, ``initial * factor``, ... capped at ``maximum`` (seconds).

    ``next_delay()`` returns the delay before the next attempt and advances; ``reset()``
    starts over (after a success).
    """

    __slots__ = ("_attempt", "factor", "initial", "maximum")

    def __init__(self, initial: float, maximum: float, *, factor: float = 2.0) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def peek(self) -> float:
        """The delay ``next_delay()`` would return, without advancing."""
        # Capped before multiplying on, so the exponent never overflows a float.
        delay = self.initial
        for _ in range(self._attempt):
            delay *= self.factor
            if delay >= self.maximum:
                return self.maximum
        return min(delay, self.maximum)

    def next_delay(self) -> float:
        """The delay before the next attempt; advances the sequence."""
        delay = self.peek()
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``initial``."""
        self._attempt = 0


class Deadline:
    """A point ``timeout`` seconds after creation on ``clock``; ``None`` never expires."""

    __slots__ = ("_at", "_clock")

    def __init__(self, timeout: float | None, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._at = None if timeout is None else clock() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline."""
        if self._at is None:
            return None
        return max(0.0, self._at - self._clock())

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def allows(self, delay: float) -> bool:
        """True when sleeping ``delay`` seconds still ends before the deadline."""
        remaining = self.remaining()
        return remaining is None or delay < remaining
