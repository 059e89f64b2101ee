"""A workflow's history in the actor's KV, under prefix ``[6,1]`` (spec §2).

:func:`load` reads every pair under ``[6,1]`` into a :class:`~rivetkit.workflow.history.History`;
:func:`flush` writes what changed. The writes of a flush (new names, dirty entries, dirty
metadata, then the state, output and error fields) go out in **one** atomic KV write together
with the actor's state snapshot (``[1]``), through the runtime's
:meth:`~rivetkit.runtime.persistence.StatePersistence.flush`: a step's history entry and the
state its body changed are durable together or not at all. Deletions (loop pruning, race
losers, replay) follow in separate writes, as RivetKit applies them after the batch.

Keys and values are the bytes of RivetKit's workflow engine: the FoundationDB tuple keys of
:mod:`rivetkit.protocol.workflow_engine.keys` and the vbare values of
:mod:`rivetkit.protocol.workflow_engine.codec`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rivetkit.drivers.base import prefix_end
from rivetkit.protocol.workflow_engine import types as T
from rivetkit.runtime.keys import WORKFLOW_PREFIX
from rivetkit.workflow import wire
from rivetkit.workflow.history import UNSET, Branch, Entry, History, Location, Metadata

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "STATES",
    "entry_from_wire",
    "entry_to_wire",
    "flush",
    "load",
    "load_history",
    "metadata_from_wire",
    "metadata_to_wire",
]

#: The state texts the engine accepts at ``[3,1]``.
STATES = frozenset(s.value for s in T.WorkflowStateText)

_NAMES, _HISTORY, _WORKFLOW, _METADATA = 1, 2, 3, 4
_STATE, _OUTPUT, _ERROR, _INPUT = 1, 2, 3, 4

_SLEEP_STATES = ("pending", "completed", "interrupted")
_BRANCH_STATES = ("pending", "running", "completed", "failed", "cancelled")
_ENTRY_STATES = ("pending", "running", "completed", "failed", "exhausted")


def _pk(*items: Any) -> bytes:
    return WORKFLOW_PREFIX + wire.pack(items)


def _loc_items(location: Location) -> tuple[Any, ...]:
    return tuple(s if isinstance(s, int) else (s[0], s[1]) for s in location)


def history_key(location: Location) -> bytes:
    """The full actor KV key of the history entry at ``location``."""
    return _pk(_HISTORY, *_loc_items(location))


def metadata_key(entry_id: str) -> bytes:
    """The full actor KV key of the metadata row of ``entry_id``."""
    return _pk(_METADATA, entry_id)


def field_key(field: int) -> bytes:
    """The full actor KV key of a workflow field (1 state, 2 output, 3 error, 4 input)."""
    return _pk(_WORKFLOW, field)


# -- conversions ------------------------------------------------------------------------------


def _opt_cbor(value: Any) -> bytes | None:
    return None if value is UNSET or value is None else wire.cbor_encode(value)


def _from_opt(raw: bytes | None) -> Any:
    return UNSET if raw is None else wire.cbor_decode(raw)


def _branch_to_wire(b: Branch) -> T.BranchStatus:
    return T.BranchStatus(
        T.BranchStatusType(_BRANCH_STATES.index(b.status)), _opt_cbor(b.output), b.error
    )


def _branch_from_wire(b: T.BranchStatus) -> Branch:
    return Branch(_BRANCH_STATES[int(b.status)], _from_opt(b.output), b.error)


def entry_to_wire(entry: Entry) -> T.Entry:
    """The codec's :class:`~rivetkit.protocol.workflow_engine.types.Entry` of ``entry``."""
    kind = entry.kind
    data: T.EntryKind
    if kind == "step":
        data = T.StepEntry(_opt_cbor(entry.output), entry.error)
    elif kind == "loop":
        data = T.LoopEntry(
            wire.cbor_encode_undefined(entry.state), entry.iteration, _opt_cbor(entry.output)
        )
    elif kind == "sleep":
        data = T.SleepEntry(entry.deadline, T.SleepState(_SLEEP_STATES.index(entry.sleep_state)))
    elif kind == "message":
        data = T.MessageEntry(entry.name, wire.cbor_encode(entry.data))
    elif kind == "rollback_checkpoint":
        data = T.RollbackCheckpointEntry(entry.name)
    elif kind == "join":
        data = T.JoinEntry({k: _branch_to_wire(b) for k, b in entry.branches.items()})
    elif kind == "race":
        data = T.RaceEntry(entry.winner, {k: _branch_to_wire(b) for k, b in entry.branches.items()})
    elif kind == "removed":
        data = T.RemovedEntry(entry.original_type, entry.original_name)
    elif kind == "version_check":
        data = T.VersionCheckEntry(entry.resolved, entry.latest)
    else:  # pragma: no cover - every kind is listed above
        raise ValueError(f"unknown entry kind {kind!r}")
    location: T.Location = [
        T.NameIndex(s) if isinstance(s, int) else T.LoopIterationMarker(s[0], s[1])
        for s in entry.location
    ]
    return T.Entry(entry.id, location, data)


