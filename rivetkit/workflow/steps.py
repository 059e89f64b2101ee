"""Steps: ``ctx.step`` and ``ctx.try_step`` (spec §1.3, §1.4), and the step context ``s``.

A step runs its body at most once per recorded success: the entry (output, or error text)
and its metadata (status, attempts, times) are written by the next flush, together with the
actor state the body changed. Nothing is written before the body runs, so a crash inside it
runs it again (at-least-once); a crash after its flush never does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from rivetkit.runtime.context import ActorContext
from rivetkit.workflow import wire
from rivetkit.workflow.errors import (
    ControlFlow,
    CriticalError,
    EntryInProgressError,
    HistoryDivergedError,
    RollbackCheckpointError,
    RollbackError,
    RollbackStopError,
    SleepError,
    StepExhaustedError,
    StepFailedError,
    StepTimeoutError,
)
from rivetkit.workflow.history import UNSET, Entry

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance
    from rivetkit.workflow.context import WorkflowContext

__all__ = [
    "StepContext",
    "StepFailure",
    "StepOptions",
    "TryStepResult",
    "error_text",
    "step",
    "try_step",
]


#: The user-KV key RivetKit's guard writes when a step context is used after its step.
GUARD_KEY = b"__rivet_actor_workflow_guard_triggered"


class StepContext(ActorContext):
    """``s``: what a step body (or a rollback handler) sees: the actor's context (``state``,
    ``vars``, ``db``, ``kv``, ``client()``, ``broadcast``, ``queue``, ``schedule``,
    ``keep_awake``, ``wait_until``, ``destroy()``, ``log``, ids), valid while its step runs:
    afterwards its actor data raises ``RuntimeError("<feature> is only available inside
    workflow steps")`` (and, as RivetKit, sets ``state["guardTriggered"]`` when the state has
    that key and writes the user-KV key ``__rivet_actor_workflow_guard_triggered``)."""

    __slots__ = ("_active",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._active = True

    @classmethod
    def of(cls, instance: ActorInstance) -> StepContext:
        """A step context over ``instance`` (with its client factory)."""
        return cls(instance, None, instance.context._client_source)

    def end(self) -> None:
        """The step is over: the context no longer reaches actor data."""
        self._active = False

    def _guard(self, feature: str) -> None:
        if self._active:
            return
        instance = self._instance
        state = instance.state
        if isinstance(state, dict) and "guardTriggered" in state:
            state["guardTriggered"] = True
            instance.mark_dirty()
        instance.wait_until(instance.kv.put(GUARD_KEY, b"true"))
        raise RuntimeError(f"{feature} is only available inside workflow steps")

    @property
    def state(self) -> Any:
        """The actor's state (inside the step only)."""
        self._guard("state")
        return self._instance.state

    @state.setter
    def state(self, value: Any) -> None:
        self._guard("state")
        self._instance.set_state(value)

    @property
    def vars(self) -> Any:
        """The actor's vars (inside the step only)."""
        self._guard("vars")
        return self._instance.vars

    @vars.setter
    def vars(self, value: Any) -> None:
        self._guard("vars")
        self._instance.vars = value

    @property
    def db(self) -> Any:
        """The actor's SQL database (inside the step only)."""
        self._guard("db")
        return self._instance.db

    @property
    def kv(self) -> Any:
        """The actor's user KV (inside the step only)."""
        self._guard("kv")
        return self._instance.kv

    @property
    def queue(self) -> Any:
        """The actor's queue (inside the step only)."""
        self._guard("queue")
        return self._instance.queue

    def client(self) -> Any:
        """A client of the registry's actors (inside the step only)."""
        self._guard("client")
        return super().client()

    def broadcast(self, event: str, *args: Any) -> None:
        """Send an event to subscribed connections (inside the step only)."""
        self._guard("broadcast")
        super().broadcast(event, *args)


class StepOptions(NamedTuple):
    """A step's options, in seconds (ms on disk)."""

    max_retries: int = 3
    retry_backoff_base: float = 0.1
    retry_backoff_max: float = 30.0
    timeout: float | None = 30.0
    retry_on_timeout: bool = False
    ephemeral: bool = False
    rollback: Callable[..., Any] | None = None

    def retry_at(self, last_attempt_at: int, attempts: int) -> int:
        """When the next attempt may run (ms): ``min(max, base * 2**attempts)`` after the last."""
        base = self.retry_backoff_base * 1000
        delay = min(self.retry_backoff_max * 1000, base * 2 ** min(attempts, 64))
        return last_attempt_at + int(delay)


class StepFailure(NamedTuple):
    """Why a ``try_step`` failed: ``kind`` is ``critical``, ``timeout``, ``exhausted`` or
    ``rollback``; ``error`` is ``{"name", "message"}``."""

    kind: str
    step_name: str
    attempts: int
    error: dict[str, Any]


class TryStepResult(NamedTuple):
    """The result of ``try_step``: ``ok`` with ``value``, or not with ``failure``."""

    ok: bool
    value: Any = None
    failure: StepFailure | None = None


def error_text(exc: BaseException) -> str:
    """How an error is recorded in history (JavaScript's ``String(err)``: ``Name: message``)."""
    name = getattr(exc, "name", None)
    if not isinstance(name, str):
        name = type(exc).__name__
    message = str(exc)
    return f"{name}: {message}" if message else name


