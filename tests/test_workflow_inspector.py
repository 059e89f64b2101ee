"""The inspector's workflow view (spec workflows.md §3.5): the transport bytes, their JSON
form, the HTTP routes and the WebSocket messages of a workflow actor.

* transport bytes: the spec's derived example byte for byte; a history holding every entry
  kind decoded by rivetkit@2.3.19's own codec in Node (``tests/interop/workflow_transport.mjs``);
* ``GET /inspector/workflow-history`` and the summary of a workflow actor on a real server;
* ``POST /inspector/workflow/replay``: from a step (that step and what follows run again),
  from the start, refused with 409 ``actor.workflow_in_flight`` while a step runs, 500
  ``actor.internal_error`` for an unknown entry;
* the inspector WebSocket: ``Init`` carries the history, history and replay requests, and the
  ``WorkflowHistoryUpdated`` push.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from engine_fixtures import INTEROP

from rivetkit.inspector.workflow import (
    WorkflowHistory,
    decode_history,
    encode_history,
    to_transport,
    transport_json,
)
from rivetkit.protocol.values import cbor_dumps_raw
from rivetkit.protocol.workflow_engine.types import (
    BranchStatus,
    BranchStatusType,
    Entry,
    EntryMetadata,
    EntryStatus,
    JoinEntry,
    LoopEntry,
    LoopIterationMarker,
    MessageEntry,
    NameIndex,
    RaceEntry,
    RemovedEntry,
    RollbackCheckpointEntry,
    SleepEntry,
    SleepState,
    StepEntry,
    VersionCheckEntry,
)

T = 1700000000000


def _greet() -> WorkflowHistory:
    meta = EntryMetadata(EntryStatus.COMPLETED, None, 1, T, T, T, None, None)
    entry = Entry("e1", [NameIndex(0)], StepEntry(cbor_dumps_raw("hi"), None))
    return to_transport(["greet"], [entry], {"e1": meta})


def test_transport_bytes_of_the_spec_example() -> None:
    expected = bytes.fromhex(
        "0105677265657401" "0265310100000000000001036268690001"
        "0265310200010000000068e5cf8b010000" "0068e5cf8b010000010068e5cf8b0100000000"
    )  # fmt: skip
    assert encode_history(_greet()) == expected
    assert decode_history(expected) == _greet()


def test_json_form_of_the_spec_example() -> None:
    assert transport_json(_greet()) == {
        "nameRegistry": ["greet"],
        "entries": [
            {
                "id": "e1",
                "location": [{"tag": "WorkflowNameIndex", "val": 0}],
                "kind": {"tag": "WorkflowStepEntry", "val": {"output": "hi", "error": None}},
            }
        ],
        "entryMetadata": {
            "e1": {
                "status": "COMPLETED",
                "error": None,
                "attempts": 1,
                "lastAttemptAt": T,
                "createdAt": T,
                "completedAt": T,
                "rollbackCompletedAt": None,
                "rollbackError": None,
            }
        },
    }


def _every_kind() -> WorkflowHistory:
    """A history with one entry of each of the nine kinds, stored CBOR as cbor-x writes it."""
    names = ["step", "loop", "x", "nap", "wait:0", "cp", "join", "race", "old", "v"]
    branches = {
        "2": BranchStatus(BranchStatusType.COMPLETED, b"\x02", None),
        "b": BranchStatus(BranchStatusType.FAILED, None, "Error: boom"),
    }
    entries = [
        Entry("a", [NameIndex(0)], StepEntry(bytes.fromhex("b9000261610162626903"), None)),
        Entry("b", [NameIndex(1)], LoopEntry(b"\x05", 3, None)),
        Entry(
            "c",
            [NameIndex(1), LoopIterationMarker(1, 2), NameIndex(2)],
            StepEntry(None, "Error: once"),
        ),
        Entry("d", [NameIndex(3)], SleepEntry(T + 5, SleepState.INTERRUPTED)),
        Entry("e", [NameIndex(4)], MessageEntry("job", bytes.fromhex("fb3ff8000000000000"))),
        Entry("f", [NameIndex(5)], RollbackCheckpointEntry("cp")),
        Entry("g", [NameIndex(6)], JoinEntry(branches)),
        Entry("h", [NameIndex(7)], RaceEntry("2", branches)),
        Entry("i", [NameIndex(8)], RemovedEntry("step", "old")),
        Entry("j", [NameIndex(9)], VersionCheckEntry(1, 2)),
    ]
    metadata = {
        "a": EntryMetadata(EntryStatus.COMPLETED, None, 1, T, T, T, None, None),
        "b": EntryMetadata(EntryStatus.RUNNING, None, 0, 0, T, None, None, None),
        "c": EntryMetadata(EntryStatus.EXHAUSTED, "Error: once", 4, T + 1, T, None, T + 2, "x"),
    }
    return to_transport(names, entries, metadata)


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "rivetkit").is_dir():
        pytest.skip("needs node and `npm install` in tests/interop")
    return node


def _as_rivetkit_decodes(history: WorkflowHistory) -> dict[str, Any]:
    """What ``workflow_transport.mjs`` prints for ``history`` (data fields as hex)."""

    def hexed(data: bytes | None) -> str | None:
        return None if data is None else data.hex()

    def branch(b: BranchStatus) -> dict[str, Any]:
        return {
            "status": BranchStatusType(b.status).name,
            "output": hexed(b.output),
            "error": b.error,
        }

    def kind(k: Any) -> dict[str, Any]:
        if isinstance(k, StepEntry):
            val: dict[str, Any] = {"output": hexed(k.output), "error": k.error}
        elif isinstance(k, LoopEntry):
            val = {"state": k.state.hex(), "iteration": k.iteration, "output": hexed(k.output)}
        elif isinstance(k, SleepEntry):
            val = {"deadline": k.deadline, "state": SleepState(k.state).name}
        elif isinstance(k, MessageEntry):
            val = {"name": k.name, "messageData": k.message_data.hex()}
        elif isinstance(k, RollbackCheckpointEntry):
            val = {"name": k.name}
        elif isinstance(k, JoinEntry):
            val = {"branches": {n: branch(b) for n, b in k.branches.items()}}
        elif isinstance(k, RaceEntry):
            val = {"winner": k.winner, "branches": {n: branch(b) for n, b in k.branches.items()}}
        elif isinstance(k, RemovedEntry):
            val = {"originalType": k.original_type, "originalName": k.original_name}
        else:
            val = {"resolved": k.resolved, "latest": k.latest}
        return {"tag": f"Workflow{type(k).__name__}", "val": val}

    view = transport_json(history)
    for entry, source in zip(view["entries"], history.entries, strict=True):
        entry["kind"] = kind(source.kind)
    return view


def test_every_entry_kind_is_decoded_by_rivetkits_codec() -> None:
    history = _every_kind()
    data = encode_history(history)
    out = subprocess.run(
        [_node(), "workflow_transport.mjs", data.hex()],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == _as_rivetkit_decodes(history)


def test_stored_cbor_is_reencoded_json_compat() -> None:
    history = _every_kind()
    step = history.entries[0].kind
    assert isinstance(step, StepEntry)
    # cbor-x's b9 0002 map header becomes a canonical one; values unchanged.
    assert step.output == bytes.fromhex("a261610162626903")
    view = transport_json(history)
    kinds = [entry["kind"] for entry in view["entries"]]
    assert kinds[0]["val"]["output"] == {"a": 1, "bi": 3}
    assert kinds[4]["val"] == {"name": "job", "messageData": 1.5}
    assert kinds[6]["val"]["branches"] == {
        "2": {"status": "COMPLETED", "output": 2, "error": None},
        "b": {"status": "FAILED", "output": None, "error": "Error: boom"},
    }
    assert kinds[7]["val"]["winner"] == "2"
    assert view["entryMetadata"]["c"]["status"] == "EXHAUSTED"
    assert view["entryMetadata"]["c"]["rollbackCompletedAt"] == T + 2
