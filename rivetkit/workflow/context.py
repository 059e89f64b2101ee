"""The workflow context ``ctx`` a workflow function receives (:class:`WorkflowContext`).

It is the orchestration side only: identity, logging, the abort signal and the durable
primitives (``step``, ``sleep``, ``queue.next``, ``loop``, ``join``, ``race``, ...). Actor
data (``state``, ``db``, ``client()``, ...) is reached inside step bodies, through the
:class:`~rivetkit.workflow.steps.StepContext` they receive.

Every primitive takes a name, unique within its scope for one run; its location in the call
tree keys its history entry (spec §1.11, §2.4). Loop iterations, join and race branches and
``try_`` blocks get a child context with their own scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rivetkit.workflow import branches, loops, steps, versioning, waits
from rivetkit.workflow.errors import EntryInProgressError, EvictedError, HistoryDivergedError
from rivetkit.workflow.history import Entry, Location, is_under

if TYPE_CHECKING:
    from rivetkit.workflow.branches import RaceResult, TryResult
    from rivetkit.workflow.run import Run
    from rivetkit.workflow.steps import TryStepResult
    from rivetkit.workflow.waits import WorkflowMessage

__all__ = ["WorkflowContext", "WorkflowQueue"]


class WorkflowQueue:
    """``ctx.queue``: durable receives from the actor's own queue."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: WorkflowContext) -> None:
        self._ctx = ctx

    async def next(
        self,
        name: str,
        *,
        names: Sequence[str] | str | None = None,
        timeout: float | None = None,
        completable: bool = False,
    ) -> WorkflowMessage:
        """Wait for the next message with one of ``names`` (None: any), recorded as ``name``.

        ``timeout`` (seconds) makes the wait durable-timed; when it passes first, the
        workflow fails (use :meth:`next_batch` for optional reads).
        """
        return await waits.queue_next(self._ctx, name, names, timeout, completable)

    async def next_batch(
        self,
        name: str,
        *,
        names: Sequence[str] | str | None = None,
        count: int = 1,
        timeout: float | None = None,
        completable: bool = False,
    ) -> list[WorkflowMessage]:
        """Up to ``count`` messages once at least one is queued; ``[]`` when ``timeout``
        seconds pass first."""
        return await waits.queue_next_batch(self._ctx, name, names, count, timeout, completable)


