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

import asyncio
import json
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from engine_fixtures import INTEROP
from websockets.asyncio.client import connect

from conftest import eventually
from rivetkit import actor, setup
from rivetkit.inspector.token import token_from_data_dir
from rivetkit.inspector.workflow import (
    WorkflowHistory,
    decode_history,
    encode_history,
    to_transport,
    transport_json,
)
from rivetkit.protocol import inspector_protocol as ip
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
from rivetkit.server import serve_in_background
from rivetkit.workflow import workflow

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


# -- a workflow actor on a real server ---------------------------------------------------------

#: How often each step body ran, by step name (bodies run in this process).
RUNS: Counter[str] = Counter()
#: Set to let the ``gated`` actor's step finish.
GATE = threading.Event()


def _counting(name: str) -> Any:
    def body(s: Any) -> str:
        RUNS[name] += 1
        return f"{name}-{RUNS[name]}"

    return body


flow = actor("flow", state={})


@flow.run
@workflow
async def flow_run(ctx: Any) -> None:
    await ctx.step("first", _counting("first"))
    await ctx.step("second", _counting("second"))


@flow.action
def ping(c: Any) -> str:
    return "pong"


gated = actor("gated", state={})


@gated.run
@workflow
async def gated_run(ctx: Any) -> None:
    async def wait(s: Any) -> None:
        while not GATE.is_set():
            await asyncio.sleep(0.02)

    await ctx.step("wait", wait, timeout=0)


@gated.action
def poke(c: Any) -> str:
    return "ok"


plain = actor("plain")


@plain.action
def hello(c: Any) -> str:
    return "hi"


registry = setup(use=[flow, gated, plain])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workflow-inspector-data")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(data_dir: Path) -> AsyncIterator[str]:
    async with serve_in_background(registry, data_dir=data_dir) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=15) as client:
        yield client


async def _start(http: httpx.AsyncClient, data_dir: Path, name: str, key: str) -> tuple[str, Any]:
    """Create the actor, wake it with an action; its id and inspector headers."""
    response = await http.put("/actors", json={"name": name, "key": key})
    assert response.status_code == 200, response.text
    actor_id: str = response.json()["actor"]["actor_id"]
    action = {"flow": "ping", "gated": "poke", "plain": "hello"}[name]
    woke = await http.post(f"/gateway/{actor_id}/action/{action}", json={"args": []})
    assert woke.status_code == 200, woke.text
    token = token_from_data_dir(data_dir, actor_id)
    return actor_id, {"Authorization": f"Bearer {token}"}


