"""Driving a workflow inside its actor (spec §3): the ``workflow`` decorator and the runner.

``@my_actor.run`` over ``@workflow`` makes the workflow the actor's ``run`` handler, which the
runtime starts after ``on_wake`` on every start. The runner loads the history from the
actor's KV, runs the function (replaying what is recorded), and when the function suspends
(a sleep, a retry backoff, a message wait) it persists ``state=sleeping``, pushes the
deadline as the actor's alarm, waits in memory and runs the function again. The wait does
not keep the actor awake: it may sleep meanwhile, and the alarm (or a queue message, which
wakes it) starts it again, which replays the workflow.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

from rivetkit.errors import RivetError
from rivetkit.workflow import storage
from rivetkit.workflow.context import WorkflowContext
from rivetkit.workflow.errors import (
    CriticalError,
    EvictedError,
    JoinError,
    MessageWaitError,
    RaceError,
    RollbackCheckpointError,
    RollbackError,
    SleepError,
    StepExhaustedError,
    StepFailedError,
)
from rivetkit.workflow.history import UNSET, History
from rivetkit.workflow.rollback import run_rollback
from rivetkit.workflow.run import Run

if TYPE_CHECKING:
    from rivetkit.runtime.context import ActorContext
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["Outcome", "WorkflowRunner", "runner_of", "workflow"]

WorkflowFn = Callable[[WorkflowContext], Awaitable[Any]]
F = TypeVar("F", bound=WorkflowFn)
#: Failures after which the actor keeps running (logged); others crash the actor (§1.12).
_SOFT_FAILURES = (StepExhaustedError, CriticalError, RollbackError, JoinError, RaceError)
_SOFT_NAMES = frozenset(c.name for c in _SOFT_FAILURES) | {"StepTimeoutError"}

_runners: weakref.WeakKeyDictionary[ActorInstance, WorkflowRunner] = weakref.WeakKeyDictionary()


def runner_of(instance: ActorInstance) -> WorkflowRunner | None:
    """The workflow runner of a live actor in this process (None before its first run)."""
    return _runners.get(instance)


class Outcome(NamedTuple):
    """How one execution ended: ``completed``, ``sleeping``, ``evicted``."""

    kind: str
    output: Any = None
    deadline: int | None = None
    names: list[str] | None = None


def _error_record(exc: BaseException) -> dict[str, Any]:
    name = getattr(exc, "name", None)
    if not isinstance(name, str):
        name = type(exc).__name__
    record: dict[str, Any] = {"name": name, "message": str(exc)}
    metadata = getattr(exc, "metadata", None)
    if callable(metadata):
        fields = metadata()
        if fields:
            record["metadata"] = fields
    return record


class WorkflowRunner:
    """Runs one actor's workflow: executions, waits between them, the inspector's view."""

    def __init__(
        self,
        instance: ActorInstance,
        fn: WorkflowFn,
        on_error: Callable[..., Any] | None = None,
    ) -> None:
        self.instance = instance
        self.fn = fn
        self.on_error = on_error
        self.history: History | None = None
        #: The run handler is executing or waiting.
        self.active = False
        self.listeners: list[Callable[[History], None]] = []

    # -- notifications -------------------------------------------------------------------

    def notify(self) -> None:
        """Tell the history listeners (the inspector) that the history changed."""
        history = self.history
        if history is None:
            return
        for listener in list(self.listeners):
            try:
                listener(history)
            except Exception:
                self.instance.log.exception("a workflow history listener failed")

    def _new_run(self, mode: str) -> Run:
        assert self.history is not None
        return Run(
            self.instance, self.history, mode=mode, on_error=self.on_error, on_flush=self.notify
        )

    # -- one execution -------------------------------------------------------------------

    async def execute(self) -> Outcome:
        """Run the function once from the top (spec §3.1's ``executeWorkflow``)."""
        if self.history is None:
            self.history = await storage.load(self.instance)
        history = self.history
        self.notify()
        if history.state == "cancelled":
            raise EvictedError()
        if not history.has_input:
            history.input_dirty = True
        if history.state == "rolling_back":
            run = self._new_run("forward")
            await self._rollback(run, None)
        history.set_state("running")
        run = self._new_run("forward")
        ctx = WorkflowContext(run)
        try:
            output = await self.fn(ctx)
        except SleepError as exc:
            return await self._suspend(run, exc.deadline, exc.names)
        except StepFailedError as exc:
            return await self._suspend(run, exc.retry_at, None)
        except MessageWaitError as exc:
            return await self._suspend(run, None, exc.names)
        except EvictedError:
            await run.flush()
            return Outcome("evicted")
        except RollbackCheckpointError as exc:
            history.set_error(_error_record(exc))
            history.set_state("failed")
            await run.flush()
            raise
        except Exception as exc:
            if run.evicted:
                await run.flush()
                return Outcome("evicted")
            await self._rollback(run, exc)
            raise
        history.set_state("completed")
        history.set_output(UNSET if output is None else output)
        await run.flush()
        return Outcome("completed", output)

    async def _suspend(self, run: Run, deadline: int | None, names: list[str] | None) -> Outcome:
        assert self.history is not None
        self.history.set_state("sleeping")
        await run.flush()
        return Outcome("sleeping", None, deadline, names)

    async def _rollback(self, run: Run, exc: BaseException | None) -> None:
        history = run.history
        if exc is not None:
            history.set_error(_error_record(exc))
            history.set_state("rolling_back")
            await run.flush()
            run.report({"workflow": {"workflow_id": self.instance.actor_id, "error": exc}})
        try:
            await run_rollback(self._new_run, WorkflowContext, self.fn)
        except EvictedError:
            raise
        history.set_state("failed")
        await run.flush()
        if exc is None:
            record = history.error or {}
            raise _StoredFailure(str(record.get("name", "Error")), str(record.get("message", "")))

    # -- the live loop -------------------------------------------------------------------

    async def drive(self) -> Any:
        """Execute, wait, execute again... until the workflow completes, fails or the actor
        stops. Returns the output (None when the actor stopped first)."""
        self.active = True
        try:
            while True:
                outcome = await self.execute()
                if outcome.kind != "sleeping":
                    return outcome.output
                if not await self._wait(outcome.deadline, outcome.names):
                    return None
        finally:
            self.active = False

    async def _wait(self, deadline: int | None, names: list[str] | None) -> bool:
        """Wait for the deadline or a message; False when the actor stops first."""
        instance = self.instance
        schedule = instance.schedule
        if deadline is not None:
            schedule.workflow_wake_ms = deadline
            await schedule.sync_alarm()
        abort = instance.abort_event
        instance.queue_wait_changed(+1)  # a waiting workflow lets the actor sleep
        try:
            if abort.is_set():
                return False
            timeout = None
            if deadline is not None:
                timeout = max(0.0, deadline / 1000 - instance.clock())
            if names is not None:
                try:
                    await instance.queue.wait_ready(names or None, timeout=timeout)
                except RivetError as exc:
                    if (exc.group, exc.code) == ("actor", "aborted"):
                        return False
                    raise
            else:
                waiter = asyncio.ensure_future(abort.wait())
                try:
                    await asyncio.wait({waiter}, timeout=timeout)
                finally:
                    waiter.cancel()
            return not abort.is_set()
        finally:
            instance.queue_wait_changed(-1)
            # Kept while the actor stops: a sync during the shutdown must not drop the alarm
            # that wakes it for this deadline.
            if (
                deadline is not None
                and schedule.workflow_wake_ms == deadline
                and not abort.is_set()
            ):
                schedule.workflow_wake_ms = None


class _StoredFailure(Exception):
    """A workflow failure read back from its error record (a resumed rollback)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


async def _drive(c: ActorContext, fn: WorkflowFn, on_error: Callable[..., Any] | None) -> None:
    instance: ActorInstance = c._instance
    runner = _runners.get(instance)
    if runner is None:
        runner = _runners[instance] = WorkflowRunner(instance, fn, on_error)
        from rivetkit.workflow.inspect import take_early_listeners

        runner.listeners.extend(take_early_listeners(instance))
    try:
        await runner.drive()
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        if instance.abort_event.is_set():
            return  # stopping: whatever was flushed stays
        if isinstance(exc, _SOFT_FAILURES) or (
            isinstance(exc, _StoredFailure) and exc.name in _SOFT_NAMES
        ):
            instance.log.warning("workflow failed and will sleep until woken: %s", exc)
            return
        raise


@overload
def workflow(fn: F) -> Callable[[ActorContext], Awaitable[None]]: ...


@overload
def workflow(
    fn: None = None, *, on_error: Callable[..., Any] | None = None
) -> Callable[[F], Callable[[ActorContext], Awaitable[None]]]: ...


def workflow(fn: WorkflowFn | None = None, *, on_error: Callable[..., Any] | None = None) -> Any:
    """Make ``fn(ctx)`` a durable workflow, used as the actor's ``run`` handler::

        @order.run
        @workflow
        async def process(ctx): ...

    ``on_error(c, event)`` (optional) is told of every failed step attempt
    (``{"step": {...}}``), failed rollback handler (``{"rollback": {...}}``) and workflow
    failure (``{"workflow": {...}}``); its own failures are logged.
    """
    if fn is None:
        return lambda f: workflow(f, on_error=on_error)
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"@workflow needs an async function (async def {getattr(fn, '__name__', 'fn')}"
            "(ctx): ...)"
        )
    inner = fn

    @functools.wraps(inner)
    async def run(c: ActorContext) -> None:
        await _drive(c, inner, on_error)

    run.__rivet_workflow__ = True  # type: ignore[attr-defined]
    return run
