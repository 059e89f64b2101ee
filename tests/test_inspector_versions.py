"""Every inspector-protocol version (1..6), both ways, over a real server on 127.0.0.1.

For each version ``N`` a client speaks it either explicitly (``?protocol_version=N``, frames
without a prefix) or in legacy mode (no query parameter, every frame prefixed with ``N``'s
2-byte little-endian version). Every answer is decoded with version ``N``'s codec (in legacy
mode its prefix must be ``N``, except ``Init``, which is version 5 as RivetKit writes it):
Init, state get and patch, connections, the action list and an action call, the database
schema and table rows (v3+), the queue (v2+), traces (v2+), workflow history (v2+) and replay
(v4+), schedules (v6), and the pushes that follow changes. What a version lacks is dropped as
RivetKit drops it (a queue size pushed to v1 is ``inspector.queue_dropped``; schedules are
pushed only to v6); a request a version does not have is an ``Error`` and the socket stays
usable. The last tests encode requests with RivetKit's own JavaScript codec (npm
``rivetkit@2.3.19``, ``rivetkit/inspector/client``) and decode our answers with it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import cbor2
import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from rivetkit import ActorOptions, actor, setup
from rivetkit.db import Database
from rivetkit.inspector.token import token_from_data_dir
from rivetkit.protocol import inspector_protocol as ip
from rivetkit.protocol.values import cbor_dumps, cbor_loads
from rivetkit.server import serve_in_background

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTEROP = Path(__file__).parent / "interop"

versioned = actor(
    "versioned",
    state={"count": 0},
    db=Database(migrations=["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"]),
    options=ActorOptions(sleep_timeout=60),
)


@versioned.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@versioned.action
async def add_note(c: Any, text: str) -> int:
    result = await c.db.execute("INSERT INTO notes (text) VALUES (?)", text)
    return int(result.last_row_id or 0)


@versioned.action
async def later(c: Any, seconds: float) -> str:
    return str(await c.schedule.after(seconds, "increment", 1))


registry = setup(use=[versioned])
ACTIONS = ["add_note", "increment", "later"]
CASES = [(version, legacy) for version in ip.VERSIONS for legacy in (False, True)]
CASE_IDS = [f"v{version}-{'legacy' if legacy else 'explicit'}" for version, legacy in CASES]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspector-versions-data")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(data_dir: Path) -> AsyncIterator[str]:
    async with serve_in_background(registry, data_dir=data_dir) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint, timeout=15) as client:
        yield client


async def call(http: httpx.AsyncClient, actor_id: str, name: str, *args: Any) -> Any:
    response = await http.post(f"/gateway/{actor_id}/action/{name}", json={"args": list(args)})
    assert response.status_code == 200, response.text
    return response.json()["output"]


async def enqueue(http: httpx.AsyncClient, actor_id: str, body: Any) -> None:
    response = await http.post(f"/gateway/{actor_id}/queue/jobs", json={"body": body})
    assert response.status_code == 200, response.text


async def prepared_actor(http: httpx.AsyncClient, key: str) -> str:
    """An actor with state ``{"count": 3}``, one note, two queued messages, one schedule."""
    response = await http.put("/actors", json={"name": "versioned", "key": key})
    assert response.status_code == 200, response.text
    actor_id: str = response.json()["actor"]["actor_id"]
    await call(http, actor_id, "add_note", "first")
    await call(http, actor_id, "increment", 3)
    await enqueue(http, actor_id, {"job": 1})
    await enqueue(http, actor_id, {"job": 2})
    await call(http, actor_id, "later", 3600)
    return actor_id


class VersionedInspector:
    """An inspector client speaking one version, explicitly or with legacy prefixes; it
    checks every frame's version and keeps every message it received."""

    def __init__(self, ws: ClientConnection, version: int, legacy: bool) -> None:
        self.ws = ws
        self.version = version
        self.legacy = legacy
        self.next_id = 0
        # Legacy mode: the server writes N once it has read one of our frames; until the first
        # answer, a push may still be version 5.
        self.spoken = False
        self.prefix: int | None = None
        self.received: list[Any] = []

    async def recv(self) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), 10)
        assert isinstance(raw, bytes)
        if not self.legacy:
            message = ip.decode_to_client(raw, self.version)
        else:
            prefix = self.prefix = int.from_bytes(raw[:2], "little")
            allowed = {self.version, ip.LEGACY_VERSION} if not self.spoken else {self.version}
            assert prefix in allowed, f"frame of v{prefix}, client speaks v{self.version}"
            message = ip.decode_to_client(raw, None)
        self.received.append(message)
        return message

    async def recv_until(self, predicate: Callable[[Any], bool]) -> Any:
        while True:
            message = await self.recv()
            if predicate(message):
                return message

    async def send(self, body: Any) -> None:
        await self.ws.send(ip.encode_to_server(body, self.version, embedded=self.legacy))

    async def request(self, make: Callable[[int], Any]) -> Any:
        self.next_id += 1
        rid = self.next_id
        await self.send(make(rid))
        answer = await self.recv_until(
            lambda m: getattr(m, "rid", None) == rid or type(m).__name__ == "Error"
        )
        if self.legacy:
            assert self.prefix == self.version  # an answer is in its request's version
            self.spoken = True
        return answer


