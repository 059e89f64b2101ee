"""Compensation (spec §1.9): after an unrecoverable failure, the workflow function is run
again in *rollback mode* (steps do not execute; completed steps hand back their output and
register their ``rollback`` handler; the run stops at the first unfinished entry), then the
handlers run in reverse order, each recorded once done so a resumed rollback skips it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rivetkit.workflow.errors import EvictedError, RollbackStopError
from rivetkit.workflow.run import Run
from rivetkit.workflow.steps import StepContext, error_text

if TYPE_CHECKING:
    from rivetkit.workflow.context import WorkflowContext
    from rivetkit.workflow.history import History

__all__ = ["run_rollback"]


async def run_rollback(
    run_factory: Callable[[str], Run],
    context_factory: Callable[[Run], WorkflowContext],
    fn: Callable[[WorkflowContext], Awaitable[Any]],
) -> None:
    """Collect the compensations of the recorded history and run them, newest first.

    Raises the first handler failure (the state then stays ``rolling_back``) and
    :class:`EvictedError` when the actor stops meanwhile.
    """
    run = run_factory("rollback")
    ctx = context_factory(run)
    try:
        await fn(ctx)
    except RollbackStopError:
        pass
    except EvictedError:
        raise
    except Exception:  # the original failure again: the handlers met so far are the ones
        pass
    history: History = run.history
    instance = run.instance
    for entry, handler, output in reversed(run.rollback_actions):
        meta = history.meta(entry, run.now_ms())
        if meta.rollback_completed_at is not None:
            continue
        if run.evicted:
            raise EvictedError()
        s = StepContext.of(instance)
        try:
            result = handler(s, output)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            s.end()
            meta.rollback_error = error_text(exc)
            history.touch_meta(entry.id)
            await run.flush()
            run.report(
                {"rollback": {"workflow_id": instance.actor_id, "step_name": "", "error": exc}}
            )
            raise
        s.end()
        meta.rollback_completed_at = run.now_ms()
        meta.rollback_error = None
        history.touch_meta(entry.id)
        await run.flush()