def entry_from_wire(value: T.Entry) -> Entry:
    """Our mutable :class:`~rivetkit.workflow.history.Entry` of a decoded one."""
    location: Location = tuple(
        s.value if isinstance(s, T.NameIndex) else (s.loop, s.iteration) for s in value.location
    )
    data = value.kind
    entry = Entry(value.id, location, "step")
    if isinstance(data, T.StepEntry):
        entry.output, entry.error = _from_opt(data.output), data.error
    elif isinstance(data, T.LoopEntry):
        entry.kind = "loop"
        entry.state = wire.cbor_decode(data.state)
        entry.iteration = data.iteration
        entry.output = _from_opt(data.output)
    elif isinstance(data, T.SleepEntry):
        entry.kind = "sleep"
        entry.deadline, entry.sleep_state = data.deadline, _SLEEP_STATES[int(data.state)]
    elif isinstance(data, T.MessageEntry):
        entry.kind = "message"
        entry.name, entry.data = data.name, wire.cbor_decode(data.message_data)
    elif isinstance(data, T.RollbackCheckpointEntry):
        entry.kind, entry.name = "rollback_checkpoint", data.name
    elif isinstance(data, T.JoinEntry):
        entry.kind = "join"
        entry.branches = {k: _branch_from_wire(b) for k, b in data.branches.items()}
    elif isinstance(data, T.RaceEntry):
        entry.kind, entry.winner = "race", data.winner
        entry.branches = {k: _branch_from_wire(b) for k, b in data.branches.items()}
    elif isinstance(data, T.RemovedEntry):
        entry.kind = "removed"
        entry.original_type, entry.original_name = data.original_type, data.original_name
    elif isinstance(data, T.VersionCheckEntry):
        entry.kind, entry.resolved, entry.latest = "version_check", data.resolved, data.latest
    return entry


def metadata_to_wire(meta: Metadata) -> T.EntryMetadata:
    """The codec's metadata row of ``meta``."""
    return T.EntryMetadata(
        T.EntryStatus(_ENTRY_STATES.index(meta.status)),
        meta.error,
        meta.attempts,
        meta.last_attempt_at,
        meta.created_at,
        meta.completed_at,
        meta.rollback_completed_at,
        meta.rollback_error,
    )


def metadata_from_wire(value: T.EntryMetadata) -> Metadata:
    """Our mutable metadata of a decoded row."""
    return Metadata(
        _ENTRY_STATES[int(value.status)],
        value.error,
        value.attempts,
        value.last_attempt_at,
        value.created_at,
        value.completed_at,
        value.rollback_completed_at,
        value.rollback_error,
    )


# -- load and flush ---------------------------------------------------------------------------


def load_history(pairs: list[tuple[bytes, bytes]]) -> History:
    """A :class:`History` from the KV pairs under ``[6,1]`` (full keys, in key order)."""
    history = History()
    names: dict[int, str] = {}
    skip = len(WORKFLOW_PREFIX)
    for key, value in pairs:
        items = wire.unpack(key[skip:])
        if not items:
            continue
        head = items[0]
        if head == _NAMES:
            names[int(items[1])] = value.decode()
        elif head == _HISTORY:
            entry = entry_from_wire(wire.decode_entry(value))
            history.entries[_tmp_key(entry.location)] = entry
        elif head == _METADATA:
            history.metadata[str(items[1])] = metadata_from_wire(wire.decode_metadata(value))
        elif head == _WORKFLOW:
            field = items[1]
            if field == _STATE:
                text = value.decode()
                if text not in STATES:
                    raise ValueError(f"Invalid workflow state: {text}")
                history.state = text
            elif field == _OUTPUT:
                history.output = wire.cbor_decode(value)
            elif field == _ERROR:
                history.error = wire.cbor_decode(value)
            elif field == _INPUT:
                history.has_input = True
        # prefix 5 (trace context) and anything else: ignored
    history.set_names([names[i] for i in sorted(names)])
    # Re-key the entries by their name-based key now that the names are known.
    history.entries = {history.key(e.location): e for e in history.entries.values()}
    return history


