"""The test harness's clock: real time plus an offset that tests move forward.

:class:`FakeClock` drives both clocks the runtime reads:

* the wall clock (epoch seconds) of schedules, alarms and timestamps: :meth:`FakeClock.wall`,
  handed to the runtime and the embedded driver;
* the event loop's clock (idle sleep, action and hook timeouts, grace periods, save
  intervals): the running loop's ``time`` is replaced, at the first :meth:`FakeClock.advance`,
  by the real loop time plus the offset.

Real time keeps flowing under both; :meth:`~FakeClock.advance` only jumps them forward, then
:meth:`~FakeClock.settle` runs what came due to completion. The loop's clock can be replaced
only on asyncio's own loop (``asyncio.BaseEventLoop``): under uvloop ``advance`` raises.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rivetkit.drivers.embedded import EmbeddedDriver
    from rivetkit.runtime.live_actors import Runtime

__all__ = ["FakeClock"]

#: Settling gives up after this many rounds (a loop that never goes quiet).
_MAX_ROUNDS: Final = 200
#: Rounds in a row without any change before the runtime counts as settled.
_QUIET_ROUNDS: Final = 2


def _noop(_conn: sqlite3.Connection) -> None:
    return None


class FakeClock:
    """Wall and loop time moved forward on demand (see the module docstring).

    :param wall: the underlying wall clock in epoch seconds (default ``time.time``).
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._base_wall = wall
        #: Seconds moved forward so far.
        self.offset = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_time: Callable[[], float] | None = None
        self._had_patch = False

    def wall(self) -> float:
        """The fake wall time, in epoch seconds."""
        return self._base_wall() + self.offset

    def loop_time(self) -> float:
        """The fake event-loop time (the running loop's real time plus the offset)."""
        if self._loop_time is not None:
            return self._loop_time() + self.offset
        return asyncio.get_running_loop().time()

    def install(self) -> None:
        """Make the running loop read its time from this clock (done by :meth:`advance`).

        Raises RuntimeError on a loop whose clock cannot be replaced (uvloop).
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            raise RuntimeError("this fake clock is already installed on another event loop")
        if not isinstance(loop, asyncio.BaseEventLoop):
            raise RuntimeError(
                f"advance() moves the event loop's clock, which {type(loop).__module__}."
                f"{type(loop).__qualname__} does not allow (uvloop); run the test on asyncio's "
                "default loop (no uvloop event loop policy) to use a fake clock"
            )
        self._had_patch = "time" in vars(loop)  # another fake clock, which we then stack on
        self._loop_time = loop.time
        self._loop = loop
        loop.time = self.loop_time  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Give the loop its own clock back (loop timers armed meanwhile fire late by the
        offset: call it once the runtime has stopped)."""
        loop, previous = self._loop, self._loop_time
        if loop is None or previous is None:
            return
        if self._had_patch:
            loop.time = previous  # type: ignore[method-assign]
        else:
            del loop.time
        self._loop = None
        self._loop_time = None

    async def advance(
        self,
        seconds: float,
        *,
        runtime: Runtime | None = None,
        driver: EmbeddedDriver | None = None,
    ) -> None:
        """Move both clocks ``seconds`` forward, then :meth:`settle` (``runtime``/``driver``)."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise TypeError(f"advance() takes seconds as a number, not {type(seconds).__name__}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"advance() moves time forward only: got {seconds!r} seconds")
        self.install()
        self.offset += float(seconds)
        await self.settle(runtime=runtime, driver=driver)

    async def settle(
        self, *, runtime: Runtime | None = None, driver: EmbeddedDriver | None = None
    ) -> None:
        """Run what is due until nothing changes: alarms due on the wall clock are fired and
        handled (``driver.poll_alarms()``), loop timers that came due run, the embedded
        store's writes commit; repeated until the loop, the store and the set of tasks and
        live actors stay the same for two rounds.

        Work that waits on time that has not come (``asyncio.sleep`` of real time, a
        schedule later than now) is left waiting, and so is work in other threads than the
        store's writer (SQL queries of ``c.db`` run in a thread pool).
        """
        loop = asyncio.get_running_loop()
        quiet = 0
        barriers = 0  # our own reads, left out of the store's read count
        for _ in range(_MAX_ROUNDS):
            before = _snapshot(runtime, driver, barriers)
            if driver is not None:
                await driver.poll_alarms()
            await _drain(loop)
            store = None if driver is None else driver.store
            if store is not None and store.is_open:
                await store.read(_noop)  # in order: every earlier operation has finished
                barriers += 1
                await _drain(loop)
            if _snapshot(runtime, driver, barriers) == before:
                quiet += 1
                if quiet >= _QUIET_ROUNDS:
                    return
            else:
                quiet = 0


async def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Yield to the loop until no callback is ready and no timer is due (bounded)."""
    for _ in range(1000):
        await asyncio.sleep(0)
        ready = getattr(loop, "_ready", None)
        scheduled = getattr(loop, "_scheduled", None)
        if ready is None or scheduled is None:  # not asyncio's loop: a fixed number of turns
            continue
        due = bool(scheduled) and scheduled[0].when() <= loop.time()
        if not ready and not due:
            return


def _snapshot(
    runtime: Runtime | None, driver: EmbeddedDriver | None, barriers: int
) -> tuple[Any, ...]:
    tasks = frozenset(id(task) for task in asyncio.all_tasks() if not task.done())
    instances = frozenset(() if runtime is None else runtime.instances)
    if driver is None:
        return (None, None, None, instances, tasks)
    store = driver.store
    return (store.transactions, store.write_ops, store.read_ops - barriers, instances, tasks)
