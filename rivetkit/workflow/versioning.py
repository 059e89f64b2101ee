"""Changing a workflow's code safely: ``ctx.removed``, ``ctx.get_version`` (spec §1.10), and
``ctx.rollback_checkpoint`` (spec §1.9), the entries that only mark a point of the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit.workflow.errors import HistoryDivergedError, RollbackStopError

if TYPE_CHECKING:
    from rivetkit.workflow.context import WorkflowContext

__all__ = ["get_version", "removed", "rollback_checkpoint"]


async def rollback_checkpoint(ctx: WorkflowContext, name: str) -> None:
    """``ctx.rollback_checkpoint``: record the checkpoint; later steps may have ``rollback``."""
    run = ctx._run
    location, key, entry = ctx.begin(name)
    if entry is not None:
        ctx.expect(entry, "rollback_checkpoint", name, key)
    else:
        if run.mode == "rollback":
            raise HistoryDivergedError(f'Missing rollback checkpoint "{name}" at {key}')
        run.history.add(location, "rollback_checkpoint", name=name)
        await run.flush()
    ctx._checkpoint = True


async def removed(ctx: WorkflowContext, name: str, original_type: str) -> None:
    """``ctx.removed``: skip a recorded entry of ``original_type``, or record a placeholder."""
    run = ctx._run
    location, key, entry = ctx.begin(name)
    if entry is not None:
        if entry.kind not in (original_type, "removed"):
            raise HistoryDivergedError(
                f'Expected {original_type} or removed "{name}" at {key}, found {entry.kind}'
            )
        # Its children (a removed loop's iterations, ...) count as visited too.
        for child_key, child in run.history.entries.items():
            if child.location[: len(location)] == location:
                run.visited.add(child_key)
        return
    if run.mode == "rollback":
        raise RollbackStopError()
    run.history.add(location, "removed", original_type=original_type, original_name=name)
    await run.flush()


async def get_version(ctx: WorkflowContext, name: str, latest: int) -> int:
    """``ctx.get_version``: the recorded version, else ``latest`` for a fresh scope and 1 when
    the scope already holds history not visited yet (an instance started by older code)."""
    if isinstance(latest, bool) or not isinstance(latest, int) or latest < 1:
        raise ValueError(f"get_version latest must be an integer >= 1, got {latest!r}")
    run = ctx._run
    location, key, entry = ctx.begin(name)
    if entry is not None:
        ctx.expect(entry, "version_check", name, key)
        return entry.resolved
    if run.mode == "rollback":
        raise RollbackStopError()
    resolved = 1 if ctx.unvisited_in_scope() else latest
    run.history.add(location, "version_check", resolved=resolved, latest=latest)
    await run.flush()
    return resolved
