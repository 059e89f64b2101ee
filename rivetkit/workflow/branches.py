"""Concurrent and guarded blocks: ``ctx.join``, ``ctx.race`` and ``ctx.try_`` (spec §1.4,
§1.8).

Branches run concurrently (asyncio tasks), each in the scope ``[..., name, branch]``. A
branch that yields (a sleep, a message wait, a retry) stays ``running``; the yields merge
(earliest deadline, union of message names) into one suspension of the whole run. Control
errors (eviction, divergence, ...) win over branch failures, in RivetKit's priority order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from rivetkit.workflow.errors import (
    ControlFlow,
    EntryInProgressError,
    EvictedError,
    HistoryDivergedError,
    JoinError,
    MessageWaitError,
    RaceError,
    RollbackCheckpointError,
    RollbackError,
    RollbackStopError,
    SleepError,
    StepFailedError,
)
from rivetkit.workflow.history import UNSET, Branch
from rivetkit.workflow.steps import error_text

if TYPE_CHECKING:
    from rivetkit.workflow.context import WorkflowContext

__all__ = ["BlockFailure", "RaceResult", "TryResult", "join", "race", "try_block"]

BranchFn = Callable[["WorkflowContext"], Awaitable[Any]]
_PRIORITY = (
    EvictedError,
    HistoryDivergedError,
    EntryInProgressError,
    RollbackCheckpointError,
    RollbackStopError,
)


class RaceResult(NamedTuple):
    """The winner of a race and its value."""

    winner: str
    value: Any


class BlockFailure(NamedTuple):
    """Why a ``try_`` block failed: ``source`` is ``step``, ``join``, ``race``, ``block`` or
    ``rollback``; ``error`` is ``{"name", "message"}``; ``step`` names the failed step."""

    source: str
    name: str
    error: dict[str, Any]
    step: str | None = None


class TryResult(NamedTuple):
    """The result of ``try_``: ``ok`` with ``value``, or not with ``failure``."""

    ok: bool
    value: Any = None
    failure: BlockFailure | None = None


class _Yields:
    """The merged suspension of several branches."""

    def __init__(self) -> None:
        self.deadline: int | None = None
        self.names: set[str] | None = None
        self.any = False

    def add(self, exc: BaseException) -> None:
        self.any = True
        when = None
        if isinstance(exc, SleepError):
            when = exc.deadline
            names = exc.names
        elif isinstance(exc, StepFailedError):
            when = exc.retry_at
            names = None
        else:
            assert isinstance(exc, MessageWaitError)
            names = exc.names
        if when is not None:
            self.deadline = when if self.deadline is None else min(self.deadline, when)
        if names is not None:
            self.names = (self.names or set()) | set(names)

    def error(self) -> ControlFlow:
        names = sorted(self.names) if self.names is not None else None
        if self.deadline is not None:
            return SleepError(self.deadline, names)
        return MessageWaitError(names or [])


def _pick_control(current: BaseException | None, new: BaseException) -> BaseException:
    if current is None:
        return new

    def rank(e: BaseException) -> int:
        for i, cls in enumerate(_PRIORITY):
            if isinstance(e, cls):
                return i
        return len(_PRIORITY)

    return new if rank(new) < rank(current) else current


_YIELDS = (SleepError, MessageWaitError, StepFailedError)


async def join(ctx: WorkflowContext, name: str, fns: Mapping[str, BranchFn]) -> dict[str, Any]:
    """``ctx.join``: see :meth:`WorkflowContext.join`."""
    run = ctx._run
    history = run.history
    location, key, entry = ctx.begin(name)
    if entry is not None:
        ctx.expect(entry, "join", name, key)
    else:
        if run.mode == "rollback":
            raise RollbackStopError()
        entry = history.add(location, "join", branches={b: Branch() for b in fns})
        await run.flush()
    statuses = entry.branches
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    yields = _Yields()
    control: BaseException | None = None
    children: dict[str, WorkflowContext] = {}

    async def one(branch: str, fn: BranchFn) -> None:
        nonlocal control
        status = statuses.setdefault(branch, Branch())
        child = children[branch]
        try:
            output = await fn(child)
            child.validate_complete()
        except _YIELDS as exc:
            yields.add(exc)
            status.status, status.error = "running", None
        except _PRIORITY as exc:
            control = _pick_control(control, exc)
            status.status, status.error = "running", None
        except Exception as exc:
            status.status, status.output, status.error = "failed", UNSET, error_text(exc)
            errors[branch] = exc
        else:
            status.status, status.output, status.error = "completed", output, None
            results[branch] = output
        history.touch(entry)

    tasks = []
    for branch, fn in fns.items():
        status = statuses.get(branch)
        if status is None:
            raise HistoryDivergedError(f'Expected join branch "{branch}" in "{name}"')
        if status.status == "completed":
            results[branch] = None if status.output is UNSET else status.output
            _visit_scope(ctx, (*location, history.register(branch)))
            continue
        if status.status == "failed":
            errors[branch] = RuntimeError(status.error or "branch failed")
            _visit_scope(ctx, (*location, history.register(branch)))
            continue
        status.status = "running"
        children[branch] = ctx.child((*location, history.register(branch)))
        tasks.append(asyncio.ensure_future(one(branch, fn)))
    if tasks:
        history.touch(entry)
        await asyncio.gather(*tasks)
    await run.flush()
    if control is not None:
        raise control
    if yields.any:
        raise yields.error()
    if any(s.status in ("pending", "running") for s in statuses.values()):
        raise RuntimeError(f'Join "{name}" has pending branches without a scheduler yield')
    if errors:
        raise JoinError(errors)
    return {b: results.get(b) for b in fns}


def _visit_scope(ctx: WorkflowContext, scope: Any) -> None:
    """Mark every recorded entry of a settled branch visited (it is not run again)."""
    run = ctx._run
    for key, entry in run.history.entries.items():
        if entry.location[: len(scope)] == scope:
            run.visited.add(key)


async def race(ctx: WorkflowContext, name: str, fns: Sequence[tuple[str, BranchFn]]) -> RaceResult:
    """``ctx.race``: see :meth:`WorkflowContext.race`."""
    run = ctx._run
    history = run.history
    location, key, entry = ctx.begin(name)
    if entry is not None:
        ctx.expect(entry, "race", name, key)
        if entry.winner is not None:
            won = entry.branches[entry.winner]
            _visit_scope(ctx, (*location, history.register(entry.winner)))
            return RaceResult(entry.winner, None if won.output is UNSET else won.output)
        if run.mode == "rollback":
            raise RollbackStopError()
    else:
        if run.mode == "rollback":
            raise RollbackStopError()
        entry = history.add(location, "race", branches={b: Branch() for b, _ in fns})
        await run.flush()
    statuses = entry.branches
    errors: list[tuple[str, BaseException]] = []
    for branch, _fn in fns:
        status = statuses.get(branch)
        if status is None:
            raise HistoryDivergedError(f'Expected race branch "{branch}" in "{name}"')
        if status.status == "failed":
            errors.append((branch, RuntimeError(status.error or "branch failed")))
        if status.status == "completed":  # completed without a recorded winner: it wins
            entry.winner = branch
            history.touch(entry)
            await run.flush()
            _visit_scope(ctx, (*location, history.register(branch)))
            return RaceResult(branch, None if status.output is UNSET else status.output)
    abort = asyncio.Event()
    winner: list[tuple[str, Any]] = []
    yields = _Yields()
    control: BaseException | None = None

    async def one(branch: str, fn: BranchFn, child: WorkflowContext) -> None:
        nonlocal control
        status = statuses[branch]
        try:
            output = await fn(child)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if winner:
                if isinstance(exc, EvictedError):
                    status.status = "cancelled"
                else:
                    run.instance.log.warning(
                        'race "%s": branch "%s" failed after the winner: %s', name, branch, exc
                    )
            elif isinstance(exc, _YIELDS):
                yields.add(exc)
                status.status, status.error = "running", None
            elif isinstance(exc, _PRIORITY):
                control = _pick_control(control, exc)
                status.status, status.error = "running", None
            else:
                status.status, status.output, status.error = "failed", UNSET, error_text(exc)
                errors.append((branch, exc))
            history.touch(entry)
            return
        status.status, status.output, status.error = "completed", output, None
        if not winner and control is None:
            winner.append((branch, output))
            child.validate_complete()
            entry.winner = branch
            abort.set()
        history.touch(entry)

    tasks = []
    for branch, fn in fns:
        status = statuses[branch]
        if status.status not in ("pending", "running"):
            continue
        status.status, status.error = "running", None
        child = ctx.child((*location, history.register(branch)), abort=abort)
        tasks.append(asyncio.ensure_future(one(branch, fn, child)))
    history.touch(entry)
    if tasks:
        await asyncio.gather(*tasks)
    if control is not None:
        await run.flush()
        raise control
    if not winner and any(s.status in ("pending", "running") for s in statuses.values()):
        await run.flush()
        if not yields.any:
            raise RuntimeError(f'Race "{name}" has pending branches without a scheduler yield')
        raise yields.error()
    if winner:
        won_name, value = winner[0]
        for branch, _fn in fns:
            if branch != won_name:
                history.drop_scope((*location, history.register(branch)))
        await run.flush()
        return RaceResult(won_name, value)
    await run.flush()
    raise RaceError("All branches failed", errors)


def _source(exc: BaseException) -> tuple[str, str | None]:
    from rivetkit.workflow.errors import CriticalError, StepExhaustedError

    if isinstance(exc, JoinError):
        return "join", None
    if isinstance(exc, RaceError):
        return "race", None
    if isinstance(exc, RollbackError):
        return "rollback", None
    if isinstance(exc, StepExhaustedError):
        return "step", exc.step_name
    if isinstance(exc, CriticalError):
        return "step", None
    return "block", None


async def try_block(
    ctx: WorkflowContext, name: str, fn: BranchFn, catch: tuple[str, ...]
) -> TryResult:
    """``ctx.try_``: see :meth:`WorkflowContext.try_`."""
    ctx.check_evicted()
    ctx.check_name(name)
    location, _key = ctx.locate(name)
    child = ctx.child(location)
    try:
        value = await fn(child)
        child.validate_complete()
    except (ControlFlow, HistoryDivergedError, EntryInProgressError, RollbackCheckpointError):
        raise
    except Exception as exc:
        source, step_name = _source(exc)
        if source not in catch:
            raise
        error = {"name": getattr(exc, "name", type(exc).__name__), "message": str(exc)}
        return TryResult(False, None, BlockFailure(source, name, error, step_name))
    return TryResult(True, value, None)
