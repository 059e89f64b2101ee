"""Pure-Python twin of the action recorder (compiled twin: ``rivetkit._speedups._action_stats``).

:class:`ActionStats` counts the calls of each action of one actor name and, when ``timed``,
sorts their latencies into histogram buckets: the runtime calls :meth:`ActionStats.start`
before an action and :meth:`ActionStats.ok` after it (the metrics layer also calls ``ok`` for
a failed call of a known action: every call is timed; failures are counted apart). Buckets
are *not* cumulative here: bucket ``i`` counts latencies in ``(bounds[i-1], bounds[i]]``, the
last one (index ``len(bounds)``) those above every bound. Untimed, every call lands in that
last bucket and the sum stays 0, so the call count is always the sum of the buckets.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable

__all__ = ["ActionStats", "clock_kind"]

_perf = time.perf_counter


def clock_kind() -> str:
    """What :meth:`ActionStats.start` reads: ``"perf_counter"`` here (the compiled twin
    reads the TSC or the monotonic clock)."""
    return "perf_counter"


def _zero() -> float:
    return 0.0


class ActionStats:
    """Call counts and latency buckets per action name."""

    __slots__ = ("_bounds", "_first", "_rows", "_width", "ok", "start", "timed")

    def __init__(self, bounds: Iterable[float], timed: bool = True) -> None:
        self._bounds = tuple(float(b) for b in bounds)
        if not self._bounds:
            raise ValueError("at least one bucket bound is needed")
        self._first = self._bounds[0]
        #: True: :meth:`start` reads the clock and :meth:`ok` times the call.
        self.timed = bool(timed)
        self._width = len(self._bounds) + 1
        # action -> [bucket counts..., sum of latencies]
        self._rows: dict[str, list[float]] = {}
        # Attributes, not methods: no Python frame for the clock, no branch per call.
        #: The clock before a call (``time.perf_counter``; 0.0 when untimed).
        self.start: Callable[[], float] = _perf if self.timed else _zero
        #: ``ok(action, started)``: record one call of ``action`` that began at ``started``
        #: (from :attr:`start`).
        self.ok: Callable[[str, float], None] = self._timed if self.timed else self._counted

    def _row(self, action: str) -> list[float]:
        row: list[float] = [0] * (self._width + 1)
        self._rows[action] = row
        return row

    def _timed(self, action: str, started: float) -> None:
        elapsed = _perf() - started
        row = self._rows.get(action)
        if row is None:
            row = self._row(action)
        if elapsed <= self._first:
            row[0] += 1
        else:
            row[bisect_left(self._bounds, elapsed)] += 1
        row[-1] += elapsed

    def _counted(self, action: str, started: float) -> None:
        row = self._rows.get(action)
        if row is None:
            row = self._row(action)
        row[-2] += 1

    def names(self) -> list[str]:
        """The actions recorded so far."""
        return list(self._rows)

    def row(self, action: str) -> tuple[list[int], float] | None:
        """``(bucket counts, sum of latencies)`` of ``action``, or None if never recorded."""
        row = self._rows.get(action)
        if row is None:
            return None
        return [int(n) for n in row[:-1]], float(row[-1])
