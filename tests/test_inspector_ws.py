"""The inspector WebSocket (/inspector/connect, inspector-protocol v1..v6) over a real server
on 127.0.0.1: auth by subprotocol and header, bad versions, the Init snapshot, requests, live
pushes after actions (state, connections, queue, schedules), legacy framing, and the codecs
of every version with both twins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import cbor2
import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import eventually
from rivetkit import ActorOptions, actor, setup
from rivetkit.db import Database
from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.inspector.token import token_from_data_dir
from rivetkit.protocol import inspector_protocol as ip
from rivetkit.protocol.values import cbor_dumps, cbor_loads
from rivetkit.runtime.instance import Phase
from rivetkit.server import serve_in_background
from rivetkit.traces.schema import READ_RANGE, ReadRangeWire

pytestmark = pytest.mark.asyncio(loop_scope="module")

watched = actor(
    "watched",
    state={"count": 0},
    db=Database(migrations=["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"]),
    options=ActorOptions(sleep_timeout=30),
)


@watched.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@watched.action
async def later(c: Any, seconds: float) -> str:
    return str(await c.schedule.after(seconds, "increment", 1))


@watched.action
async def add_item(c: Any, name: str) -> int:
    result = await c.db.execute("INSERT INTO items (name) VALUES (?)", name)
    return int(result.last_row_id or 0)


registry = setup(use=[watched])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspector-ws-data")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(data_dir: Path) -> AsyncIterator[Any]:
    async with serve_in_background(registry, data_dir=data_dir) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=15) as client:
        yield client


async def create(http: httpx.AsyncClient, key: str) -> str:
    response = await http.put("/actors", json={"name": "watched", "key": key})
    assert response.status_code == 200, response.text
    actor_id: str = response.json()["actor"]["actor_id"]
    return actor_id


async def action(http: httpx.AsyncClient, actor_id: str, name: str, *args: Any) -> Any:
    response = await http.post(f"/gateway/{actor_id}/action/{name}", json={"args": list(args)})
    assert response.status_code == 200, response.text
    return response.json()["output"]


def inspector_url(endpoint: str, actor_id: str, query: str = "?protocol_version=6") -> str:
    return endpoint.replace("http://", "ws://") + f"/gateway/{actor_id}/inspector/connect{query}"


class Inspector:
    """A test client of the inspector socket (frames of one version)."""

    def __init__(self, ws: ClientConnection, version: int | None) -> None:
        self.ws = ws
        self.version = version
        self.next_id = 0

    async def recv(self) -> Any:
        data = await asyncio.wait_for(self.ws.recv(), 10)
        assert isinstance(data, bytes)
        return ip.decode_to_client(data, self.version)

    async def recv_until(self, predicate: Callable[[Any], bool]) -> Any:
        """The first message ``predicate`` accepts (pushes before it are skipped)."""
        while True:
            message = await self.recv()
            if predicate(message):
                return message

    async def send(self, body: Any) -> None:
        await self.ws.send(ip.encode_to_server(body, self.version))

    def rid(self) -> int:
        self.next_id += 1
        return self.next_id

    async def request(self, make: Callable[[int], Any]) -> Any:
        rid = self.rid()
        await self.send(make(rid))
        return await self.recv_until(
            lambda m: getattr(m, "rid", None) == rid or isinstance(m, (ip.Error, ip.v1.Error))
        )


async def open_inspector(
    endpoint: str,
    actor_id: str,
    token: str,
    version: int | None = 6,
    *,
    by_header: bool = False,
) -> tuple[Inspector, Any]:
    query = "" if version is None else f"?protocol_version={version}"
    if by_header:
        ws = await connect(
            inspector_url(endpoint, actor_id, query),
            additional_headers={"Authorization": f"Bearer {token}"},
        )
    else:
        ws = await connect(
            inspector_url(endpoint, actor_id, query),
            subprotocols=["rivet", f"rivet_inspector_token.{token}"],  # type: ignore[list-item]
        )
    client = Inspector(ws, version)
    init = await client.recv()
    return client, init


async def close_reason(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


# -- handshake --------------------------------------------------------------------------------


async def test_unauthorized_and_bad_versions(
    endpoint: str, http: httpx.AsyncClient, data_dir: Path
) -> None:
    actor_id = await create(http, "auth")
    for subprotocols in (["rivet"], ["rivet", "rivet_inspector_token.wrong"]):
        ws = await connect(inspector_url(endpoint, actor_id), subprotocols=subprotocols)  # type: ignore[arg-type]
        assert await close_reason(ws) == (1008, "inspector.unauthorized")
    ws = await connect(
        inspector_url(endpoint, actor_id), additional_headers={"Authorization": "Bearer nope"}
    )
    assert await close_reason(ws) == (1008, "inspector.unauthorized")
    token = token_from_data_dir(data_dir, actor_id)
    for bad in ("7", "0", "x", ""):
        ws = await connect(
            inspector_url(endpoint, actor_id, f"?protocol_version={bad}"),
            subprotocols=["rivet", f"rivet_inspector_token.{token}"],  # type: ignore[list-item]
        )
        assert await close_reason(ws) == (1002, "inspector.invalid_protocol_version")


async def test_init_snapshot(endpoint: str, http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "init")
    await action(http, actor_id, "increment", 4)
    token = token_from_data_dir(data_dir, actor_id)
    client, init = await open_inspector(endpoint, actor_id, token)
    assert client.ws.subprotocol == "rivet"
    assert isinstance(init, ip.Init)
    assert cbor_loads(init.state) == {"count": 4}
    assert init.is_state_enabled is True
    assert sorted(init.rpcs) == ["add_item", "increment", "later"]
    assert init.is_database_enabled is True
    assert init.queue_size == 0
    assert init.workflow_history is None and init.is_workflow_enabled is False
    assert init.tab_config == [] and init.schedules == [] and init.connections == []
    await client.ws.close()
    # The token may also come as a header; v1 gets its own Init form.
    client, init = await open_inspector(endpoint, actor_id, token, 1, by_header=True)
    assert isinstance(init, ip.v1.Init) and init.events == []
    assert cbor_loads(init.state) == {"count": 4}
    await client.ws.close()


# -- pushes -----------------------------------------------------------------------------------


async def test_push_after_action(endpoint: str, http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "push")
    client, _ = await open_inspector(endpoint, actor_id, token_from_data_dir(data_dir, actor_id))
    assert await action(http, actor_id, "increment", 2) == 2
    update = await client.recv_until(lambda m: isinstance(m, ip.StateUpdated))
    assert cbor_loads(update.state) == {"count": 2}
    # A connection opens: its list is pushed.
    conn_url = endpoint.replace("http://", "ws://") + f"/gateway/{actor_id}/connect"
    conn = await connect(conn_url, subprotocols=["rivet", "rivet_encoding.json"])  # type: ignore[list-item]
    pushed = await client.recv_until(
        lambda m: isinstance(m, ip.ConnectionsUpdated) and len(m.connections) == 1
    )
    details = cbor2.loads(pushed.connections[0].details)
    assert details["stateEnabled"] is True and details["subscriptions"] == 0
    await conn.close()
    await client.recv_until(lambda m: isinstance(m, ip.ConnectionsUpdated) and not m.connections)
    # A queued message: the new size is pushed.
    queued = await http.post(f"/gateway/{actor_id}/queue/jobs", json={"body": {"x": 1}}, headers={})
    assert queued.status_code == 200, queued.text
    size = await client.recv_until(lambda m: isinstance(m, ip.QueueUpdated))
    assert size.queue_size == 1
    # A schedule: the list is pushed.
    event_id = await action(http, actor_id, "later", 3600)
    schedules = await client.recv_until(lambda m: isinstance(m, ip.SchedulesUpdated))
    assert [s.id for s in schedules.schedules] == [event_id]
    assert schedules.schedules[0].kind == "at" and cbor_loads(schedules.schedules[0].args) == [1]
    await client.ws.close()


async def test_patch_state_request_pushes_and_persists(
    endpoint: Any, http: httpx.AsyncClient, data_dir: Path
) -> None:
    actor_id = await create(http, "patch")
    client, _ = await open_inspector(endpoint, actor_id, token_from_data_dir(data_dir, actor_id))
    await client.send(ip.PatchStateRequest(cbor_dumps({"count": 100})))
    update = await client.recv_until(lambda m: isinstance(m, ip.StateUpdated))
    assert cbor_loads(update.state) == {"count": 100}
    # Saved: after a sleep the actor wakes with it; the session follows the new instance.
    first = endpoint.app.runtime.instances[actor_id]
    first.request_sleep()
    await eventually(lambda: first.phase == Phase.TERMINATED, timeout=15)
    assert await action(http, actor_id, "increment") == 101
    update = await client.recv_until(
        lambda m: isinstance(m, ip.StateUpdated) and cbor_loads(m.state) == {"count": 101}
    )
    await client.ws.close()


# -- requests ---------------------------------------------------------------------------------


async def test_requests(endpoint: str, http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "requests")
    await action(http, actor_id, "add_item", "pen")
    client, _ = await open_inspector(endpoint, actor_id, token_from_data_dir(data_dir, actor_id))

    state = await client.request(ip.StateRequest)
    assert isinstance(state, ip.StateResponse) and cbor_loads(state.state) == {"count": 0}
    rpcs = await client.request(ip.RpcsListRequest)
    assert sorted(rpcs.rpcs) == ["add_item", "increment", "later"]
    conns = await client.request(ip.ConnectionsRequest)
    assert conns.connections == []
    out = await client.request(lambda rid: ip.ActionRequest(rid, "increment", cbor_dumps([5])))
    assert isinstance(out, ip.ActionResponse) and cbor_loads(out.output) == 5
    missing = await client.request(lambda rid: ip.ActionRequest(rid, "nope", cbor_dumps([])))
    assert isinstance(missing, ip.Error) and "action_not_found" in missing.message
    traces = await client.request(lambda rid: ip.TraceQueryRequest(rid, 0, 10, 10))
    # 1970: no span in range (tests/test_traces.py queries real ones)
    assert READ_RANGE.decode(traces.payload) == ReadRangeWire(0, 10, 10, False, [], [])
    history = await client.request(ip.WorkflowHistoryRequest)
    assert history.history is None and history.is_workflow_enabled is False
    replay = await client.request(lambda rid: ip.WorkflowReplayRequest(rid, None))
    assert isinstance(replay, ip.WorkflowReplayResponse)

    for i in range(3):
        sent = await http.post(f"/gateway/{actor_id}/queue/jobs", json={"body": i})
        assert sent.status_code == 200
    queue = await client.request(lambda rid: ip.QueueRequest(rid, 2))
    assert queue.status.size == 3 and queue.status.truncated is True
    assert [m.name for m in queue.status.messages] == ["jobs", "jobs"]
    assert queue.status.max_size > 0

    schema = await client.request(ip.DatabaseSchemaRequest)
    tables = cbor2.loads(schema.schema)["tables"]
    assert [t["table"]["name"] for t in tables] == ["items"] and tables[0]["records"] == 1
    rows = await client.request(lambda rid: ip.DatabaseTableRowsRequest(rid, "items", 10, 0))
    assert cbor2.loads(rows.result) == [{"id": 1, "name": "pen"}]

    event_id = await action(http, actor_id, "later", 3600)
    listed = await client.request(ip.SchedulesRequest)
    assert [s.id for s in listed.schedules] == [event_id]
    fires = await client.request(lambda rid: ip.ScheduleHistoryRequest(rid, event_id, 10))
    assert fires.history == [] and fires.schedule_id == event_id
    deleted = await client.request(lambda rid: ip.ScheduleDeleteRequest(rid, event_id, "at"))
    assert deleted.deleted is True
    again = await client.request(lambda rid: ip.ScheduleDeleteRequest(rid, event_id, "at"))
    assert again.deleted is False

    # Bytes that are no request: an Error, and the socket stays usable.
    await client.ws.send(b"\xff\xff")
    error = await client.recv_until(lambda m: isinstance(m, ip.Error))
    assert "invalid_inspector_message" in error.message
    assert isinstance(await client.request(ip.RpcsListRequest), ip.RpcsListResponse)
    await client.ws.close()


async def test_legacy_framing(endpoint: str, http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "legacy")
    token = token_from_data_dir(data_dir, actor_id)
    ws = await connect(
        inspector_url(endpoint, actor_id, ""),
        subprotocols=["rivet", f"rivet_inspector_token.{token}"],  # type: ignore[list-item]
    )
    raw = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(raw, bytes) and raw[:2] == b"\x05\x00"  # v5, version embedded
    init = ip.decode_to_client(raw, None)
    assert isinstance(init, ip.v5.Init) and init.tab_config == []
    # A request may carry any version's prefix (here v2's); its answer has the same one.
    await ws.send(b"\x02\x00" + ip.encode_to_server(ip.RpcsListRequest(9), 2))
    while True:
        raw = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(raw, bytes)
        reply = ip.decode_to_client(raw, None)
        if isinstance(reply, ip.RpcsListResponse):
            break
    assert reply.rid == 9 and raw[:2] == b"\x02\x00"
    await ws.close()


async def test_inspector_does_not_keep_the_actor_awake(
    endpoint: Any, http: httpx.AsyncClient, data_dir: Path
) -> None:
    actor_id = await create(http, "awake")
    client, _ = await open_inspector(endpoint, actor_id, token_from_data_dir(data_dir, actor_id))
    instance = endpoint.app.runtime.instances[actor_id]
    assert instance.inspector_observer is not None
    assert instance.can_sleep()
    await client.ws.close()
    await eventually(lambda: instance.inspector_observer is None)


# -- codecs -----------------------------------------------------------------------------------


async def test_every_version_round_trips_with_both_twins(engine: ModuleType) -> None:
    handlers = ip.build(engine)
    init = ip.Init(
        connections=[ip.Connection("c1", cbor_dumps({"a": 1}))],
        state=cbor_dumps({"count": 1}),
        is_state_enabled=True,
        rpcs=["a", "b"],
        is_database_enabled=True,
        queue_size=7,
        workflow_history=None,
        is_workflow_enabled=False,
        tab_config=[ip.TabConfigEntry("t", "Tab", None, False)],
        schedules=[
            ip.Schedule("s", None, "at", "go", cbor_dumps([1]), 5, None, None, None, None, None)
        ],
    )
    pure = ip.build()
    for version in ip.VERSIONS:
        frame = ip.encode_to_client(init, version, handlers=handlers)
        assert frame == ip.encode_to_client(init, version, handlers=pure)  # same bytes
        decoded = ip.decode_to_client(frame, version, handlers=handlers)
        assert decoded.rpcs == ["a", "b"] and decoded.connections == init.connections
        request = ip.ActionRequest(3, "go", cbor_dumps([1, 2]))
        sent = ip.encode_to_server(request, version, handlers=handlers)
        assert ip.decode_to_server(sent, version, handlers=handlers) == request
    assert ip.decode_to_client(ip.encode_to_client(init, 6), 6) == init


async def test_dropped_responses_and_unsupported_requests() -> None:
    assert ip.body_for_version(ip.QueueUpdated(1), 1) == ip.Error("inspector.queue_dropped")
    assert ip.body_for_version(ip.DatabaseSchemaResponse(1, b""), 2) == ip.Error(
        "inspector.database_dropped"
    )
    assert ip.body_for_version(ip.SchedulesUpdated([]), 5) == ip.Error(
        "inspector.schedules_dropped"
    )
    assert ip.body_for_version(ip.WorkflowReplayResponse(1, None, False), 3) == ip.Error(
        "inspector.workflow_history_dropped"
    )
    assert ip.body_for_version(ip.TraceQueryResponse(1, b""), 1) == ip.Error(
        "inspector.trace_dropped"
    )
    frame = ip.encode_to_client(ip.QueueUpdated(1), 1)
    assert ip.decode_to_client(frame, 1) == ip.Error("inspector.queue_dropped")
    # v1's events requests have no current form.
    events = ip.encode_to_server(ip.v1.EventsRequest(1), 1)
    with pytest.raises(ProtocolError):
        ip.decode_to_server(events, 1)
    with pytest.raises(EncodeError):
        ip.encode_to_server(ip.SchedulesRequest(1), 5)
    with pytest.raises(ProtocolError):
        ip.decode_to_server(b"\x07\x00\x01\x01", None)  # unknown version
    with pytest.raises(ProtocolError):
        ip.decode_to_server(b"\x01", 6)  # truncated


async def test_vectors_command_checks_inspector_cases(tmp_path: Path) -> None:
    """``python -m rivetkit.protocol.vectors check`` dispatches inspector-protocol cases (a
    frame of the case's ``version``) to the codecs of that version, with both twins."""
    import io
    import json

    from rivetkit.protocol.schema import plan_of
    from rivetkit.protocol.vectors import check_files, to_vector

    cases = []
    init = ip.Init([], cbor_dumps({"n": 1}), True, ["a"], False, 2, None, False, [], [])
    for version in ip.VERSIONS:
        module = getattr(ip, f"v{version}")
        for type_name, value in (
            ("ToServer", module.ToServer(ip.StateRequest(7))),
            ("ToClient", module.ToClient(ip.body_for_version(init, version))),
        ):
            codec = getattr(ip.build(), "to_server" if type_name == "ToServer" else "to_client")
            cases.append(
                {
                    "name": f"{type_name}-v{version}",
                    "schema": "inspector-protocol",
                    "type": type_name,
                    "version": version,
                    "encoding": "bare",
                    "value": to_vector(value, plan_of(type(value))),
                    "hex": codec[version].encode(value).hex(),
                }
            )
    path = tmp_path / "inspector-protocol.json"
    path.write_text(json.dumps({"format": "rivetkit-vectors/1", "source": "t", "cases": cases}))
    out = io.StringIO()
    assert check_files([str(path)], out) == (len(cases), 0), out.getvalue()
    # A wrong byte is caught.
    cases[0]["hex"] = "0108"  # id 8, not 7
    path.write_text(json.dumps({"format": "rivetkit-vectors/1", "source": "t", "cases": cases}))
    assert check_files([str(path)], io.StringIO())[1] == 1
