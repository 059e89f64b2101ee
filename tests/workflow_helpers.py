"""Helpers of the workflow tests: read a workflow's stored history beside the runtime."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rivetkit.protocol.values import cbor_loads_raw
from rivetkit.runtime import keys
from rivetkit.workflow import storage
from rivetkit.workflow.history import History


async def stored(t: Any, actor_id: str) -> History:
    """The workflow history as stored in the actor's KV now."""
    pairs = await t.driver.kv_list(actor_id, keys.WORKFLOW_PREFIX, b"\x06\x02")
    return storage.load_history(pairs)


async def stored_state(t: Any, actor_id: str) -> dict[str, Any] | None:
    """The actor's persisted state (the snapshot at ``[1]``), decoded."""
    from rivetkit.protocol import actor_persist
    from rivetkit.protocol.values import cbor_loads

    (raw,) = await t.driver.kv_get(actor_id, [keys.PERSIST])
    if raw is None:
        return None
    snap = actor_persist.ACTOR.decode(raw)
    return cbor_loads(snap.state) if snap.state else None


async def wait_state(t: Any, actor_id: str, *states: str, timeout: float = 5.0) -> History:
    """Wait until the stored workflow state is one of ``states``; return the history."""
    deadline = time.monotonic() + timeout
    while True:
        history = await stored(t, actor_id)
        if history.state in states:
            return history
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow state {history.state!r}, wanted {states}")
        await asyncio.sleep(0.01)


def by_name(history: History, key: str) -> Any:
    """The entry at the in-memory key ``key`` (e.g. ``"L/~0/x"``)."""
    return history.entries.get(key)


def error_record(history: History) -> dict[str, Any] | None:
    """The workflow's error record ``[3,3]``."""
    return history.error


__all__ = ["by_name", "cbor_loads_raw", "error_record", "stored", "stored_state", "wait_state"]


def wf_actor(name: str = "wf", state: Any = None, **options: Any) -> Any:
    """An actor definition with the actions ``ping`` (starts it) and ``get`` (its state);
    ``options`` are :class:`~rivetkit.actor.ActorOptions` fields."""
    from rivetkit import actor
    from rivetkit.actor import ActorOptions

    definition = actor(name, state={} if state is None else state, options=ActorOptions(**options))

    @definition.action
    def ping(c: Any) -> bool:
        return True

    @definition.action
    def get(c: Any) -> Any:
        return c.state

    return definition


async def started(handle: Any) -> str:
    """Start the actor of ``handle`` (an action call wakes it); its id."""
    await handle.action("ping")
    result: str = await handle.resolve()
    return result