def _tmp_key(location: Location) -> str:
    return repr(location)


async def load(instance: ActorInstance) -> History:
    """Read the workflow's history from the actor's KV."""
    return load_history(await instance.kv_list_prefix(WORKFLOW_PREFIX))


def flush_writes(history: History) -> list[tuple[bytes, bytes]]:
    """The puts of a flush, in RivetKit's order, and mark them clean."""
    puts: list[tuple[bytes, bytes]] = []
    names = history.names
    for index in range(history.flushed_names, len(names)):
        puts.append((_pk(_NAMES, index), names[index].encode()))
    history.flushed_names = len(names)
    entries = history.entries
    for key in history.dirty_entries:
        entry = entries.get(key)
        if entry is not None:
            puts.append((history_key(entry.location), wire.encode_entry(entry_to_wire(entry))))
    history.dirty_entries.clear()
    metadata = history.metadata
    for entry_id in history.dirty_metadata:
        meta = metadata.get(entry_id)
        if meta is not None:
            puts.append((metadata_key(entry_id), wire.encode_metadata(metadata_to_wire(meta))))
    history.dirty_metadata.clear()
    if history.state_dirty:
        puts.append((field_key(_STATE), history.state.encode()))
        history.state_dirty = False
    if history.output_dirty:
        if history.output is not UNSET:
            puts.append((field_key(_OUTPUT), wire.cbor_encode(history.output)))
        history.output_dirty = False
    if history.error_dirty and history.error is not None:
        puts.append((field_key(_ERROR), wire.cbor_encode(history.error)))
        history.error_dirty = False
    if history.input_dirty:
        puts.append((field_key(_INPUT), b"\xf7"))  # the input is always undefined
        history.input_dirty = False
        history.has_input = True
    return puts


def flush_deletes(history: History) -> tuple[list[bytes], list[tuple[bytes, bytes | None]]]:
    """The key deletes and range deletes of a flush, and forget them."""
    keys = [history_key(loc) for loc in history.deleted_locations]
    keys += [metadata_key(i) for i in history.deleted_metadata]
    ranges: list[tuple[bytes, bytes | None]] = []
    for scope in history.deleted_scopes:
        first = history_key(scope)
        ranges.append((first, prefix_end(first)))
    for loop, index, start, end in history.deleted_ranges:
        ranges.append(
            (
                _pk(_HISTORY, *_loc_items(loop), (index, start)),
                _pk(_HISTORY, *_loc_items(loop), (index, end)),
            )
        )
    history.deleted_locations = []
    history.deleted_metadata = []
    history.deleted_scopes = []
    history.deleted_ranges = []
    return keys, ranges


async def flush(instance: ActorInstance, history: History) -> bool:
    """Write what changed: the puts with the actor's snapshot in one atomic write, then the
    deletions. Returns whether anything was written."""
    if not history.dirty:
        return False
    puts = flush_writes(history)
    keys, ranges = flush_deletes(history)
    await instance.persistence.flush(extra=puts)
    driver, actor_id = instance.driver, instance.actor_id
    for start, end in ranges:
        await driver.kv_delete_range(actor_id, start, end)
    for i in range(0, len(keys), 128):
        await driver.kv_write(actor_id, deletes=keys[i : i + 128])
    return True


async def delete_keys(instance: ActorInstance, keys: list[bytes]) -> None:
    """Delete ``keys`` (full actor KV keys) in batches of 128."""
    for i in range(0, len(keys), 128):
        await instance.driver.kv_write(instance.actor_id, deletes=keys[i : i + 128])


async def write_fields(instance: ActorInstance, puts: list[tuple[int, bytes]]) -> None:
    """Write workflow fields directly (replay's state reset)."""
    await instance.driver.kv_write(instance.actor_id, puts=[(field_key(f), v) for f, v in puts])
