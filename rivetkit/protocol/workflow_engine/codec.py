"""workflow-engine values: vbare + BARE v1 records, the state text and the CBOR records (§2.2).

================================ ===================================== =========================
key                              value                                 here
================================ ===================================== =========================
name ``(1, i)``                  raw UTF-8                             :func:`encode_name`
history ``(2, *location)``       ``01 00`` + BARE ``Entry``            :data:`ENTRY`
metadata ``(4, id)``             ``01 00`` + BARE ``EntryMetadata``    :data:`ENTRY_METADATA`
state ``(3, 1)``                 ASCII text (missing: ``pending``)     :func:`encode_state`
output ``(3, 2)``                CBOR of the output (absent if none)   :func:`encode_cbor`
error ``(3, 3)``                 CBOR map ``{name, message, stack?,    :func:`encode_error`
                                 metadata?}``
input ``(3, 4)``                 CBOR of the input (``f7`` in          :func:`encode_cbor`
                                 rivetkit)
================================ ===================================== =========================

``Cbor`` fields of the records hold raw CBOR bytes; :func:`encode_cbor` / :func:`decode_cbor`
convert user values (:mod:`rivetkit.protocol.workflow_engine.cbor`). The two CBOR records the
engine's queue waits keep in ``MessageEntry.message_data`` have helpers here too
(:func:`encode_queue_message`, :func:`encode_message_count`). Only version 1 exists; any other
version raises ``Unknown Entry version N`` as RivetKit does.

:func:`build` makes the handlers over a given codec twin; the module-level ones use the
selected twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, Final, NamedTuple

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.bare import ENGINE, Codec
from rivetkit.protocol.schema import plan_of
from rivetkit.protocol.vbare import Versioned
from rivetkit.protocol.workflow_engine.cbor import UNDEFINED, decode_cbor, encode_cbor
from rivetkit.protocol.workflow_engine.types import (
    Entry,
    EntryMetadata,
    WorkflowMetadata,
    WorkflowStateText,
)

__all__ = [
    "CURRENT_VERSION",
    "ENTRY",
    "ENTRY_METADATA",
    "ERROR_CODE",
    "QUEUE_MESSAGE_MARKER",
    "UNDEFINED",
    "WORKFLOW_METADATA",
    "Handlers",
    "QueueMessageRecord",
    "SerializedError",
    "build",
    "decode_cbor",
    "decode_entry",
    "decode_entry_metadata",
    "decode_error",
    "decode_message_count",
    "decode_name",
    "decode_queue_message",
    "decode_state",
    "encode_cbor",
    "encode_entry",
    "encode_entry_metadata",
    "encode_error",
    "encode_message_count",
    "encode_name",
    "encode_queue_message",
    "encode_state",
    "message_count_label",
]

CURRENT_VERSION: Final = 1
ERROR_CODE: Final = "invalid_workflow_data"
#: The marker key of a queue message recorded by a workflow's queue wait.
QUEUE_MESSAGE_MARKER: Final = "__rivetWorkflowQueueMessage"


class Handlers(NamedTuple):
    """The versioned handlers of workflow-engine v1, built over one codec engine."""

    entry: Versioned[Entry]
    entry_metadata: Versioned[EntryMetadata]
    workflow_metadata: Versioned[WorkflowMetadata]


def build(engine: ModuleType = ENGINE) -> Handlers:
    """Build the handlers over a codec engine twin (the selected one unless one is given)."""

    def single(name: str, tp: Any) -> Versioned[Any]:
        only: Codec = engine.compile_plan(plan_of(tp), ERROR_CODE)
        handler: Versioned[Any] = engine.Versioned(
            name, only, CURRENT_VERSION, {CURRENT_VERSION: only}, {}, error_code=ERROR_CODE
        )
        return handler

    return Handlers(
        entry=single("Entry", Entry),
        entry_metadata=single("EntryMetadata", EntryMetadata),
        workflow_metadata=single("WorkflowMetadata", WorkflowMetadata),
    )


_default = build()
#: ``Entry`` at a history key (vbare v1).
ENTRY: Final[Versioned[Entry]] = _default.entry
#: ``EntryMetadata`` at a metadata key (vbare v1).
ENTRY_METADATA: Final[Versioned[EntryMetadata]] = _default.entry_metadata
#: ``WorkflowMetadata`` (in the schema; 2.3.19 never stores it).
WORKFLOW_METADATA: Final[Versioned[WorkflowMetadata]] = _default.workflow_metadata


def _decode(handler: Versioned[Any], data: bytes) -> Any:
    if len(data) >= 2 and (version := data[0] | (data[1] << 8)) != CURRENT_VERSION:
        raise ProtocolError(f"Unknown {handler.name} version {version}", code=ERROR_CODE)
    return handler.decode(bytes(data))


def encode_entry(entry: Entry) -> bytes:
    """``01 00`` + BARE ``Entry``."""
    return ENTRY.encode(entry)


def decode_entry(data: bytes) -> Entry:
    """The ``Entry`` of a history value; ProtocolError on bad bytes or another version."""
    result: Entry = _decode(ENTRY, data)
    return result


def encode_entry_metadata(metadata: EntryMetadata) -> bytes:
    """``01 00`` + BARE ``EntryMetadata``."""
    return ENTRY_METADATA.encode(metadata)


def decode_entry_metadata(data: bytes) -> EntryMetadata:
    """The ``EntryMetadata`` of a metadata value; ProtocolError on bad bytes."""
    result: EntryMetadata = _decode(ENTRY_METADATA, data)
    return result


# MARK: Names and state


def encode_name(name: str) -> bytes:
    """A registry name's value: its UTF-8 bytes (no length, no version)."""
    return name.encode()


