"""The inspector's view of a workflow actor (spec workflows.md §3.5).

Two forms of one history:

* the **transport** bytes: RivetKit's ``WorkflowHistory`` (raw BARE, no version prefix), the
  layout of the workflow-engine v1 storage types with the ``Cbor`` fields re-encoded in the
  client's JSON-compat CBOR. The inspector WebSocket carries them (``Init.workflowHistory``,
  ``WorkflowHistoryResponse``, ``WorkflowReplayResponse``, ``WorkflowHistoryUpdated``);
* the **JSON** form of ``GET /inspector/workflow-history`` and ``POST /inspector/workflow/replay``:
  those bytes decoded, tags ``Workflow<Kind>Entry``, enum values as UPPER-CASE names, CBOR
  values decoded (``null`` when undecodable), times as numbers, byte strings as number arrays.

Routes (the inspector's bearer token, as every route):

=================================== ======== ==================================================
path                                method   answer
=================================== ======== ==================================================
``/inspector/workflow-history``     GET      ``{history, workflowState, isWorkflowEnabled}``
``/inspector/workflow/replay``      POST     ``{entryId?}`` in; the same shape, after the replay
=================================== ======== ==================================================

A replay while the workflow is in flight (state ``pending`` or ``running``, or its run handler
busy) answers 409 ``actor.workflow_in_flight``; other replay failures (an unknown entry id, an
entry that is not a step) answer 500 ``actor.internal_error`` with the reason. Actors whose
``run`` is not a workflow answer ``{history: null, workflowState: null, isWorkflowEnabled:
false}`` on both routes.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import cbor2

from rivetkit.errors import ProtocolError, RivetError
from rivetkit.protocol.bare import codec_for
from rivetkit.protocol.values import cbor_dumps, cbor_loads, cbor_loads_raw
from rivetkit.protocol.workflow_engine.types import (
    BranchStatus,
    BranchStatusType,
    Entry,
    EntryKind,
    EntryMetadata,
    EntryStatus,
    JoinEntry,
    LoopEntry,
    LoopIterationMarker,
    MessageEntry,
    RaceEntry,
    RemovedEntry,
    RollbackCheckpointEntry,
    SleepEntry,
    SleepState,
    StepEntry,
    VersionCheckEntry,
)

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "IN_FLIGHT_STATUS",
    "WorkflowHistory",
    "decode_history",
    "encode_history",
    "history_bytes",
    "history_json",
    "in_flight_error",
    "is_enabled",
    "replay",
    "replay_json",
    "route",
    "subscribe",
    "summary_fields",
    "to_transport",
    "transport_json",
    "watch",
]

logger = logging.getLogger("rivetkit.inspector")

#: HTTP status of ``actor.workflow_in_flight``.
IN_FLIGHT_STATUS: Final = 409

_IN_FLIGHT_MESSAGE: Final = (
    "Workflow replay is unavailable while the workflow is currently in flight."
)


class WorkflowHistory(NamedTuple):
    """RivetKit's transport ``WorkflowHistory``: names, entries and their metadata."""

    name_registry: list[str]
    entries: list[Entry]
    entry_metadata: dict[str, EntryMetadata]


_HISTORY: Final = codec_for(WorkflowHistory, "invalid_workflow_history")
#: Instances whose history changes reach their inspector observer (see :func:`watch`).
_watched: weakref.WeakSet[ActorInstance] = weakref.WeakSet()


def in_flight_error() -> RivetError:
    """``actor.workflow_in_flight``: a replay asked while the workflow runs."""
    return RivetError("actor", "workflow_in_flight", _IN_FLIGHT_MESSAGE)


# -- transport ---------------------------------------------------------------------------------


def _compat(raw: bytes) -> bytes:
    """Stored cbor-x bytes re-encoded in the JSON-compat CBOR (kept as they are if undecodable)."""
    try:
        return cbor_dumps(cbor_loads_raw(raw))
    except (RivetError, ValueError):
        return raw


def _compat_opt(raw: bytes | None) -> bytes | None:
    return None if raw is None else _compat(raw)


def _branches(branches: Mapping[str, BranchStatus]) -> dict[str, BranchStatus]:
    return {
        name: BranchStatus(b.status, _compat_opt(b.output), b.error) for name, b in branches.items()
    }


def _kind(kind: EntryKind) -> EntryKind:
    if isinstance(kind, StepEntry):
        return StepEntry(_compat_opt(kind.output), kind.error)
    if isinstance(kind, LoopEntry):
        return LoopEntry(_compat(kind.state), kind.iteration, _compat_opt(kind.output))
    if isinstance(kind, MessageEntry):
        return MessageEntry(kind.name, _compat(kind.message_data))
    if isinstance(kind, JoinEntry):
        return JoinEntry(_branches(kind.branches))
    if isinstance(kind, RaceEntry):
        return RaceEntry(kind.winner, _branches(kind.branches))
    return kind


