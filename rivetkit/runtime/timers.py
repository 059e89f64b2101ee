"""Timer bookkeeping: the selected twin of :class:`TimerQueue` (see ``_timers_py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.runtime._timers_py import TimerQueue
else:
    TimerQueue = _twins.load("_timers", "rivetkit.runtime._timers_py").TimerQueue

__all__ = ["TimerQueue"]