async def open_inspector(
    endpoint: str, actor_id: str, token: str, version: int, legacy: bool
) -> tuple[VersionedInspector, Any, bytes]:
    query = "" if legacy else f"?protocol_version={version}"
    url = endpoint.replace("http://", "ws://") + f"/gateway/{actor_id}/inspector/connect{query}"
    ws = await connect(url, subprotocols=["rivet", f"rivet_inspector_token.{token}"])  # type: ignore[list-item]
    client = VersionedInspector(ws, version, legacy)
    raw = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(raw, bytes)
    if legacy:
        assert raw[:2] == b"\x05\x00"  # Init: the client has not spoken yet
        init = ip.decode_to_client(raw, None)
    else:
        init = ip.decode_to_client(raw, version)
    return client, init, raw


def check_init(init: Any, version: int) -> None:
    """``Init`` as ``version`` defines it, with the prepared actor's data."""
    assert cbor_loads(init.state) == {"count": 3}
    assert init.is_state_enabled is True and init.is_database_enabled is True
    assert sorted(init.rpcs) == ACTIONS and init.connections == []
    if version == 1:
        assert type(init) is ip.v1.Init and init.events == []
        return
    assert init.queue_size == 2
    assert init.workflow_history is None and init.is_workflow_enabled is False
    if version <= 4:
        assert type(init) is ip.v2.Init
    elif version == 5:
        assert type(init) is ip.v5.Init and init.tab_config == []
    else:
        assert type(init) is ip.Init and init.tab_config == []
        assert [s.action for s in init.schedules] == ["increment"]


# -- every version, both ways -------------------------------------------------------------------


