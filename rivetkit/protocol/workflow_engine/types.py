"""workflow-engine v1: one Python type per type of RivetKit's ``workflow-engine/v1.bare``.

Names are the schema's; fields are snake_case (``message_data`` is ``messageData`` on the
wire); the field order is the wire order. ``Cbor`` fields hold the raw CBOR bytes as stored
(see :mod:`rivetkit.protocol.workflow_engine.codec` for turning them into values).

Two schema types are not records in the schema but must be here:

* ``NameIndex`` is a ``u32`` alias. As a member of the ``PathSegment`` union it is the record
  :class:`NameIndex` with one ``index`` field, whose bytes are the ``u32``'s; where the schema
  uses it as a plain field (``LoopIterationMarker.loop``) the field is a ``U32``.
* ``Location`` (``list<PathSegment>``) and ``EntryKind`` (a union) are type aliases.

:class:`WorkflowStateText` is not a schema type: it is the ASCII text RivetKit's engine stores
at the workflow state key (spec §2.2), which is what storage uses instead of ``WorkflowState``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, TypeAlias

from rivetkit.protocol.schema import U32, U64

__all__ = [
    "BranchStatus",
    "BranchStatusType",
    "Cbor",
    "Entry",
    "EntryKind",
    "EntryMetadata",
    "EntryStatus",
    "JoinEntry",
    "Location",
    "LoopEntry",
    "LoopIterationMarker",
    "Message",
    "MessageEntry",
    "NameIndex",
    "PathSegment",
    "RaceEntry",
    "RemovedEntry",
    "RollbackCheckpointEntry",
    "SleepEntry",
    "SleepState",
    "StepEntry",
    "VersionCheckEntry",
    "WorkflowMetadata",
    "WorkflowState",
    "WorkflowStateText",
]

#: Opaque user data: the raw CBOR bytes.
Cbor: TypeAlias = bytes


class NameIndex(NamedTuple):
    """A path segment naming an entry: an index into the name registry (a ``u32``)."""

    value: U32


class LoopIterationMarker(NamedTuple):
    """A path segment for one iteration of a loop (``loop`` is the loop's name index)."""

    loop: U32
    iteration: U32


#: A segment of a location: tag 0 a name index, tag 1 a loop iteration marker.
PathSegment: TypeAlias = NameIndex | LoopIterationMarker
#: Where an entry sits in the workflow's execution tree, from the root.
Location: TypeAlias = list[PathSegment]


class EntryStatus(enum.IntEnum):
    """Status of a step or loop entry, kept in its metadata."""

    PENDING = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    EXHAUSTED = 4


class SleepState(enum.IntEnum):
    """State of a sleep entry."""

    PENDING = 0
    COMPLETED = 1
    INTERRUPTED = 2


class BranchStatusType(enum.IntEnum):
    """Status of one branch of a join or race."""

    PENDING = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    CANCELLED = 4


class StepEntry(NamedTuple):
    """A step: its output (absent for ``undefined``/``None``) or its error text."""

    output: Cbor | None
    error: str | None


class LoopEntry(NamedTuple):
    """A loop: its carried state, the current iteration, its output once it completed."""

    state: Cbor
    iteration: U32
    output: Cbor | None


class SleepEntry(NamedTuple):
    """A sleep: its deadline in ms since the epoch and its state."""

    deadline: U64
    state: SleepState


class MessageEntry(NamedTuple):
    """A consumed queue message (also the ``<name>:count`` record of a queue wait)."""

    name: str
    message_data: Cbor


class RollbackCheckpointEntry(NamedTuple):
    """A rollback checkpoint."""

    name: str


class BranchStatus(NamedTuple):
    """One branch of a join or race: status, output once completed, error once failed."""

    status: BranchStatusType
    output: Cbor | None
    error: str | None


class JoinEntry(NamedTuple):
    """A join: each branch's status by branch name, in insertion order."""

    branches: dict[str, BranchStatus]


class RaceEntry(NamedTuple):
    """A race: the winning branch's name (``None`` while none has won) and each branch."""

    winner: str | None
    branches: dict[str, BranchStatus]


class RemovedEntry(NamedTuple):
    """A placeholder for an entry removed from the code (``originalType`` such as ``step``)."""

    original_type: str
    original_name: str | None


class VersionCheckEntry(NamedTuple):
    """A ``getVersion`` record: the version resolved here and the ``latest`` seen then."""

    resolved: U32
    latest: U32


#: An entry's kind and data; the union tag is the position in this order (0 step .. 8 version).
EntryKind: TypeAlias = (
    StepEntry
    | LoopEntry
    | SleepEntry
    | MessageEntry
    | RollbackCheckpointEntry
    | JoinEntry
    | RaceEntry
    | RemovedEntry
    | VersionCheckEntry
)


class Entry(NamedTuple):
    """An entry of the workflow history (stored at ``[2, ...location]``)."""

    id: str
    location: Location
    kind: EntryKind


class EntryMetadata(NamedTuple):
    """Metadata of a step or loop entry (stored at ``[4, id]``); times are ms since the epoch."""

    status: EntryStatus
    error: str | None
    attempts: U32
    last_attempt_at: U64
    created_at: U64
    completed_at: U64 | None
    rollback_completed_at: U64 | None
    rollback_error: str | None


class Message(NamedTuple):
    """A queue message as the schema declares it (not used for storage by 2.3.19)."""

    id: str
    name: str
    message_data: Cbor
    sent_at: U64


class WorkflowState(enum.IntEnum):
    """The schema's workflow state enum (storage uses :class:`WorkflowStateText` instead)."""

    PENDING = 0
    RUNNING = 1
    SLEEPING = 2
    FAILED = 3
    COMPLETED = 4
    ROLLING_BACK = 5


class WorkflowMetadata(NamedTuple):
    """The schema's workflow metadata record (not used for storage by 2.3.19)."""

    state: WorkflowState
    output: Cbor | None
    error: str | None
    version: str | None


class WorkflowStateText(enum.Enum):
    """The workflow state as stored at ``[3, 1]``: ASCII text; a missing key means pending."""

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    FAILED = "failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ROLLING_BACK = "rolling_back"
