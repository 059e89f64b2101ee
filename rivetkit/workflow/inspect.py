"""What the inspector needs of a workflow actor (spec §3.5).

* :func:`is_workflow_actor`: the actor's ``run`` handler is a workflow;
* :func:`load_history` / :func:`workflow_state`: the history (names, entries, metadata) and
  the ``[3,1]`` state, from the live run's memory or from the actor's KV;
* :func:`in_flight`: a run is going on (a replay is refused meanwhile);
* :func:`replay`: trim the history as RivetKit's ``replayWorkflowFromStep`` and restart the
  run handler;
* :func:`add_history_listener` / :func:`remove_history_listener`: be told after each flush
  that changed the history, and at each run start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from rivetkit.errors import RivetError, actor_error
from rivetkit.runtime.hooks import hook_fn, run_hook
from rivetkit.workflow import storage
from rivetkit.workflow.driver import runner_of
from rivetkit.workflow.history import History, is_under

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition
    from rivetkit.protocol.workflow_engine import types as T
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "WorkflowHistory",
    "add_history_listener",
    "in_flight",
    "is_workflow_actor",
    "load_history",
    "remove_history_listener",
    "replay",
    "snapshot",
    "take_early_listeners",
    "workflow_state",
]

#: Listeners registered before the actor's first run (moved to its runner at the start).
_early: dict[int, list[Callable[[History], None]]] = {}


class WorkflowHistory(NamedTuple):
    """A snapshot of a workflow's history in the codec's types: ``names`` (the registry),
    ``entries`` (sorted by in-memory key, as RivetKit's snapshot), ``entry_metadata`` (by
    entry id, in load then creation order) and ``state`` (the ``[3,1]`` text)."""

    names: list[str]
    entries: list[T.Entry]
    entry_metadata: dict[str, T.EntryMetadata]
    state: str


def is_workflow_actor(definition: ActorDefinition) -> bool:
    """True when the actor's ``run`` handler was made by :func:`rivetkit.workflow.workflow`."""
    fn = hook_fn(definition, "run")
    return bool(getattr(fn, "__rivet_workflow__", False))


def snapshot(history: History) -> WorkflowHistory:
    """The codec-typed snapshot of ``history``."""
    keyed = sorted(history.entries.items(), key=lambda item: item[0])
    return WorkflowHistory(
        list(history.names),
        [storage.entry_to_wire(e) for _, e in keyed],
        {i: storage.metadata_to_wire(m) for i, m in history.metadata.items()},
        history.state,
    )


async def load_history(instance: ActorInstance) -> WorkflowHistory:
    """The history of the actor's workflow: the live run's, else the stored one."""
    runner = runner_of(instance)
    if runner is not None and runner.history is not None:
        return snapshot(runner.history)
    return snapshot(await storage.load(instance))


def workflow_state(instance: ActorInstance) -> str | None:
    """The workflow's state text (None before its first run in this process)."""
    runner = runner_of(instance)
    if runner is None or runner.history is None:
        return None
    return runner.history.state


def in_flight(instance: ActorInstance) -> bool:
    """The run handler is active (executing or waiting)."""
    task = instance._run_task
    runner = runner_of(instance)
    return (task is not None and not task.done()) or (runner is not None and runner.active)


def add_history_listener(instance: ActorInstance, listener: Callable[[History], None]) -> None:
    """Call ``listener(history)`` after each flush that changed something, and at each run
    start. Use :func:`snapshot` on the history it receives."""
    runner = runner_of(instance)
    if runner is not None:
        runner.listeners.append(listener)
    else:
        _early.setdefault(id(instance), []).append(listener)


def remove_history_listener(instance: ActorInstance, listener: Callable[[History], None]) -> None:
    """Stop calling ``listener``."""
    runner = runner_of(instance)
    if runner is not None and listener in runner.listeners:
        runner.listeners.remove(listener)
    early = _early.get(id(instance))
    if early and listener in early:
        early.remove(listener)


def take_early_listeners(instance: ActorInstance) -> list[Callable[[History], None]]:
    """The listeners registered before the runner existed (called by the runner)."""
    return _early.pop(id(instance), [])


def _in_flight_error() -> RivetError:
    return actor_error(
        "workflow_in_flight",
        "Workflow replay is unavailable while the workflow is currently in flight.",
    )


async def replay(instance: ActorInstance, entry_id: str | None = None) -> WorkflowHistory:
    """Replay the workflow from ``entry_id`` (a step; None: from the start), as RivetKit's
    inspector does, and restart the run handler. Returns the trimmed history.

    Raises ``actor/workflow_in_flight`` while a run is active or the stored state is
    ``pending``/``running``; ``actor/internal_error`` when the entry is missing or not a
    step, or a step outside the trimmed part is running.
    """
    if not is_workflow_actor(instance.definition):
        raise actor_error("internal_error", "this actor has no workflow")
    if in_flight(instance):
        raise _in_flight_error()
    history = await storage.load(instance)
    if history.state in ("pending", "running"):
        raise _in_flight_error()
    now = int(instance.clock() * 1000)

    def created(item: tuple[str, Any]) -> tuple[int, str]:
        meta = history.metadata.get(item[1].id)
        return (meta.created_at if meta is not None else now, item[0])

    ordered = sorted(history.entries.items(), key=created)
    if entry_id is None:
        doomed = ordered
    else:
        found = next((i for i, (_, e) in enumerate(ordered) if e.id == entry_id), None)
        if found is None:
            raise actor_error("internal_error", f"Workflow step not found: {entry_id}")
        target = ordered[found][1]
        if target.kind != "step":
            raise actor_error("internal_error", "Workflow replay target must be a step")
        boundary = target
        for _, entry in ordered:  # the innermost enclosing loop
            if (
                entry.kind == "loop"
                and len(entry.location) < len(target.location)
                and is_under(entry.location, target.location)
                and (boundary is target or len(entry.location) > len(boundary.location))
            ):
                boundary = entry
        start = next(i for i, (_, e) in enumerate(ordered) if e is boundary)
        doomed = ordered[start:]
    doomed_ids = {e.id for _, e in doomed}
    for _, entry in ordered:
        meta = history.metadata.get(entry.id)
        if entry.id not in doomed_ids and meta is not None and meta.status == "running":
            raise actor_error(
                "internal_error", "Cannot replay a workflow while a step is currently running"
            )
    keys = []
    for _, entry in doomed:
        keys.append(storage.history_key(entry.location))
        if entry.id in history.metadata:
            keys.append(storage.metadata_key(entry.id))
    keys += [storage.field_key(2), storage.field_key(3)]
    await storage.delete_keys(instance, keys)
    await storage.write_fields(instance, [(1, b"sleeping")])
    runner = runner_of(instance)
    trimmed = await storage.load(instance)
    if runner is not None:
        runner.history = trimmed
        runner.notify()
    _restart_run(instance)
    return snapshot(trimmed)


def _restart_run(instance: ActorInstance) -> None:
    """Start the actor's ``run`` handler again (it replays the trimmed history)."""
    instance._run_task = instance._loop.create_task(run_hook(instance))
    instance.sleep_policy.reset_idle()