@pytest.mark.parametrize(("version", "legacy"), CASES, ids=CASE_IDS)
async def test_every_request_and_push(
    endpoint: str, http: httpx.AsyncClient, data_dir: Path, version: int, legacy: bool
) -> None:
    actor_id = await prepared_actor(http, f"{'legacy' if legacy else 'explicit'}-{version}")
    token = token_from_data_dir(data_dir, actor_id)
    client, init, _ = await open_inspector(endpoint, actor_id, token, version, legacy)
    check_init(init, ip.LEGACY_VERSION if legacy else version)

    # State: get, patch (no answer; the new state is pushed).
    state = await client.request(ip.StateRequest)
    assert type(state) is ip.StateResponse and cbor_loads(state.state) == {"count": 3}
    await client.send(ip.PatchStateRequest(cbor_dumps({"count": 10})))
    pushed = await client.recv_until(lambda m: type(m) is ip.StateUpdated)
    assert cbor_loads(pushed.state) == {"count": 10}

    # Actions: the list, a call (its output, then the state it changed, pushed).
    rpcs = await client.request(ip.RpcsListRequest)
    assert type(rpcs) is ip.RpcsListResponse and sorted(rpcs.rpcs) == ACTIONS
    out = await client.request(lambda rid: ip.ActionRequest(rid, "increment", cbor_dumps([1])))
    assert type(out) is ip.ActionResponse and cbor_loads(out.output) == 11
    pushed = await client.recv_until(lambda m: type(m) is ip.StateUpdated)
    assert cbor_loads(pushed.state) == {"count": 11}
    missing = await client.request(lambda rid: ip.ActionRequest(rid, "nope", cbor_dumps([])))
    assert type(missing) is ip.Error and missing.message.startswith("actor.action_not_found: ")

    # Connections: none, then one (pushed), then none again (pushed).
    conns = await client.request(ip.ConnectionsRequest)
    assert type(conns) is ip.ConnectionsResponse and conns.connections == []
    conn_url = endpoint.replace("http://", "ws://") + f"/gateway/{actor_id}/connect"
    conn = await connect(conn_url, subprotocols=["rivet", "rivet_encoding.json"])  # type: ignore[list-item]
    opened = await client.recv_until(
        lambda m: type(m) is ip.ConnectionsUpdated and len(m.connections) == 1
    )
    assert cbor2.loads(opened.connections[0].details)["stateEnabled"] is True
    await conn.close()
    await client.recv_until(lambda m: type(m) is ip.ConnectionsUpdated and not m.connections)

    # Queue: listed from v2; a new message pushes its size (v1: the push is dropped as an Error).
    await enqueue(http, actor_id, {"job": 3})
    if version >= 2:
        size = await client.recv_until(lambda m: type(m) is ip.QueueUpdated)
        assert size.queue_size == 3
        queue = await client.request(lambda rid: ip.QueueRequest(rid, 10))
        assert type(queue) is ip.QueueResponse
        assert queue.status.size == 3 and queue.status.truncated is False
        assert [m.name for m in queue.status.messages] == ["jobs"] * 3
        traces = await client.request(lambda rid: ip.TraceQueryRequest(rid, 0, 2**53, 100))
        assert type(traces) is ip.TraceQueryResponse and isinstance(traces.payload, bytes)
        history = await client.request(ip.WorkflowHistoryRequest)
        assert type(history) is ip.WorkflowHistoryResponse
        assert history.history is None and history.is_workflow_enabled is False
    else:
        dropped = await client.recv_until(lambda m: type(m) is ip.v1.Error)
        assert dropped.message == "inspector.queue_dropped"
        events = await client.request(ip.v1.EventsRequest)
        assert events == ip.v1.EventsResponse(client.next_id, [])
        cleared = await client.request(ip.v1.ClearEventsRequest)
        assert cleared == ip.v1.EventsResponse(client.next_id, [])

    # Database: from v3.
    if version >= 3:
        schema = await client.request(ip.DatabaseSchemaRequest)
        assert type(schema) is ip.DatabaseSchemaResponse
        tables = cbor2.loads(schema.schema)["tables"]
        assert [t["table"]["name"] for t in tables] == ["notes"] and tables[0]["records"] == 1
        rows = await client.request(lambda rid: ip.DatabaseTableRowsRequest(rid, "notes", 10, 0))
        assert type(rows) is ip.DatabaseTableRowsResponse
        assert cbor2.loads(rows.result) == [{"id": 1, "text": "first"}]
    if version >= 4:
        replay = await client.request(lambda rid: ip.WorkflowReplayRequest(rid, None))
        assert type(replay) is ip.WorkflowReplayResponse and replay.is_workflow_enabled is False

    # Schedules: requests and pushes in v6 only.
    event_id = await call(http, actor_id, "later", 7200)
    if version >= 6:
        pushed = await client.recv_until(lambda m: type(m) is ip.SchedulesUpdated)
        assert len(pushed.schedules) == 2 and event_id in [s.id for s in pushed.schedules]
        listed = await client.request(ip.SchedulesRequest)
        assert type(listed) is ip.SchedulesResponse and len(listed.schedules) == 2
        fires = await client.request(lambda rid: ip.ScheduleHistoryRequest(rid, event_id, 10))
        assert type(fires) is ip.ScheduleHistoryResponse and fires.history == []
        deleted = await client.request(lambda rid: ip.ScheduleDeleteRequest(rid, event_id, "at"))
        assert type(deleted) is ip.ScheduleDeleteResponse and deleted.deleted is True

    # A request this version does not have (the next tag of its union): an Error, and the
    # socket stays usable. A round trip after it also lets any pending push arrive.
    tags = len(getattr(ip, f"v{version}").ToServerBody.__args__)
    prefix = version.to_bytes(2, "little") if legacy else b""
    await client.ws.send(prefix + bytes([tags, 1]))
    error = await client.recv_until(lambda m: type(m).__name__ == "Error")
    assert "invalid_inspector_message" in error.message
    assert type(await client.request(ip.RpcsListRequest)) is ip.RpcsListResponse
    await call(http, actor_id, "increment", 1)
    await client.recv_until(lambda m: type(m) is ip.StateUpdated)

    # Nothing this version lacks arrived, apart from the queue size dropped for v1.
    errors = [m.message for m in client.received if type(m).__name__ == "Error"]
    expected = ["action_not_found", "invalid_inspector_message"]
    if version == 1:
        expected.append("inspector.queue_dropped")
    assert sorted(e.split(":")[0].split(".")[-1] for e in errors) == sorted(
        e.split(".")[-1] for e in expected
    ), errors
    await client.ws.close()


