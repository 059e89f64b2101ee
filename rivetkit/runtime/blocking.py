"""Blocking actions (``@a.action(blocking=True)``) and the slow sync action warning.

A blocking action is a sync function run in a worker thread, so the event loop (and every
other actor of the process) keeps serving while it blocks. Its own actor is held meanwhile:
the actor's :class:`BlockingGate` lets no other action, scheduled action, connection message,
connection opening, hook (``ActorInstance._call``, ``ActorConns``) or throttled state save
(``StatePersistence``) of that actor start until the thread returns, and the thread starts
only once the actions already in flight on that actor have finished. So the actor's state is
never touched by the thread and the event loop at the same time (raw ``on_request`` and
``on_websocket`` handlers and ``run`` are not held).

* The threads come from one bounded pool per process (:func:`worker_pool`,
  ``min(32, cpus + 4)`` threads, named ``rivetkit-blocking``), not the loop's default
  executor: a blocking action that outlives its timeout must not starve
  ``asyncio.to_thread`` or DNS lookups of the process. An actor uses at most one of its
  threads at a time; more actors blocking at once than threads wait for a free one.
* The action's timeout (``ActorOptions.action_timeout``) answers the caller with
  ``actor/action_timed_out`` as for any action; a thread cannot be stopped, so the actor
  stays held (and awake) until the function returns. What it changed after that is saved.
* Stop (sleep or destroy) waits for the thread within the grace period (it counts as
  in-flight work, and ``on_sleep``/``on_destroy`` wait for it within their deadline).
  When the grace period ends first, the hook times out, the state is saved as it is and the
  actor stops; the thread runs to its end in the pool and what it changes after the final
  save is lost.

A sync action *without* the flag runs on the event loop. When one holds the loop longer than
``ActorOptions.slow_sync_action_warning`` (0.1 s; None: off) the action table reports it and
:func:`slow_action_reporter` logs a warning naming the actor and the action, once per action
per process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from rivetkit.errors import actor_error
from rivetkit.runtime._dispatch_py import bad_arguments

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "BlockingGate",
    "gate_for",
    "slow_action_reporter",
    "table_actions",
    "threaded",
    "worker_pool",
]

log = logging.getLogger("rivetkit.blocking")

#: The gates the current task is inside (one entry per action in progress on its call path).
_INSIDE: contextvars.ContextVar[tuple[BlockingGate, ...]] = contextvars.ContextVar(
    "rivetkit_blocking_inside", default=()
)

#: Seconds a blocking action may wait for the actions in progress on its actor before that
#: is logged.
DRAIN_WARNING_AFTER = 1.0

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool of threads for blocking actions (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(32, (os.cpu_count() or 1) + 4),
                thread_name_prefix="rivetkit-blocking",
            )
        return _pool


class BlockingGate:
    """Holds one actor while a blocking action of it runs in a thread.

    Used as ``async with gate:`` around every action of the actor (a shared entry): it waits
    while a blocking action holds the actor, or is waiting to. :meth:`hold` is the blocking
    action's exclusive part. Actions already on the current call path of this actor (a call
    of the actor to itself) are not waited for, so such a call cannot deadlock here.
    """

    __slots__ = ("_instance", "_serial", "_waiters", "active", "busy", "pending")

    def __init__(self, instance: ActorInstance, *, serial: bool) -> None:
        self._instance = instance
        self._serial = serial
        self._waiters: list[asyncio.Future[None]] = []
        #: Actions inside the gate (each blocking action counts as one while it waits).
        self.active = 0
        #: True while a blocking action's thread runs (until the function returns).
        self.busy = False
        #: Blocking actions waiting for the actions in flight to finish.
        self.pending = 0

    def _inside(self) -> int:
        return _INSIDE.get().count(self)

    async def _wait(self, ready: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        while not ready():
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        if self.busy or self.pending or (self._serial and self.active):
            inside = self._inside() > 0
            if self._serial:
                await self._wait(lambda: not self.busy and (inside or not self.active))
            else:
                await self._wait(lambda: not self.busy and (inside or not self.pending))
        self.active += 1
        _INSIDE.set((*_INSIDE.get(), self))

    async def __aexit__(self, *exc: object) -> None:
        self.active -= 1
        entered = list(_INSIDE.get())
        for i in range(len(entered) - 1, -1, -1):
            if entered[i] is self:
                del entered[i]
                break
        _INSIDE.set(tuple(entered))
        if self._waiters:
            self._wake()

    async def hold(self, name: str = "?") -> None:
        """Wait until this actor runs nothing else, then hold it (:meth:`release` ends it).

        Called from inside the gate: the caller's own entry, and those of its callers of
        this actor, are not waited for. A wait longer than :data:`DRAIN_WARNING_AFTER` is
        logged (it is how a call of the actor to itself from another process shows up).
        """
        allowed = self._inside()
        self.pending += 1
        warning = asyncio.get_running_loop().call_later(
            DRAIN_WARNING_AFTER, self._warn_waiting, name
        )
        try:
            await self._wait(lambda: not self.busy and self.active - (self.pending - 1) <= allowed)
        finally:
            warning.cancel()
            self.pending -= 1
            if self._waiters:
                self._wake()
        self.busy = True
        self._instance.begin_request()  # keeps the actor awake, and stop waits for it

    def _warn_waiting(self, name: str) -> None:
        log.warning(
            "blocking action %r of actor %r has waited %g s for %d action(s) in progress on "
            "this actor; if one of them awaits it (a call of the actor to itself through the "
            "engine), it waits until the action timeout",
            name,
            self._instance.definition.name,
            DRAIN_WARNING_AFTER,
            max(0, self.active - self.pending),
        )

    def release(self) -> None:
        """The thread returned: save what it changed, let the actor run again."""
        self.busy = False
        instance = self._instance
        instance.persistence.mark_dirty()
        instance.end_request()
        self._wake()

    async def idle(self) -> None:
        """Wait until no blocking action's thread runs."""
        if self.busy:
            await self._wait(lambda: not self.busy)

    async def before_hook(self, name: str, timeout: float | None) -> None:
        """Wait (at most ``timeout`` s) for a blocking action's thread before the hook
        ``name`` runs; ``actor/callback_timed_out`` when it outlives that."""
        if not self.busy:
            return
        try:
            await asyncio.wait_for(self._wait(lambda: not self.busy), timeout)
        except asyncio.TimeoutError:
            raise actor_error(
                "callback_timed_out",
                f"{name} did not start within {timeout:g} s: a blocking action still runs",
                metadata={"callback": name, "timeout_ms": int((timeout or 0) * 1000)},
            ) from None