def to_transport(
    names: Iterable[str], entries: Iterable[Entry], metadata: Mapping[str, EntryMetadata]
) -> WorkflowHistory:
    """The transport form of a history read from storage (stored CBOR made JSON-compat)."""
    return WorkflowHistory(
        list(names),
        [Entry(e.id, list(e.location), _kind(e.kind)) for e in entries],
        dict(metadata),
    )


def encode_history(history: WorkflowHistory) -> bytes:
    """The transport bytes of ``history`` (raw BARE, no version prefix)."""
    return _HISTORY.encode(history)


def decode_history(data: bytes) -> WorkflowHistory:
    """Decode transport bytes; raises :class:`ProtocolError` on bad bytes."""
    value: WorkflowHistory = _HISTORY.decode(data)
    return value


# -- JSON --------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if value is None or value is cbor2.undefined:
        return None
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_value(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    return str(value)


def _cbor_json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return _json_value(cbor_loads(raw))
    except ProtocolError:
        return None


def _branches_json(branches: Mapping[str, BranchStatus]) -> dict[str, Any]:
    return {
        name: {
            "status": BranchStatusType(b.status).name,
            "output": _cbor_json(b.output),
            "error": b.error,
        }
        for name, b in branches.items()
    }


def _kind_json(kind: EntryKind) -> dict[str, Any]:
    val: dict[str, Any]
    if isinstance(kind, StepEntry):
        val = {"output": _cbor_json(kind.output), "error": kind.error}
    elif isinstance(kind, LoopEntry):
        val = {
            "state": _cbor_json(kind.state),
            "iteration": kind.iteration,
            "output": _cbor_json(kind.output),
        }
    elif isinstance(kind, SleepEntry):
        val = {"deadline": kind.deadline, "state": SleepState(kind.state).name}
    elif isinstance(kind, MessageEntry):
        val = {"name": kind.name, "messageData": _cbor_json(kind.message_data)}
    elif isinstance(kind, RollbackCheckpointEntry):
        val = {"name": kind.name}
    elif isinstance(kind, JoinEntry):
        val = {"branches": _branches_json(kind.branches)}
    elif isinstance(kind, RaceEntry):
        val = {"winner": kind.winner, "branches": _branches_json(kind.branches)}
    elif isinstance(kind, RemovedEntry):
        val = {"originalType": kind.original_type, "originalName": kind.original_name}
    elif isinstance(kind, VersionCheckEntry):
        val = {"resolved": kind.resolved, "latest": kind.latest}
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a workflow entry kind: {type(kind).__name__}")
    return {"tag": f"Workflow{type(kind).__name__}", "val": val}


def _segment_json(segment: Any) -> dict[str, Any]:
    if isinstance(segment, LoopIterationMarker):
        return {
            "tag": "WorkflowLoopIterationMarker",
            "val": {"loop": segment.loop, "iteration": segment.iteration},
        }
    return {"tag": "WorkflowNameIndex", "val": segment[0]}


def _metadata_json(meta: EntryMetadata) -> dict[str, Any]:
    return {
        "status": EntryStatus(meta.status).name,
        "error": meta.error,
        "attempts": meta.attempts,
        "lastAttemptAt": meta.last_attempt_at,
        "createdAt": meta.created_at,
        "completedAt": meta.completed_at,
        "rollbackCompletedAt": meta.rollback_completed_at,
        "rollbackError": meta.rollback_error,
    }


def transport_json(history: WorkflowHistory) -> dict[str, Any]:
    """The JSON form of a transport history (what the HTTP routes answer as ``history``)."""
    return {
        "nameRegistry": list(history.name_registry),
        "entries": [
            {
                "id": entry.id,
                "location": [_segment_json(segment) for segment in entry.location],
                "kind": _kind_json(entry.kind),
            }
            for entry in history.entries
        ],
        "entryMetadata": {
            entry_id: _metadata_json(meta) for entry_id, meta in history.entry_metadata.items()
        },
    }


# -- the actor's workflow ----------------------------------------------------------------------


def is_enabled(instance: ActorInstance) -> bool:
    """True when the actor's ``run`` is a workflow (``isWorkflowEnabled``)."""
    from rivetkit.workflow import inspect

    return inspect.is_workflow_actor(instance.definition)


async def _history(instance: ActorInstance) -> WorkflowHistory | None:
    from rivetkit.workflow import inspect

    loaded = await inspect.load_history(instance)
    if loaded is None:
        return None
    return to_transport(loaded.names, loaded.entries, loaded.entry_metadata)


async def history_bytes(instance: ActorInstance) -> bytes | None:
    """The transport bytes of the actor's workflow history (None without a workflow)."""
    if not is_enabled(instance):
        return None
    history = await _history(instance)
    return None if history is None else encode_history(history)


async def history_json(instance: ActorInstance) -> dict[str, Any]:
    """``{history, workflowState, isWorkflowEnabled}`` of the actor, as the routes answer."""
    if not is_enabled(instance):
        return {"history": None, "workflowState": None, "isWorkflowEnabled": False}
    from rivetkit.workflow import inspect

    history = await _history(instance)
    return {
        "history": None if history is None else transport_json(history),
        "workflowState": inspect.workflow_state(instance),
        "isWorkflowEnabled": True,
    }


async def summary_fields(instance: ActorInstance) -> dict[str, Any]:
    """``isWorkflowEnabled``, ``workflowState`` and ``workflowHistory`` of the summary."""
    view = await history_json(instance)
    return {
        "isWorkflowEnabled": view["isWorkflowEnabled"],
        "workflowState": view["workflowState"],
        "workflowHistory": view["history"],
    }


async def replay(instance: ActorInstance, entry_id: str | None) -> WorkflowHistory | None:
    """Replay the workflow from the step ``entry_id`` (from the start when None); the
    trimmed history the workflow restarts from (None for an actor without a workflow).

    Raises ``actor.workflow_in_flight`` while the workflow runs, ``actor.internal_error``
    (with the reason) for an unknown entry or one that is not a step.
    """
    if not is_enabled(instance):
        return None
    from rivetkit.workflow import inspect

    if inspect.in_flight(instance):
        raise in_flight_error()
    try:
        trimmed = await inspect.replay(instance, entry_id)
    except RivetError:
        raise
    except Exception as exc:
        raise RivetError("actor", "internal_error", str(exc)) from exc
    return to_transport(trimmed.names, trimmed.entries, trimmed.entry_metadata)


async def replay_json(instance: ActorInstance, entry_id: str | None) -> dict[str, Any]:
    """The answer of ``POST /inspector/workflow/replay``: the shape of :func:`history_json`
    with the history the workflow restarts from."""
    trimmed = await replay(instance, entry_id)
    if trimmed is None:
        return {"history": None, "workflowState": None, "isWorkflowEnabled": False}
    from rivetkit.workflow import inspect

    return {
        "history": transport_json(trimmed),
        "workflowState": inspect.workflow_state(instance),
        "isWorkflowEnabled": True,
    }


def subscribe(instance: ActorInstance, listener: Callable[[bytes], None]) -> Callable[[], None]:
    """Call ``listener(transport_bytes)`` whenever the workflow history changes.

    Returns the function that unsubscribes. A no-op for actors without a workflow.
    """
    if not is_enabled(instance):
        return lambda: None
    from rivetkit.workflow import inspect

    def on_update(live: Any) -> None:
        loaded = inspect.snapshot(live)
        history = to_transport(loaded.names, loaded.entries, loaded.entry_metadata)
        try:
            listener(encode_history(history))
        except Exception:
            logger.exception("workflow history listener failed")

    inspect.add_history_listener(instance, on_update)
    return lambda: inspect.remove_history_listener(instance, on_update)


def watch(instance: ActorInstance) -> None:
    """Signal ``instance.inspector_observer("workflow")`` whenever the workflow history
    changes (the inspector WebSocket then pushes ``WorkflowHistoryUpdated``). Idempotent; a
    no-op for actors without a workflow."""
    if instance in _watched or not is_enabled(instance):
        return
    from rivetkit.workflow import inspect

    def on_update(_history: Any) -> None:
        observer = instance.inspector_observer
        if observer is not None:
            observer("workflow")

    _watched.add(instance)
    inspect.add_history_listener(instance, on_update)


async def route(
    instance: ActorInstance, method: str, path: str, body: Callable[[], Any]
) -> dict[str, Any] | None:
    """The JSON answer of a workflow route, or None when ``(method, path)`` is not one.

    ``body`` is awaited for the replay's JSON object body.
    """
    if (method, path) == ("GET", "/inspector/workflow-history"):
        return await history_json(instance)
    if (method, path) == ("POST", "/inspector/workflow/replay"):
        data = await body()
        entry_id = data.get("entryId")
        if entry_id is not None and not isinstance(entry_id, str):
            raise RivetError(
                "actor", "invalid_request", "Invalid inspector JSON body: entryId must be a string"
            )
        return await replay_json(instance, entry_id)
    return None
