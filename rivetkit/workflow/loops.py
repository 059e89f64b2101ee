"""``ctx.loop`` (spec §1.7): durable loops with carried state and history pruning.

One ``loop`` entry records the state and the next iteration; iteration ``i`` runs in the
child scope ``[..., loop, (loop, i)]``. The entry is flushed with the next flush (normally
the first step of the next iteration) and every ``history_prune_interval`` iterations, when
the history of all but the last ``history_size`` iterations is deleted.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from rivetkit.workflow.errors import RollbackStopError
from rivetkit.workflow.history import UNSET

if TYPE_CHECKING:
    from rivetkit.workflow.context import WorkflowContext

__all__ = ["NO_STATE", "Loop", "LoopBreak", "LoopContinue", "loop"]


class _NoState:
    def __repr__(self) -> str:
        return "NO_STATE"


#: The ``state`` default of ``ctx.loop``: a loop without state (``run(ctx)``).
NO_STATE: Final = _NoState()


class LoopContinue:
    """Go on with the next iteration, carrying ``state``."""

    __slots__ = ("state",)

    def __init__(self, state: Any = None) -> None:
        self.state = state


class LoopBreak:
    """End the loop with ``value`` (what ``ctx.loop`` returns)."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value


class Loop:
    """What a loop iteration returns: ``Loop.continue_(state)`` or ``Loop.break_(value)``."""

    @staticmethod
    def continue_(state: Any = None) -> LoopContinue:
        """Continue with ``state``."""
        return LoopContinue(state)

    @staticmethod
    def break_(value: Any = None) -> LoopBreak:
        """Stop with ``value``."""
        return LoopBreak(value)


async def loop(
    ctx: WorkflowContext,
    name: str,
    body: Callable[..., Awaitable[Any]],
    initial: Any,
    prune_interval: int,
    history_size: int | None,
) -> Any:
    """``ctx.loop``: see :meth:`WorkflowContext.loop`."""
    run = ctx._run
    history = run.history
    stateful = initial is not NO_STATE
    location, key, entry = ctx.begin(name)
    now = run.now_ms()
    if entry is not None:
        ctx.expect(entry, "loop", name, key)
        meta = history.meta(entry, now)
        if entry.output is not UNSET or meta.status == "completed":
            return None if entry.output is UNSET else entry.output
        state = entry.state
        iteration = entry.iteration
        if run.mode == "rollback":
            # Rollback replays the current iteration once, to meet its steps' handlers.
            index = location[-1]
            assert isinstance(index, int)
            child = ctx.child((*location, (index, iteration)))
            replayed: Any = body(child, state) if stateful else body(child)
            if inspect.isawaitable(replayed):
                replayed = await replayed
            if isinstance(replayed, LoopBreak):
                return replayed.value
            raise RollbackStopError()
    else:
        if run.mode == "rollback":
            raise RollbackStopError()
        state = initial if stateful else None
        iteration = 0
        entry = history.add(location, "loop", state=state, iteration=0)
        meta = history.meta(entry, now)
    meta.status = "running"
    meta.error = None
    history.touch_meta(entry.id)
    interval = max(1, prune_interval)
    keep = interval if history_size is None else max(0, history_size)
    index = location[-1]
    assert isinstance(index, int)
    pruned_to = 0
    while True:
        ctx.check_evicted()
        child = ctx.child((*location, (index, iteration)))
        result: Any = body(child, state) if stateful else body(child)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            if stateful and state is not None:
                raise RuntimeError(
                    f'Loop "{name}" returned None for a stateful iteration. Return '
                    "Loop.continue_(state) or Loop.break_(value)."
                )
            result = LoopContinue(state)
        elif not isinstance(result, (LoopContinue, LoopBreak)):
            raise TypeError(
                f'Loop "{name}" iteration returned {type(result).__name__}; return '
                "Loop.continue_(state), Loop.break_(value) or None"
            )
        child.validate_complete()
        if isinstance(result, LoopBreak):
            entry.output = result.value
            entry.state = state
            entry.iteration = iteration
            history.touch(entry)
            meta.status = "completed"
            meta.completed_at = run.now_ms()
            history.touch_meta(entry.id)
            _prune(history, location, iteration + 1, keep, pruned_to)
            await run.flush()
            return result.value
        state = result.state
        iteration += 1
        entry.state = state
        entry.iteration = iteration
        history.touch(entry)
        if iteration % interval == 0:
            if _prune(history, location, iteration, keep, pruned_to):
                pruned_to = max(0, iteration - keep)
            await run.flush()


def _prune(history: Any, location: Any, current: int, keep: int, start: int) -> bool:
    if current <= keep:
        return False
    end = max(0, current - keep)
    if start >= end:
        return False
    history.drop_iterations(location, start, end)
    return True