async def _run_body(
    ctx: WorkflowContext,
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    timeout: float | None,
) -> Any:
    result = fn(*args)
    if not inspect.isawaitable(result):
        return result
    if timeout is None or timeout <= 0:
        return await result
    task = asyncio.ensure_future(result)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        return task.result()
    # The timer does not cancel the body (as RivetKit): it goes on, its result dropped.
    orphans = ctx._run.orphans
    orphans.add(task)

    def forget(t: asyncio.Future[Any]) -> None:
        orphans.discard(t)
        if not t.cancelled():
            t.exception()

    task.add_done_callback(forget)
    raise StepTimeoutError(f'Step "{name}" timed out after {int(timeout * 1000)}ms')


async def step(ctx: WorkflowContext, name: str, fn: Callable[..., Any], opts: StepOptions) -> Any:
    """``ctx.step``: see :meth:`WorkflowContext.step`."""
    run = ctx._run
    history = run.history
    if opts.rollback is not None and not ctx._checkpoint:
        raise RollbackCheckpointError()
    location, key, entry = ctx.begin(name)
    now = run.now_ms()
    if entry is not None:
        ctx.expect(entry, "step", name, key)
        meta = history.metadata.get(entry.id)
        if (meta is not None and meta.status == "completed") or entry.output is not UNSET:
            if opts.rollback is not None:
                run.rollback_actions.append((entry, opts.rollback, entry.output))
            return None if entry.output is UNSET else entry.output
        if run.mode == "rollback":
            raise RollbackStopError()
        meta = history.meta(entry, now)
        if meta.attempts > opts.max_retries:
            if meta.status != "exhausted":
                meta.status = "exhausted"
                history.touch_meta(entry.id)
                await run.flush()
            raise StepExhaustedError(name, entry.error)
        if meta.attempts > 0:
            retry_at = opts.retry_at(meta.last_attempt_at, meta.attempts)
            if now < retry_at:
                raise SleepError(retry_at)
    else:
        if run.mode == "rollback":
            raise RollbackStopError()
        entry = history.add(location, "step")
        meta = history.meta(entry, now)
    meta.status = "running"
    meta.attempts += 1
    meta.last_attempt_at = now
    history.touch_meta(entry.id)
    s = StepContext.of(run.instance)
    try:
        output = await _run_body(ctx, name, fn, (s,), opts.timeout)
    except (ControlFlow, HistoryDivergedError, EntryInProgressError):
        raise
    except Exception as exc:
        return await _failed(ctx, name, entry, opts, exc)
    finally:
        s.end()
    if output is not None:
        try:
            wire.cbor_encode(output)
        except Exception as exc:  # recorded as a failed attempt, not a flush that never works
            error = CriticalError(f'Step "{name}" output cannot be recorded as CBOR: {exc}')
            return await _failed(ctx, name, entry, opts, error)
    entry.output = UNSET if output is None else output
    history.touch(entry)
    meta.status = "completed"
    meta.completed_at = run.now_ms()
    meta.error = None
    history.touch_meta(entry.id)
    if not opts.ephemeral:
        await run.flush()
    if opts.rollback is not None:
        run.rollback_actions.append((entry, opts.rollback, output))
    return output


async def _failed(
    ctx: WorkflowContext, name: str, entry: Entry, opts: StepOptions, exc: Exception
) -> Any:
    run = ctx._run
    history = run.history
    meta = history.metadata[entry.id]
    text = error_text(exc)
    entry.error = text
    history.touch(entry)
    meta.error = text
    history.touch_meta(entry.id)
    critical = isinstance(exc, (CriticalError, RollbackError)) and not (
        isinstance(exc, StepTimeoutError) and opts.retry_on_timeout
    )
    retry_at = opts.retry_at(meta.last_attempt_at, meta.attempts)
    will_retry = not critical and meta.attempts <= opts.max_retries
    run.report(
        {
            "step": {
                "workflow_id": run.instance.actor_id,
                "step_name": name,
                "attempt": meta.attempts,
                "max_retries": opts.max_retries,
                "remaining_retries": max(0, opts.max_retries - meta.attempts + 1),
                "will_retry": will_retry,
                "retry_at": retry_at if will_retry else None,
                "error": exc,
            }
        }
    )
    if critical:
        meta.status = "exhausted"
        await run.flush()
        raise exc
    if will_retry:
        meta.status = "failed"
        raise StepFailedError(name, exc, meta.attempts, retry_at)
    meta.status = "exhausted"
    await run.flush()
    raise StepExhaustedError(name, text)


def _failure_kind(exc: BaseException) -> str | None:
    if isinstance(exc, StepTimeoutError):
        return "timeout"
    if isinstance(exc, RollbackError):
        return "rollback"
    if isinstance(exc, CriticalError):
        return "critical"
    if isinstance(exc, StepExhaustedError):
        return "exhausted"
    return None


async def try_step(
    ctx: WorkflowContext,
    name: str,
    fn: Callable[..., Any],
    catch: tuple[str, ...],
    options: dict[str, Any],
) -> TryStepResult:
    """``ctx.try_step``: see :meth:`WorkflowContext.try_step`."""
    try:
        value = await ctx.step(name, fn, **options)
    except (ControlFlow, HistoryDivergedError, EntryInProgressError, RollbackCheckpointError):
        raise
    except Exception as exc:
        kind = _failure_kind(exc)
        if kind is None or kind not in catch:
            raise
        meta = None
        entry = ctx._run.history.entries.get(
            ctx._run.history.key((*ctx._location, ctx._run.history.register(name)))
        )
        if entry is not None:
            meta = ctx._run.history.metadata.get(entry.id)
        error = {"name": getattr(exc, "name", type(exc).__name__), "message": str(exc)}
        return TryStepResult(
            False, None, StepFailure(kind, name, meta.attempts if meta else 0, error)
        )
    return TryStepResult(True, value, None)
