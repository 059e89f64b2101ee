"""What keeps one actor awake, and when it may go to sleep.

:class:`SleepPolicy` counts the activity of an
:class:`~rivetkit.runtime.instance.ActorInstance` that keeps it awake (in-flight actions and
requests, ``keep_awake``, ``on_disconnect`` callbacks, queue waits of ``run``), tracks its
shutdown work (``wait_until``), and arms the idle timer: one lazy entry in the process-wide
:class:`~rivetkit.runtime.timers.SleepTimers`, re-checked when due (seed lesson 8). A shutdown
waits on it for quiet (:meth:`SleepPolicy.wait_for_quiet`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from rivetkit.runtime.lazy_event import LazyEvent
from rivetkit.runtime.phase import Phase
from rivetkit.runtime.timers import TOLERANCE, SleepTimers

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["SleepPolicy"]

T = TypeVar("T")
_actor_log = logging.getLogger("rivetkit.actor")


class SleepPolicy:
    """The idle/sleep policy of one actor: its activity counters, shutdown work and idle timer."""

    __slots__ = (
        "__weakref__",
        "_idle_deadline",
        "_idle_pending",
        "_loop",
        "_owner",
        "_quiet",
        "_timers",
        "background",
        "inflight",
        "keep_awake_count",
        "pending_disconnects",
        "queue_waiting",
    )

    def __init__(self, owner: ActorInstance, sleep_timers: SleepTimers | None = None) -> None:
        self._owner = owner
        self._loop = owner._loop
        #: In-flight actions, requests and connection preflights.
        self.inflight = 0
        #: ``keep_awake`` awaitables still running.
        self.keep_awake_count = 0
        #: Queue receives waiting (such waits do not keep the actor awake).
        self.queue_waiting = 0
        #: ``on_disconnect`` callbacks still running.
        self.pending_disconnects = 0
        #: Shutdown work of ``wait_until`` (made on first use).
        self.background: set[asyncio.Task[Any]] | None = None
        # Set by changed() while a shutdown waits for quiet (made by wait_for_quiet, which
        # clears it before each wait: a change with no one waiting needs no event).
        self._quiet: asyncio.Event | None = None
        # Idle timer: one entry (key: the actor id) in the process-wide SleepTimers, armed
        # lazily; see reset_idle.
        self._timers = (
            sleep_timers
            if sleep_timers is not None
            else SleepTimers(lambda _key: self.idle_expired(), self._loop)
        )
        self._idle_pending = False  # an entry is armed in _timers
        self._idle_deadline = 0.0  # loop time from which the actor may sleep

    def track(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``awaitable`` as shutdown work: shutdown waits for it within the grace
        period and cancels what is left; failures are logged."""
        task = asyncio.ensure_future(awaitable)
        background = self.background
        if background is None:
            background = self.background = set()
        background.add(task)

        def done(finished: asyncio.Future[Any]) -> None:
            background.discard(task)
            if not finished.cancelled() and finished.exception() is not None:
                self._owner.log.error("wait_until task failed", exc_info=finished.exception())
            self.changed()

        task.add_done_callback(done)
        return task

    def cancel_background(self) -> None:
        """Cancel the shutdown work still running (the grace period is over)."""
        for task in list(self.background or ()):
            task.cancel()

    async def keep_awake(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` while holding the actor awake (idle sleep and the end of a
        shutdown's grace wait both wait for it)."""
        self.keep_awake_count += 1  # the idle timer re-checks can_sleep when due
        try:
            return await awaitable
        finally:
            self.keep_awake_count -= 1
            self.changed()
            self.reset_idle()

    def can_sleep(self) -> bool:
        """True when nothing keeps the actor awake (RivetKit's ``can_sleep`` checks, in its
        order): started; not ``no_sleep``; no in-flight request, action or connection
        preflight; no ``keep_awake``; ``run`` finished or blocked in a queue wait; no open
        connection, hibernatable ones included (RivetKit 2.3.19: ``ActiveConnections``); no
        ``on_disconnect`` still running. Raw WebSocket handlers count as requests while
        they run; the inspector's socket is no connection and does not count.

        An actor with an open connection therefore sleeps only when the actor asks for it
        (``c.sleep()``), which hibernates its hibernatable connections."""
        owner = self._owner
        run_task = owner._run_task
        return (
            owner.phase == Phase.STARTED
            and not owner.options.no_sleep
            and self.inflight == 0
            and self.keep_awake_count == 0
            and (run_task is None or run_task.done() or self.queue_waiting > 0)
            and not owner.conns
            and self.pending_disconnects == 0
        )

    def reset_idle(self) -> None:
        """Push the idle deadline to ``sleep_timeout`` from now, if the actor can sleep.

        Cheap enough for every action: the deadline is a float kept here, and the shared
        :class:`~rivetkit.runtime.timers.SleepTimers` gets an entry only when none is
        pending. When that entry comes due, :meth:`idle_expired` re-checks
        :meth:`can_sleep` (so a timer armed before a request started can never put the actor
        to sleep during it, seed lesson 8) and re-arms for the latest deadline if it moved.
        """
        if self.can_sleep():
            deadline = self._loop.time() + self._owner.options.sleep_timeout
            self._idle_deadline = deadline
            if not self._idle_pending:
                self._idle_pending = True
                self._timers.arm(self._owner.actor_id, deadline)

    def cancel_idle(self) -> None:
        """Disarm the idle timer."""
        if self._idle_pending:
            self._idle_pending = False
            self._timers.cancel(self._owner.actor_id)

    def idle_expired(self) -> None:
        """The idle entry came due (called by the runtime's SleepTimers)."""
        if not self._idle_pending:
            return  # cancelled meanwhile
        self._idle_pending = False
        if not self.can_sleep():
            return  # whatever keeps it awake re-arms the timer when it ends
        owner = self._owner
        deadline = self._idle_deadline
        # The timers' horizon() inline: they run on this loop (the runtime's, or our own).
        if deadline > self._loop.time() + TOLERANCE:
            self._idle_pending = True
            self._timers.arm(owner.actor_id, deadline)
            return
        if _actor_log.isEnabledFor(logging.DEBUG):  # owner.log is made on first use
            owner.log.debug("idle for %g s: going to sleep", owner.options.sleep_timeout)
        owner.request_sleep()

    def changed(self) -> None:
        """Something that keeps the actor awake ended: a shutdown waiting for quiet looks
        again."""
        quiet = self._quiet
        if quiet is not None:
            quiet.set()

    def activity_changed(self) -> None:
        """Something that keeps the actor awake started or ended (connections, requests)."""
        self.changed()
        self.reset_idle()

    def end_request(self) -> None:
        """A request (or connection preflight) counted in :attr:`inflight` ended."""
        self.inflight -= 1
        if self.inflight == 0:  # activity_changed(), inline
            quiet = self._quiet
            if quiet is not None:
                quiet.set()
            self.reset_idle()

    async def wait_for_quiet(self, deadline: float, *, wait_for_run: bool) -> None:
        """Wait, until the loop time ``deadline``, for in-flight work, ``keep_awake``,
        ``wait_until`` tasks, ``on_disconnect`` callbacks and (``wait_for_run``) ``run``."""
        owner = self._owner
        changed = self._quiet
        while True:
            run_task = owner._run_task
            running = wait_for_run and run_task is not None and not run_task.done()
            busy = (
                self.inflight
                or self.keep_awake_count
                or self.background
                or self.pending_disconnects
                or running
            )
            if not busy:
                return
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                owner.log.warning("shutdown grace period ran out; cutting remaining work")
                return
            if changed is None:  # made only when there is something to wait for
                changed = self._quiet = LazyEvent()
            changed.clear()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(changed.wait())]
            if running:
                assert run_task is not None
                waits.append(run_task)
            waits.extend(self.background or ())
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            waits[0].cancel()