async def _history(http: httpx.AsyncClient, actor_id: str, headers: Any) -> dict[str, Any]:
    response = await http.get(f"/gateway/{actor_id}/inspector/workflow-history", headers=headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def _completed(http: httpx.AsyncClient, actor_id: str, headers: Any) -> dict[str, Any]:
    view: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal view
        view = await _history(http, actor_id, headers)
        return view["workflowState"] == "completed"

    deadline = asyncio.get_running_loop().time() + 15
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, view
        await asyncio.sleep(0.02)
    return view


async def _replay(http: httpx.AsyncClient, url: str, body: Any, headers: Any) -> httpx.Response:
    """POST a replay once the run is over: the stored state says "completed" at the last flush,
    a moment before the run handler returns, and a replay meanwhile is refused (409)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        answer = await http.post(url, json=body, headers=headers)
        if answer.status_code != 409 or asyncio.get_running_loop().time() > deadline:
            return answer
        assert answer.json()["code"] == "workflow_in_flight", answer.text
        await asyncio.sleep(0.02)


def _steps(view: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Step name -> (entry id, recorded output) of a JSON history."""
    names = view["history"]["nameRegistry"]
    return {
        names[entry["location"][-1]["val"]]: (entry["id"], entry["kind"]["val"]["output"])
        for entry in view["history"]["entries"]
        if entry["kind"]["tag"] == "WorkflowStepEntry"
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_history_of_a_workflow_actor(http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id, headers = await _start(http, data_dir, "flow", "history")
    view = await _completed(http, actor_id, headers)
    assert view["isWorkflowEnabled"] is True
    steps = _steps(view)
    assert steps["first"][1].startswith("first-") and steps["second"][1].startswith("second-")
    assert set(steps) == {"first", "second"}
    for entry_id, _ in steps.values():
        meta = view["history"]["entryMetadata"][entry_id]
        assert meta["status"] == "COMPLETED" and meta["attempts"] == 1
        assert meta["completedAt"] >= meta["createdAt"] > 0
    summary = await http.get(f"/gateway/{actor_id}/inspector/summary", headers=headers)
    assert summary.json()["isWorkflowEnabled"] is True
    assert summary.json()["workflowState"] == "completed"
    assert summary.json()["workflowHistory"] == view["history"]


@pytest.mark.asyncio(loop_scope="module")
async def test_actors_without_a_workflow(http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id, headers = await _start(http, data_dir, "plain", "none")
    none = {"history": None, "workflowState": None, "isWorkflowEnabled": False}
    assert await _history(http, actor_id, headers) == none
    replay = await http.post(
        f"/gateway/{actor_id}/inspector/workflow/replay", json={}, headers=headers
    )
    assert replay.json() == none


@pytest.mark.asyncio(loop_scope="module")
async def test_replay_from_a_step_and_from_the_start(
    http: httpx.AsyncClient, data_dir: Path
) -> None:
    RUNS.clear()
    actor_id, headers = await _start(http, data_dir, "flow", "replay")
    view = await _completed(http, actor_id, headers)
    assert RUNS == {"first": 1, "second": 1}
    second_id = _steps(view)["second"][0]

    url = f"/gateway/{actor_id}/inspector/workflow/replay"
    replayed = await _replay(http, url, {"entryId": second_id}, headers)
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["isWorkflowEnabled"] is True
    assert set(_steps(body)) == {"first"}  # the history the workflow restarts from
    await eventually(lambda: RUNS["second"] == 2, timeout=15)
    view = await _completed(http, actor_id, headers)
    assert RUNS == {"first": 1, "second": 2}
    assert _steps(view)["second"][1] == "second-2"

    from_start = await _replay(http, url, {}, headers)
    assert from_start.status_code == 200, from_start.text
    assert from_start.json()["history"]["entries"] == []
    await eventually(lambda: RUNS["second"] == 3, timeout=15)
    await _completed(http, actor_id, headers)
    assert RUNS == {"first": 2, "second": 3}


@pytest.mark.asyncio(loop_scope="module")
async def test_replay_errors(http: httpx.AsyncClient, data_dir: Path) -> None:
    GATE.clear()
    actor_id, headers = await _start(http, data_dir, "gated", "busy")
    url = f"/gateway/{actor_id}/inspector/workflow/replay"
    busy = await http.post(url, json={}, headers=headers)
    assert busy.status_code == 409, busy.text
    assert busy.json() == {
        "group": "actor",
        "code": "workflow_in_flight",
        "message": "Workflow replay is unavailable while the workflow is currently in flight.",
        "metadata": None,
    }
    GATE.set()
    await _completed(http, actor_id, headers)

    # _replay: the run may still be returning after the stored state said "completed" (409).
    missing = await _replay(http, url, {"entryId": "nope"}, headers)
    assert missing.status_code == 500, missing.text
    assert missing.json()["code"] == "internal_error"
    assert missing.json()["message"] == "Workflow step not found: nope"
    bad = await http.post(url, json={"entryId": 3}, headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"


# -- the inspector WebSocket -------------------------------------------------------------------


async def _recv(ws: Any, predicate: Any) -> Any:
    """The first v6 message ``predicate`` accepts (others skipped)."""
    while True:
        data = await asyncio.wait_for(ws.recv(), 10)
        message = ip.decode_to_client(data, 6)
        if predicate(message):
            return message


async def _ws_replay(ws: Any, rid: int) -> Any:
    """Replay from the start over the socket once the run is over (as ``_replay`` does over
    HTTP: the stored state says "completed" a moment before the run returns, and a replay
    meanwhile is answered by an Error naming ``actor.workflow_in_flight``)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await ws.send(ip.encode_to_server(ip.WorkflowReplayRequest(rid, None), 6))
        answer = await _recv(ws, lambda m: isinstance(m, (ip.WorkflowReplayResponse, ip.Error)))
        if isinstance(answer, ip.WorkflowReplayResponse):
            return answer
        assert "workflow_in_flight" in answer.message, answer
        assert asyncio.get_running_loop().time() < deadline, answer
        await asyncio.sleep(0.02)


def _step_names(history: WorkflowHistory) -> set[str]:
    return {
        history.name_registry[entry.location[-1][0]]
        for entry in history.entries
        if isinstance(entry.kind, StepEntry)
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_websocket_init_requests_replay_and_pushes(
    http: httpx.AsyncClient, endpoint: str, data_dir: Path
) -> None:
    RUNS.clear()
    actor_id, headers = await _start(http, data_dir, "flow", "socket")
    await _completed(http, actor_id, headers)
    token = headers["Authorization"].split()[-1]
    url = endpoint.replace("http://", "ws://")
    url += f"/gateway/{actor_id}/inspector/connect?protocol_version=6"
    async with connect(url, subprotocols=[f"rivet_inspector_token.{token}"]) as ws:  # type: ignore[list-item]
        init = await _recv(ws, lambda m: isinstance(m, ip.Init))
        assert init.is_workflow_enabled is True
        assert _step_names(decode_history(init.workflow_history)) == {"first", "second"}

        await ws.send(ip.encode_to_server(ip.WorkflowHistoryRequest(1), 6))
        answer = await _recv(ws, lambda m: isinstance(m, ip.WorkflowHistoryResponse))
        assert answer.rid == 1 and answer.is_workflow_enabled is True
        assert answer.history == init.workflow_history

        replayed = await _ws_replay(ws, 2)
        assert replayed.rid == 2
        assert decode_history(replayed.history).entries == []

        # The replayed run records its steps again; the socket is told.
        def complete_push(m: Any) -> bool:
            return isinstance(m, ip.WorkflowHistoryUpdated) and _step_names(
                decode_history(m.history)
            ) == {"first", "second"}

        await _recv(ws, complete_push)
        assert RUNS == {"first": 2, "second": 2}

    plain_id, plain_headers = await _start(http, data_dir, "plain", "socket")
    plain_token = plain_headers["Authorization"].split()[-1]
    url = endpoint.replace("http://", "ws://")
    url += f"/gateway/{plain_id}/inspector/connect?protocol_version=6"
    async with connect(url, subprotocols=[f"rivet_inspector_token.{plain_token}"]) as ws:  # type: ignore[list-item]
        init = await _recv(ws, lambda m: isinstance(m, ip.Init))
        assert init.is_workflow_enabled is False and init.workflow_history is None