def gate_for(instance: ActorInstance) -> BlockingGate | None:
    """The gate of ``instance``: None when its definition has no blocking action (its
    action table, ``instance.table``, says whether it has one)."""
    if not instance.table.blocking:
        return None
    return BlockingGate(instance, serial=bool(instance.options.serial))


def threaded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The async action that runs the sync action ``fn`` (wire name ``name``) in a worker
    thread while holding its actor (see :class:`BlockingGate`)."""

    async def run_blocking(ctx: Any, *args: Any) -> Any:
        gate: BlockingGate | None = ctx._instance._gate
        if gate is None:  # pragma: no cover - an instance always has one for these
            raise RuntimeError(f"blocking action {name!r} without its actor's gate")
        await gate.hold(name)
        loop = asyncio.get_running_loop()
        try:
            work = worker_pool().submit(contextvars.copy_context().run, fn, ctx, *args)
        except BaseException:
            gate.release()
            raise

        def returned(_: concurrent.futures.Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(gate.release)

        work.add_done_callback(returned)
        try:
            # Cancelled (the action's timeout): the thread runs on; `returned` releases.
            return await asyncio.wrap_future(work)
        except TypeError as exc:
            error = bad_arguments(name, fn, list(args), exc)
            if error is None:
                raise
            raise error from None

    run_blocking.__name__ = getattr(fn, "__name__", name)
    run_blocking.__qualname__ = getattr(fn, "__qualname__", name)
    return run_blocking


class _TableSpec(NamedTuple):
    fn: Callable[..., Any]
    is_async: bool
    validate: Any
    blocking: bool = True  # the table's ``blocking`` (the actor gets a BlockingGate)


def table_actions(definition: ActorDefinition) -> Mapping[str, Any]:
    """The actions of ``definition`` as the action table takes them: a blocking action
    becomes the async :func:`threaded` wrapper of its function."""
    actions = definition.actions
    if not any(spec.blocking for spec in actions.values()):
        return actions
    return {
        name: _TableSpec(threaded(name, spec.fn), True, spec.validate) if spec.blocking else spec
        for name, spec in actions.items()
    }


_warned: set[tuple[str, str]] = set()


def slow_action_reporter(actor_name: str) -> Callable[[str, float], None]:
    """The action table's callback for a sync action of ``actor_name`` that held the event
    loop too long: a warning, once per action per process."""

    def report(action: str, seconds: float) -> None:
        key = (actor_name, action)
        if key in _warned:
            return
        _warned.add(key)
        log.warning(
            "action %r of actor %r blocked the event loop for %.1f s; mark it "
            "@actor.action(blocking=True) or make it async",
            action,
            actor_name,
            seconds,
        )

    return report
