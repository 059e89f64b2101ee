"""Helpers of the workflow differential tests: the Node helper and our view of a store.

``tests/interop/workflow_dump.mjs`` runs RivetKit's own workflow engine
(npm @rivetkit/workflow-engine 2.3.19) in Node. :func:`py_view` reads a store with our codec
into the same JSON view the helper prints from the engine's ``loadStorage``, so the two compare
with ``==`` (after :func:`normalized`). :class:`Store` writes a store with our codec.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from rivetkit.protocol.workflow_engine import codec, keys
from rivetkit.protocol.workflow_engine.cbor import UNDEFINED, decode_cbor, encode_cbor
from rivetkit.protocol.workflow_engine.keys import Field, NameRegistry
from rivetkit.protocol.workflow_engine.types import (
    BranchStatus,
    Entry,
    EntryKind,
    EntryMetadata,
    EntryStatus,
    JoinEntry,
    Location,
    LoopEntry,
    LoopIterationMarker,
    MessageEntry,
    NameIndex,
    RaceEntry,
    RemovedEntry,
    RollbackCheckpointEntry,
    SleepEntry,
    StepEntry,
    VersionCheckEntry,
)

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT / "tests" / "interop"
SCRIPT = INTEROP / "workflow_dump.mjs"
KIND_NAMES = {
    StepEntry: "step",
    LoopEntry: "loop",
    SleepEntry: "sleep",
    MessageEntry: "message",
    RollbackCheckpointEntry: "rollback_checkpoint",
    JoinEntry: "join",
    RaceEntry: "race",
    RemovedEntry: "removed",
    VersionCheckEntry: "version_check",
}
T0 = 1_700_000_000_000


def node_binary() -> str:
    """``node``, when it and the interop packages are installed; skip (fail under CI) if not."""
    node = shutil.which("node")
    ready = (
        node is not None and (INTEROP / "node_modules" / "@rivetkit" / "workflow-engine").is_dir()
    )
    if not ready:
        message = "the workflow differential tests need node and `npm install` in tests/interop"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


def run_node(mode: str, payload: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the Node helper in ``mode`` with ``payload`` on stdin; its JSON output."""
    done = subprocess.run(
        [node_binary(), str(SCRIPT), mode],
        input=json.dumps(payload or {}).encode(),
        capture_output=True,
        cwd=INTEROP,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


# MARK: Our view of a store, in the helper's JSON form


def tag(value: Any) -> Any:
    """A decoded user value in the helper's JSON form (see workflow_dump.mjs)."""
    if value is UNDEFINED:
        return {"$undefined": True}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"$bigint": str(value)} if abs(value) > codec_max_safe() else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": _js_float(value)}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, (set, frozenset)):
        return {"$set": [tag(v) for v in value]}
    if isinstance(value, (list, tuple)):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        if all(type(k) is str for k in value):
            return {k: tag(v) for k, v in value.items()}
        return {"$map": [[tag(k), tag(v)] for k, v in value.items()]}
    raise AssertionError(f"unexpected decoded value {value!r}")


def codec_max_safe() -> int:
    return 1 << 53