# -- legacy mode ------------------------------------------------------------------------------


async def test_legacy_answers_each_frame_in_its_version(
    endpoint: str, http: httpx.AsyncClient, data_dir: Path
) -> None:
    """One legacy socket whose client changes version: each answer has its request's
    prefix; pushes follow the latest; a frame of an unknown version or too short is an Error
    and the socket stays usable."""
    actor_id = await prepared_actor(http, "legacy-mixed")
    token = token_from_data_dir(data_dir, actor_id)
    client, _, _ = await open_inspector(endpoint, actor_id, token, 6, True)
    ws = client.ws

    async def answer(version: int, body: Any) -> tuple[int, Any]:
        await ws.send(ip.encode_to_server(body, version, embedded=True))
        while True:
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(raw, bytes)
            message = ip.decode_to_client(raw, None)
            if getattr(message, "rid", None) == body.id or type(message).__name__ == "Error":
                return int.from_bytes(raw[:2], "little"), message

    assert (await answer(2, ip.RpcsListRequest(1)))[0] == 2
    version, schedules = await answer(6, ip.SchedulesRequest(2))
    assert version == 6 and len(schedules.schedules) == 1
    version, schema = await answer(3, ip.DatabaseSchemaRequest(3))
    assert version == 3 and type(schema) is ip.DatabaseSchemaResponse
    version, state = await answer(1, ip.StateRequest(4))
    assert version == 1 and cbor_loads(state.state) == {"count": 3}
    # The client spoke v1 last: the next push is v1.
    await call(http, actor_id, "increment", 1)
    while True:
        raw = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(raw, bytes)
        if type(ip.decode_to_client(raw, None)) is ip.StateUpdated:
            break
    assert raw[:2] == b"\x01\x00"
    for bad in (b"\x07\x00\x00\x01", b"\x01"):
        await ws.send(bad)
        raw = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(raw, bytes) and raw[:2] == b"\x01\x00"
        error = ip.decode_to_client(raw, None)
        assert type(error) is ip.v1.Error
        assert error.message.startswith("protocol.invalid_inspector_message: ")
        assert ("version 7" if bad[0] == 7 else "shorter than its version prefix") in error.message
    # A body that does not decode is answered in its frame's version.
    await ws.send(b"\x03\x00\xff")
    raw = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(raw, bytes) and raw[:2] == b"\x03\x00"
    assert "invalid_inspector_message" in ip.decode_to_client(raw, None).message
    assert (await answer(5, ip.QueueRequest(5, 1)))[0] == 5
    await ws.close()


# -- RivetKit's own JavaScript codec ------------------------------------------------------------


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "rivetkit").is_dir():
        pytest.skip("needs node and `make interop-deps` (npm rivetkit in tests/interop)")
    return node


