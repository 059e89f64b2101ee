"""Durable waits: ``ctx.sleep``/``sleep_until`` and ``ctx.queue.next``/``next_batch``
(spec §1.5, §1.6).

A sleep records its deadline first, so a replay never extends it; a sleep with less than
100 ms left waits in memory, a longer one suspends the run (the runner waits, with the
deadline pushed as the actor's alarm). A queue receive records the messages it took (and
their count) before returning them, so a replay returns the same messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rivetkit.workflow.errors import (
    EvictedError,
    HistoryDivergedError,
    MessageWaitError,
    RollbackStopError,
    SleepError,
)
from rivetkit.workflow.history import Entry

if TYPE_CHECKING:
    from rivetkit.runtime.queue_message import QueueMessage
    from rivetkit.workflow.context import WorkflowContext

__all__ = ["POLL_INTERVAL_MS", "WorkflowMessage", "queue_next", "queue_next_batch", "sleep_until"]

#: Below this many ms left, a sleep waits in memory instead of suspending the run.
POLL_INTERVAL_MS = 100
#: The marker key of a queue message recorded in history.
_MARKER = "__rivetWorkflowQueueMessage"


async def _sleep_abortable(ctx: WorkflowContext, seconds: float) -> None:
    abort = ctx.abort_signal
    if abort.is_set():
        raise EvictedError()
    waiter = asyncio.ensure_future(abort.wait())
    try:
        await asyncio.wait({waiter}, timeout=max(0.0, seconds))
    finally:
        waiter.cancel()
    if abort.is_set():
        raise EvictedError()


async def sleep_until(ctx: WorkflowContext, name: str, deadline: int) -> None:
    """``ctx.sleep``/``ctx.sleep_until`` with ``deadline`` in ms since the epoch."""
    run = ctx._run
    history = run.history
    location, key, entry = ctx.begin(name)
    if entry is not None:
        ctx.expect(entry, "sleep", name, key)
        if entry.sleep_state != "pending":
            return
        deadline = entry.deadline
    else:
        if run.mode == "rollback":
            raise RollbackStopError()
        entry = history.add(location, "sleep", deadline=deadline, sleep_state="pending")
        await run.flush()
    if run.mode == "rollback":
        raise RollbackStopError()
    remaining = deadline - run.now_ms()
    if remaining > 0:
        if remaining >= POLL_INTERVAL_MS:
            raise SleepError(deadline)
        await _sleep_abortable(ctx, remaining / 1000)
    entry.sleep_state = "completed"
    history.touch(entry)
    await run.flush()


class WorkflowMessage:
    """A queue message received by a workflow: ``id`` (int), ``name``, ``body``,
    ``created_at`` (ms since the epoch), ``completed``; ``complete(response)`` finishes a
    message received with ``completable=True``."""

    __slots__ = ("_ctx", "_entry", "_live", "body", "completed", "created_at", "id", "name")

    def __init__(
        self,
        ctx: WorkflowContext,
        entry: Entry,
        data: dict[str, Any],
        live: QueueMessage | None,
    ) -> None:
        self._ctx = ctx
        self._entry = entry
        self._live = live
        raw_id = data.get("id", "")
        self.id = int(raw_id) if str(raw_id).isdigit() else 0
        self.name: str = data.get("name", entry.name)
        self.body: Any = data.get("body")
        created = data.get("createdAt", 0)
        self.created_at = int(created) if isinstance(created, (int, float)) else 0
        self.completed = bool(data.get("completed", False))

    async def complete(self, response: Any = None) -> None:
        """Complete the message in the actor's queue (answering a waiting sender) and
        record it; a no-op for a message already completed before a replay."""
        if self.completed:
            if self._live is None:
                return
            from rivetkit.runtime.queue_errors import queue_error

            raise queue_error("already_completed", "Queue message already completed")
        ctx = self._ctx
        if self._live is not None:
            await self._live.complete(response)
        ctx._pending_complete.discard(self.id)
        self.completed = True
        data = dict(self._entry.data) if isinstance(self._entry.data, dict) else {}
        data["completed"] = True
        self._entry.data = data
        ctx._run.history.touch(self._entry)
        await ctx._run.flush()

    def __repr__(self) -> str:
        return f"WorkflowMessage(id={self.id}, name={self.name!r})"


def _names(names: Sequence[str] | str | None) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    return list(dict.fromkeys(names))


def _label(names: list[str]) -> str:
    return "|".join(names) if names else "*"


async def queue_next(
    ctx: WorkflowContext,
    name: str,
    names: Sequence[str] | str | None,
    timeout: float | None,
    completable: bool,
) -> WorkflowMessage:
    """``ctx.queue.next``: one message; a timeout fails (a plain error, as RivetKit)."""
    batch = await queue_next_batch(ctx, name, names, 1, timeout, completable)
    if not batch:
        raise RuntimeError(
            f'queue.next("{name}") timed out before receiving a message. Use '
            "queue.next_batch(...) for optional/time-limited reads."
        )
    return batch[0]


async def queue_next_batch(
    ctx: WorkflowContext,
    name: str,
    names: Sequence[str] | str | None,
    count: int,
    timeout: float | None,
    completable: bool,
) -> list[WorkflowMessage]:
    """``ctx.queue.next_batch``: see :meth:`WorkflowQueue.next_batch`."""
    with ctx._entry():
        return await _next_batch(ctx, name, _names(names), max(1, count), timeout, completable)


async def _next_batch(
    ctx: WorkflowContext,
    name: str,
    wanted: list[str],
    count: int,
    timeout: float | None,
    completable: bool,
) -> list[WorkflowMessage]:
    if ctx._pending_complete:
        raise RuntimeError(
            "Previous completable queue message is not completed. Call "
            "`message.complete(...)` before receiving the next message."
        )
    ctx.check_evicted()
    ctx.check_name(name)
    run = ctx._run
    history = run.history
    rollback = run.mode == "rollback"
    count_loc, count_key = ctx.locate(f"{name}:count")
    recorded = history.entries.get(count_key)
    if rollback and recorded is None:
        raise RollbackStopError()
    deadline: int | None = None
    deadline_entry: Entry | None = None
    if timeout is not None:
        loc, key = ctx.locate(f"{name}:deadline")
        deadline_entry = history.entries.get(key)
        if rollback and deadline_entry is None:
            raise RollbackStopError()
        if deadline_entry is not None and deadline_entry.kind == "sleep":
            deadline = deadline_entry.deadline
        else:
            deadline = run.now_ms() + round(timeout * 1000)
            deadline_entry = history.add(loc, "sleep", deadline=deadline, sleep_state="pending")
            await run.flush()
    if recorded is not None and recorded.kind == "message":
        return await _replayed(ctx, name, int(recorded.data or 0), completable)
    label = _label(wanted)
    if deadline is not None and run.now_ms() >= deadline:
        assert deadline_entry is not None
        deadline_entry.sleep_state = "completed"
        history.touch(deadline_entry)
        history.add(count_loc, "message", name=f"{label}:count", data=0)
        await run.flush()
        return []
    queue = run.instance.queue
    # Taken as completable (kept in the queue) until the history holding them is durable:
    # a crash in between leaves them queued (received again) rather than lost.
    received = await queue.try_next_batch(wanted or None, count=count, completable=True)
    if not received:
        if deadline is None:
            raise MessageWaitError(wanted)
        raise SleepError(deadline, wanted)
    entries = []
    for i, message in enumerate(received):
        loc, _key = ctx.locate(f"{name}:{i}")
        data = {
            _MARKER: 1,
            "id": str(message.id),
            "name": message.name,
            "body": message.body,
            "createdAt": message.created_at,
            "completed": False,
        }
        entries.append(history.add(loc, "message", name=message.name, data=data))
    if deadline_entry is not None:
        deadline_entry.sleep_state = "interrupted"
        history.touch(deadline_entry)
    history.add(count_loc, "message", name=f"{label}:count", data=len(received))
    await run.flush()  # if this fails, the messages stay in flight until the actor stops
    out = []
    for message, entry in zip(received, entries):
        if completable:
            ctx._pending_complete.add(message.id)
            out.append(WorkflowMessage(ctx, entry, entry.data, message))
        else:
            await message.complete(None)
            out.append(WorkflowMessage(ctx, entry, entry.data, None))
    return out


async def _replayed(
    ctx: WorkflowContext, name: str, count: int, completable: bool
) -> list[WorkflowMessage]:
    """The messages a receive recorded. One recorded but still in the actor's queue (the
    process died between the history write and the queue delete) is taken now, so it is
    never received a second time."""
    history = ctx._run.history
    queue = ctx._run.instance.queue
    out = []
    for i in range(count):
        _loc, key = ctx.locate(f"{name}:{i}")
        entry = history.entries.get(key)
        if entry is None or entry.kind != "message":
            raise HistoryDivergedError(f'Expected message "{name}:{i}" at {key}')
        data = entry.data
        if not (isinstance(data, dict) and data.get(_MARKER)):
            data = {"id": "", "name": entry.name, "body": data, "createdAt": 0}
        message = WorkflowMessage(ctx, entry, data, None)
        if message.id and not message.completed:
            leftover = await queue.claim(  # deleted unless completable
                message.id, message.name, message.created_at, completable
            )
            if leftover is not None and completable:
                message._live = leftover
        if completable and not message.completed:
            ctx._pending_complete.add(message.id)
        out.append(message)
    return out
