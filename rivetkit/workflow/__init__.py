"""Durable workflows, byte-compatible with RivetKit's workflow engine.

A workflow is a replayed function: every durable primitive (``ctx.step``, ``ctx.sleep``,
``ctx.queue.next``, ``ctx.loop``, ``ctx.join``, ``ctx.race``, ...) records its result in the
actor's KV (under ``[6,1]``, the bytes of RivetKit's ``@rivetkit/workflow-engine``), and
every run calls the function from the top, returning recorded results instead of running
again::

    from rivetkit import actor
    from rivetkit.workflow import workflow

    order = actor("order", state={"status": "new", "charges": 0})

    @order.run
    @workflow
    async def process(ctx):
        msg = await ctx.queue.next("payment", names=["pay"])
        ...

Modules: :mod:`.context` (``ctx``), :mod:`.steps` (steps and ``s``), :mod:`.waits` (sleeps
and queue receives), :mod:`.loops`, :mod:`.branches` (join, race, try), :mod:`.versioning`,
:mod:`.rollback`, :mod:`.history` and :mod:`.storage` (the recorded history), :mod:`.driver`
(running it in the actor), :mod:`.inspect` (the inspector's access), :mod:`.errors`.
"""

from __future__ import annotations

from rivetkit.workflow.branches import BlockFailure, RaceResult, TryResult
from rivetkit.workflow.context import WorkflowContext, WorkflowQueue
from rivetkit.workflow.driver import workflow
from rivetkit.workflow.errors import (
    CriticalError,
    EntryInProgressError,
    EvictedError,
    HistoryDivergedError,
    JoinError,
    RaceError,
    RollbackCheckpointError,
    RollbackError,
    StepExhaustedError,
    StepTimeoutError,
    WorkflowError,
)
from rivetkit.workflow.loops import Loop, LoopBreak, LoopContinue
from rivetkit.workflow.steps import StepContext, StepFailure, TryStepResult
from rivetkit.workflow.waits import WorkflowMessage

__all__ = [
    "BlockFailure",
    "CriticalError",
    "EntryInProgressError",
    "EvictedError",
    "HistoryDivergedError",
    "JoinError",
    "Loop",
    "LoopBreak",
    "LoopContinue",
    "RaceError",
    "RaceResult",
    "RollbackCheckpointError",
    "RollbackError",
    "StepContext",
    "StepExhaustedError",
    "StepFailure",
    "StepTimeoutError",
    "TryResult",
    "TryStepResult",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowMessage",
    "WorkflowQueue",
    "workflow",
]