def run_codec(jobs: dict[str, Any]) -> dict[str, Any]:
    """Run ``tests/interop/inspector_codec.mjs`` (RivetKit's TO_SERVER/TO_CLIENT_VERSIONED)."""
    result = subprocess.run(
        [_node(), "inspector_codec.mjs"],
        cwd=INTEROP,
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    decoded: dict[str, Any] = json.loads(result.stdout)
    return decoded


@pytest.mark.parametrize("legacy", [False, True], ids=["explicit", "legacy"])
async def test_rivetkit_js_codec_reads_and_writes_with_us(
    endpoint: str, http: httpx.AsyncClient, data_dir: Path, legacy: bool
) -> None:
    """RivetKit's client codec encodes requests of every version; our server answers each,
    and RivetKit's codec decodes every answer (and our Init) into what we meant."""
    mode = "legacy" if legacy else "explicit"
    actor_id = await prepared_actor(http, f"js-{mode}")
    token = token_from_data_dir(data_dir, actor_id)
    requests = run_codec({"encode": [{"version": v, "embedded": legacy} for v in ip.VERSIONS]})
    # RivetKit's codec cannot write some requests below v6 (see inspector_codec.mjs); those
    # it writes must all be answered.
    assert all(requests[str(v)][:2] for v in ip.VERSIONS) and requests["6"][4] is not None
    frames: list[dict[str, Any]] = []
    expected: list[str] = []
    names = ["StateResponse", "RpcsListResponse", "QueueResponse", "DatabaseSchemaResponse"]
    names.append("SchedulesResponse")
    for version in ip.VERSIONS:
        client, _, init_raw = await open_inspector(endpoint, actor_id, token, version, legacy)
        init_version = ip.LEGACY_VERSION if legacy else version
        frames.append({"hex": init_raw.hex(), "version": init_version, "embedded": legacy})
        expected.append("Init")
        for index, hex_frame in enumerate(requests[str(version)]):
            if hex_frame is None:
                continue
            await client.ws.send(bytes.fromhex(hex_frame))
            while True:
                raw = await asyncio.wait_for(client.ws.recv(), 10)
                assert isinstance(raw, bytes)
                message = ip.decode_to_client(raw, None if legacy else version)
                if getattr(message, "rid", None) is not None:
                    break
            assert message.rid == index + 1
            if legacy:
                assert raw[:2] == version.to_bytes(2, "little")
            frames.append({"hex": raw.hex(), "version": version, "embedded": legacy})
            expected.append(names[index])
        await client.ws.close()
    decoded = run_codec({"decode": frames})["decoded"]
    assert [m["tag"] for m in decoded] == expected
    # What RivetKit's codec read out of them (upgraded to v6 as its dashboard sees it).
    for message in decoded:
        if message["tag"] == "Init":
            assert message["rpcs"] == ACTIONS or sorted(message["rpcs"]) == ACTIONS
            assert message["stateHex"] == cbor_dumps({"count": 3}).hex()
        elif message["tag"] == "StateResponse":
            assert message["stateHex"] == cbor_dumps({"count": 3}).hex()
        elif message["tag"] == "QueueResponse":
            assert message["size"] == "2"
        elif message["tag"] == "DatabaseSchemaResponse":
            assert "notes" in message["tables"]
        elif message["tag"] == "SchedulesResponse":
            assert message["actions"] == ["increment"]


# -- recurring schedules (v6) -----------------------------------------------------------------

recurring = actor("recurring", state={"beats": 0}, options=ActorOptions(sleep_timeout=60))


@recurring.action
def beat(c: Any) -> int:
    c.state["beats"] += 1
    return int(c.state["beats"])


@recurring.action
async def start(c: Any, seconds: float, keep: int) -> str:
    return str(await c.schedule.every("beat", seconds, "beat", max_history=keep))


class FakeClock:
    """A wall clock that moves only when told."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_recurring_schedule_carries_last_run_and_max_history(tmp_path: Path) -> None:
    """A recurring schedule's ``lastRunAt`` (its latest run's start) and ``maxHistory`` are
    in ``SchedulesUpdated``/``SchedulesResponse``; its runs are in ``ScheduleHistoryResponse``."""
    from rivetkit.drivers.embedded import EmbeddedDriver

    clock = FakeClock()
    driver = EmbeddedDriver(tmp_path, clock=clock)
    async with (
        serve_in_background(setup(use=[recurring]), driver=driver) as endpoint,
        httpx.AsyncClient(base_url=endpoint, timeout=15) as http,
    ):
        endpoint.app.runtime.clock = clock  # type: ignore[attr-defined]  # before any actor
        response = await http.put("/actors", json={"name": "recurring", "key": "beat"})
        actor_id = response.json()["actor"]["actor_id"]
        await call(http, actor_id, "beat")
        token = token_from_data_dir(tmp_path, actor_id)
        client, init, _ = await open_inspector(endpoint, actor_id, token, 6, False)
        assert init.schedules == []
        schedule_id = await call(http, actor_id, "start", 10, 5)
        pushed = await client.recv_until(lambda m: type(m) is ip.SchedulesUpdated)
        (schedule,) = pushed.schedules
        assert (schedule.id, schedule.kind, schedule.action) == (schedule_id, "every", "beat")
        assert schedule.last_run_at is None and schedule.max_history == 5
        assert schedule.interval_ms == 10_000
        clock.now += 10
        await driver.poll_alarms()
        pushed = await client.recv_until(
            lambda m: type(m) is ip.SchedulesUpdated and m.schedules[0].last_run_at is not None
        )
        assert pushed.schedules[0].last_run_at == int(clock.now * 1000)
        assert pushed.schedules[0].next_run_at == int((clock.now + 10) * 1000)
        listed = await client.request(ip.SchedulesRequest)
        assert listed.schedules == pushed.schedules
        fires = await client.request(lambda rid: ip.ScheduleHistoryRequest(rid, schedule_id, 10))
        (fire,) = fires.history
        assert (fire.action, fire.result, fire.error) == ("beat", "ok", None)
        assert fire.fired_at == int(clock.now * 1000)
        await client.ws.close()