class WorkflowContext:
    """``ctx``: what a workflow function sees (see the module docstring)."""

    def __init__(
        self,
        run: Run,
        location: Location = (),
        *,
        abort: asyncio.Event | None = None,
        checkpoint: bool = False,
    ) -> None:
        self._run = run
        self._location = location
        self._used: set[str] = set()
        self._busy = False
        #: A race's own abort signal (losers stop at their next primitive).
        self._abort = abort
        #: A rollback checkpoint is in scope (steps may have ``rollback`` handlers).
        self._checkpoint = checkpoint
        self._pending_complete: set[int] = set()
        #: Durable receives from the actor's queue.
        self.queue = WorkflowQueue(self)

    # -- identity -----------------------------------------------------------------------

    @property
    def workflow_id(self) -> str:
        """The workflow's id: the actor's id."""
        return self._run.instance.actor_id

    @property
    def actor_id(self) -> str:
        """The actor's id."""
        return self._run.instance.actor_id

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._run.instance.name

    @property
    def key(self) -> list[str]:
        """The actor's key."""
        return self._run.instance.key

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The actor's logger."""
        return self._run.instance.log

    @property
    def abort_signal(self) -> asyncio.Event:
        """Set when the actor begins to stop (the run then ends at the next primitive)."""
        return self._run.instance.abort_event

    def is_evicted(self) -> bool:
        """True once the actor is stopping (or this race branch lost)."""
        return self._run.evicted or (self._abort is not None and self._abort.is_set())

    # -- primitives -----------------------------------------------------------------------

    async def step(
        self,
        name: str,
        run: Callable[..., Any],
        *,
        max_retries: int = 3,
        retry_backoff_base: float = 0.1,
        retry_backoff_max: float = 30.0,
        timeout: float | None = 30.0,
        retry_on_timeout: bool = False,
        ephemeral: bool = False,
        rollback: Callable[..., Any] | None = None,
    ) -> Any:
        """Run ``run(s)`` once, durably: its result is recorded and returned on replay.

        A failing attempt is retried up to ``max_retries`` times, waiting
        ``min(retry_backoff_max, retry_backoff_base * 2**attempts)`` seconds; a
        :class:`~rivetkit.workflow.errors.CriticalError` or
        :class:`~rivetkit.workflow.errors.RollbackError` is not retried. ``timeout`` seconds
        (None or <= 0: none) bound an attempt; a timeout is critical unless
        ``retry_on_timeout``. ``ephemeral`` skips the flush after success. ``rollback(s,
        output)`` compensates when the workflow fails later (needs a
        :meth:`rollback_checkpoint` before).
        """
        options = steps.StepOptions(
            max_retries,
            retry_backoff_base,
            retry_backoff_max,
            timeout,
            retry_on_timeout,
            ephemeral,
            rollback,
        )
        with self._entry():
            return await steps.step(self, name, run, options)

    async def try_step(
        self,
        name: str,
        run: Callable[..., Any],
        *,
        catch: Sequence[str] = ("critical", "timeout", "exhausted"),
        **options: Any,
    ) -> TryStepResult:
        """As :meth:`step`, but a failure of a kind in ``catch`` (``critical``, ``timeout``,
        ``exhausted``, ``rollback``) is returned as ``TryStepResult(ok=False, failure=...)``."""
        return await steps.try_step(self, name, run, tuple(catch), options)

    async def try_(
        self,
        name: str,
        run: Callable[[WorkflowContext], Awaitable[Any]],
        *,
        catch: Sequence[str] = ("step", "join", "race"),
    ) -> TryResult:
        """Run the block ``run(ctx)`` in its own scope; a failure of a source in ``catch``
        (``step``, ``join``, ``race``, ``block``, ``rollback``) is returned, not raised."""
        with self._entry():
            return await branches.try_block(self, name, run, tuple(catch))

    async def sleep(self, name: str, seconds: float) -> None:
        """Sleep ``seconds`` durably (the deadline is recorded: a replay never extends it)."""
        deadline = self._run.now_ms() + round(seconds * 1000)
        with self._entry():
            await waits.sleep_until(self, name, deadline)

    async def sleep_until(self, name: str, when: float | _dt.datetime) -> None:
        """Sleep until ``when`` (epoch seconds or an aware datetime), durably."""
        if isinstance(when, _dt.datetime):
            when = when.timestamp()
        with self._entry():
            await waits.sleep_until(self, name, round(when * 1000))

    async def loop(
        self,
        name: str,
        run: Callable[..., Awaitable[Any]],
        *,
        state: Any = loops.NO_STATE,
        history_prune_interval: int = 20,
        history_size: int | None = None,
    ) -> Any:
        """Run ``run(ctx, state)`` (or ``run(ctx)`` without ``state``) once per iteration until
        it returns ``Loop.break_(value)``; returns that value. ``Loop.continue_(state)``
        carries the state on; returning None continues a loop without state. Every
        ``history_prune_interval`` iterations the loop is flushed and the history of all but
        the last ``history_size`` (default: the interval) iterations is deleted."""
        with self._entry():
            return await loops.loop(self, name, run, state, history_prune_interval, history_size)

    async def join(
        self, name: str, branches_: Mapping[str, Callable[[WorkflowContext], Awaitable[Any]]]
    ) -> dict[str, Any]:
        """Run the branches concurrently, each in its own scope; ``{branch: output}``.
        Every branch runs to its end; any failure raises
        :class:`~rivetkit.workflow.errors.JoinError`."""
        with self._entry():
            return await branches.join(self, name, branches_)

    async def race(
        self,
        name: str,
        branches_: Sequence[tuple[str, Callable[[WorkflowContext], Awaitable[Any]]]],
    ) -> RaceResult:
        """Run the branches concurrently; the first to finish wins (``RaceResult(winner,
        value)``), the others stop at their next primitive and their history is deleted.
        :class:`~rivetkit.workflow.errors.RaceError` when every branch fails."""
        with self._entry():
            return await branches.race(self, name, branches_)

    async def rollback_checkpoint(self, name: str) -> None:
        """Record a rollback checkpoint: later steps in this scope may have ``rollback``."""
        with self._entry():
            await versioning.rollback_checkpoint(self, name)

    async def removed(self, name: str, original_type: str) -> None:
        """Mark an entry removed from the code (``original_type``: ``step``, ``loop``, ...),
        so histories that still hold it replay."""
        with self._entry():
            await versioning.removed(self, name, original_type)

    async def get_version(self, name: str, latest: int) -> int:
        """The code version this instance runs at this point: ``latest`` for new runs, 1 for
        runs that already went past it with older code; recorded for replay."""
        with self._entry():
            return await versioning.get_version(self, name, latest)

    # -- internals --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _entry(self) -> Iterator[None]:
        if self._busy:
            raise EntryInProgressError()
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    def check_evicted(self) -> None:
        """Raise :class:`EvictedError` when the actor is stopping (or this branch lost)."""
        if self.is_evicted():
            raise EvictedError()

    def check_name(self, name: str) -> None:
        """The duplicate-name check of ``name`` in this scope (spec §1.11)."""
        if name in self._used:
            where = self._run.history.key(self._location)
            raise HistoryDivergedError(
                f'Duplicate entry name "{name}" at location "{where}". Each step/loop/sleep/'
                "queue.next/join/race must have a unique name within its scope."
            )
        self._used.add(name)

    def locate(self, name: str) -> tuple[Location, str]:
        """Register ``name`` and return its location in this scope and its key (visited)."""
        history = self._run.history
        location = (*self._location, history.register(name))
        key = history.key(location)
        self._run.visited.add(key)
        return location, key

    def begin(self, name: str) -> tuple[Location, str, Entry | None]:
        """Evicted and duplicate checks, then the location, key and recorded entry."""
        self.check_evicted()
        self.check_name(name)
        location, key = self.locate(name)
        return location, key, self._run.history.entries.get(key)

    def expect(self, entry: Entry, kind: str, name: str, key: str) -> None:
        """Raise :class:`HistoryDivergedError` unless ``entry`` is of ``kind``."""
        if entry.kind != kind:
            raise HistoryDivergedError(f'Expected {kind} "{name}" at {key}, found {entry.kind}')

    def child(self, location: Location, *, abort: asyncio.Event | None = None) -> WorkflowContext:
        """A context for a child scope at ``location``."""
        return WorkflowContext(
            self._run,
            location,
            abort=abort if abort is not None else self._abort,
            checkpoint=self._checkpoint,
        )

    def validate_complete(self) -> None:
        """Every recorded entry in this scope was visited (spec §1.11)."""
        visited = self._run.visited
        scope = self._location
        for key, entry in self._run.history.entries.items():
            if key not in visited and is_under(scope, entry.location):
                raise HistoryDivergedError(
                    f'Entry "{key}" exists in history but was not visited. Workflow code may '
                    "have changed. Use ctx.removed() to handle migrations."
                )

    def unvisited_in_scope(self) -> bool:
        """An entry of this scope's history has not been visited yet."""
        visited = self._run.visited
        scope = self._location
        return any(
            key not in visited and is_under(scope, entry.location)
            for key, entry in self._run.history.entries.items()
        )

    def __repr__(self) -> str:
        return f"<WorkflowContext {self._run.history.key(self._location) or '/'}>"