def decode_name(data: bytes) -> str:
    """A registry name from its value; invalid UTF-8 becomes U+FFFD, as a JS TextDecoder does."""
    return bytes(data).decode(errors="replace")


def encode_state(state: WorkflowStateText | str) -> bytes:
    """The ``(3, 1)`` value: the state's ASCII text; EncodeError for an unknown state."""
    try:
        return WorkflowStateText(state).value.encode()
    except ValueError:
        raise EncodeError(f"Invalid workflow state: {state}") from None


def decode_state(data: bytes | None) -> WorkflowStateText:
    """The workflow state from the ``(3, 1)`` value (``None``: the key is missing: pending).

    Unknown text raises ProtocolError ``Invalid workflow state: <text>``, as RivetKit rejects
    it on load.
    """
    if data is None:
        return WorkflowStateText.PENDING
    text = bytes(data).decode(errors="replace")
    try:
        return WorkflowStateText(text)
    except ValueError:
        raise ProtocolError(f"Invalid workflow state: {text}", code=ERROR_CODE) from None


# MARK: The error record


class SerializedError(NamedTuple):
    """The workflow error at ``(3, 3)``: ``metadata`` holds the error's own primitive fields."""

    name: str
    message: str
    stack: str | None = None
    metadata: dict[str, Any] | None = None


def encode_error(error: SerializedError) -> bytes:
    """CBOR map ``{name, message, stack?, metadata?}`` in that order (absent ones left out)."""
    record: dict[str, Any] = {"name": error.name, "message": error.message}
    if error.stack is not None:
        record["stack"] = error.stack
    if error.metadata is not None:
        record["metadata"] = error.metadata
    return encode_cbor(record)


def decode_error(data: bytes) -> SerializedError:
    """The error record; ``name`` and ``message`` must be strings, others are dropped if
    ill-typed (as RivetKit reads it)."""
    value = decode_cbor(data)
    if not isinstance(value, dict):
        raise ProtocolError("WorkflowError: expected object", code=ERROR_CODE)
    for field in ("name", "message"):
        if not isinstance(value.get(field), str):
            raise ProtocolError(f"WorkflowError.{field}: expected string", code=ERROR_CODE)
    stack = value.get("stack")
    metadata = value.get("metadata")
    return SerializedError(
        value["name"],
        value["message"],
        stack if isinstance(stack, str) else None,
        metadata if isinstance(metadata, dict) else None,
    )


# MARK: Queue-wait records


class QueueMessageRecord(NamedTuple):
    """A queue message a workflow received, as recorded at ``"<name>:<i>"``.

    ``id`` is the actor queue id as decimal text (``""`` for a record without the marker),
    ``created_at`` ms since the epoch.
    """

    id: str
    name: str
    body: Any
    created_at: int | float
    completed: bool


def encode_queue_message(record: QueueMessageRecord) -> bytes:
    """``messageData`` of a received message: CBOR ``{__rivetWorkflowQueueMessage: 1, id, name,
    body, createdAt, completed}``."""
    return encode_cbor(
        {
            QUEUE_MESSAGE_MARKER: 1,
            "id": record.id,
            "name": record.name,
            "body": record.body,
            "createdAt": record.created_at,
            "completed": record.completed,
        }
    )


def decode_queue_message(data: bytes, entry_name: str) -> QueueMessageRecord:
    """A received message from its ``messageData``; ``entry_name`` is the ``MessageEntry.name``.

    Data without the marker is a bare body: id ``""``, ``created_at`` 0, not completed.
    """
    value = decode_cbor(data)
    if isinstance(value, dict) and value.get(QUEUE_MESSAGE_MARKER) == 1:
        ident, name, created_at = value.get("id"), value.get("name"), value.get("createdAt")
        if not isinstance(created_at, (int, float)) or isinstance(created_at, bool):
            created_at = 0
        return QueueMessageRecord(
            id=ident if isinstance(ident, str) else "",
            name=name if isinstance(name, str) else entry_name,
            body=value.get("body", UNDEFINED),
            created_at=created_at,
            completed=value.get("completed") is True,
        )
    return QueueMessageRecord(id="", name=entry_name, body=value, created_at=0, completed=False)


def message_count_label(names: Sequence[str] | None) -> str:
    """The label of a ``"<name>:count"`` record: ``*`` for any name, else the names (first
    occurrences only) joined by ``|``."""
    return "|".join(dict.fromkeys(names)) if names else "*"


def encode_message_count(count: int) -> bytes:
    """``messageData`` of a ``"<name>:count"`` record: CBOR of the count."""
    return encode_cbor(count)


def decode_message_count(data: bytes) -> int:
    """The count of a ``"<name>:count"`` record; ProtocolError when it is not a count."""
    value = decode_cbor(data)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("message count record is not a count", code=ERROR_CODE)
    return value