def _js_float(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


_ABSENT: Any = object()


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that are set: an absent optional (``None`` in a record) is left out."""
    return {k: v for k, v in fields.items() if v is not _ABSENT}


def _opt(value: Any) -> Any:
    return _ABSENT if value is None else value


def _cbor_view(raw: bytes | None) -> Any:
    # The engine reads a CBOR undefined in an optional field as the field's absence.
    value = UNDEFINED if raw is None else decode_cbor(raw)
    return _ABSENT if value is UNDEFINED else tag(value)


def _branches_view(branches: dict[str, BranchStatus]) -> dict[str, Any]:
    return {
        name: _present(
            status=b.status.name.lower(), output=_cbor_view(b.output), error=_opt(b.error)
        )
        for name, b in branches.items()
    }


def kind_view(kind: EntryKind) -> dict[str, Any]:
    """The ``data`` of an entry as the engine reads it."""
    if isinstance(kind, StepEntry):
        return _present(output=_cbor_view(kind.output), error=_opt(kind.error))
    if isinstance(kind, LoopEntry):
        return _present(
            state=tag(decode_cbor(kind.state)),
            iteration=kind.iteration,
            output=_cbor_view(kind.output),
        )
    if isinstance(kind, SleepEntry):
        return {"deadline": kind.deadline, "state": kind.state.name.lower()}
    if isinstance(kind, MessageEntry):
        return {"name": kind.name, "data": tag(decode_cbor(kind.message_data))}
    if isinstance(kind, RollbackCheckpointEntry):
        return {"name": kind.name}
    if isinstance(kind, JoinEntry):
        return {"branches": _branches_view(kind.branches)}
    if isinstance(kind, RaceEntry):
        return {"winner": kind.winner, "branches": _branches_view(kind.branches)}
    if isinstance(kind, RemovedEntry):
        return _present(originalType=kind.original_type, originalName=_opt(kind.original_name))
    return {"resolved": kind.resolved, "latest": kind.latest}


def _segment_view(seg: NameIndex | LoopIterationMarker) -> Any:
    if isinstance(seg, NameIndex):
        return seg.value
    return {"loop": seg.loop, "iteration": seg.iteration}


def py_view(kv: list[list[str]]) -> dict[str, Any]:
    """What our codec reads from a store, in the helper's view format."""
    pairs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in kv]
    parsed = [(keys.parse_key(k), v) for k, v in pairs]
    registry = NameRegistry.load(
        (key.name_index, codec.decode_name(v)) for key, v in parsed if isinstance(key, keys.NameKey)
    )
    entries: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    view: dict[str, Any] = {"names": registry.names, "entries": entries, "metadata": metadata}
    state_raw: bytes | None = None
    for key, value in parsed:
        if isinstance(key, keys.HistoryKey):
            entry = codec.decode_entry(value)
            entries.append(
                {
                    "key": keys.location_key(entry.location, registry.names),
                    "id": entry.id,
                    "location": [_segment_view(s) for s in entry.location],
                    "type": KIND_NAMES[type(entry.kind)],
                    "data": kind_view(entry.kind),
                }
            )
        elif isinstance(key, keys.MetadataKey):
            m = codec.decode_entry_metadata(value)
            metadata[key.entry_id] = _present(
                status=m.status.name.lower(),
                error=_opt(m.error),
                attempts=m.attempts,
                lastAttemptAt=m.last_attempt_at,
                createdAt=m.created_at,
                completedAt=_opt(m.completed_at),
                rollbackCompletedAt=_opt(m.rollback_completed_at),
                rollbackError=_opt(m.rollback_error),
            )
        elif isinstance(key, keys.WorkflowKey):
            if key.field is Field.STATE:
                state_raw = value
            elif key.field is Field.OUTPUT:
                if (output := _cbor_view(value)) is not _ABSENT:
                    view["output"] = output
            elif key.field is Field.ERROR:
                error = codec.decode_error(value)
                view["error"] = _present(
                    name=error.name,
                    message=error.message,
                    stack=_opt(error.stack),
                    metadata=_ABSENT if error.metadata is None else tag(error.metadata),
                )
    view["state"] = codec.decode_state(state_raw).value
    return view


def normalized(value: Any) -> Any:
    """Sets compare without order (Python and JS iterate them differently)."""
    if isinstance(value, dict):
        if set(value) == {"$set"}:
            return {
                "$set": sorted(json.dumps(normalized(v), sort_keys=True) for v in value["$set"])
            }
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


class Store:
    """A workflow store written with our codec, as the engine lays one out."""

    def __init__(self) -> None:
        self.registry = NameRegistry()
        self.kv: dict[bytes, bytes] = {}

    def loc(self, *path: str | tuple[str, int]) -> Location:
        location: Location = []
        for part in path:
            if isinstance(part, tuple):
                location.append(LoopIterationMarker(self.registry.register(part[0]), part[1]))
            else:
                location.append(NameIndex(self.registry.register(part)))
        return location

    def entry(
        self,
        path: tuple[str | tuple[str, int], ...],
        kind: EntryKind,
        meta: EntryMetadata | None = None,
    ) -> str:
        entry_id = str(uuid.uuid4())
        location = self.loc(*path)
        self.kv[keys.history_key(location)] = codec.encode_entry(Entry(entry_id, location, kind))
        if meta is not None:
            self.kv[keys.metadata_key(entry_id)] = codec.encode_entry_metadata(meta)
        return entry_id

    def step(
        self, *path: str | tuple[str, int], output: Any = UNDEFINED, error: str | None = None
    ) -> str:
        raw = None if output is UNDEFINED else encode_cbor(output)
        done = EntryMetadata(EntryStatus.COMPLETED, None, 1, T0, T0, T0, None, None)
        return self.entry(path, StepEntry(raw, error), done)

    def field(self, field: Field, value: bytes) -> None:
        self.kv[keys.workflow_key(field)] = value

    def pairs(self) -> list[list[str]]:
        for index, name in self.registry.unflushed():
            self.kv[keys.name_key(index)] = codec.encode_name(name)
        self.registry.mark_flushed()
        return [[k.hex(), v.hex()] for k, v in sorted(self.kv.items())]
