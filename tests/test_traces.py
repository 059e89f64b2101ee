"""Traces (rivetkit/traces): spans of actions, hooks, queue receives and schedule runs, stored
in the actor's KV in @rivetkit/traces' layout, bounded, read back by the inspector's trace
query (HTTP OTLP JSON and WebSocket ReadRangeWire), kept across sleep, off when switched off;
the stored bytes read by @rivetkit/traces' own code in Node.

Run with both twins (the codecs and the action dispatch): as is, and with RIVETKIT_PURE=1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from app_interop import node as _node
from trace_helpers import MemoryStore

from conftest import both_twins
from rivetkit import ActorOptions, Response, UserError, actor, setup
from rivetkit.client import Client
from rivetkit.inspector.token import token_from_data_dir
from rivetkit.protocol.schema import plan_of
from rivetkit.runtime.keys import TRACES_PREFIX
from rivetkit.server import serve_in_background
from rivetkit.traces import ENV_SWITCH, ActorTraces
from rivetkit.traces.otlp import to_otlp
from rivetkit.traces.schema import CHUNK, READ_RANGE, Chunk, SpanEnd, SpanStart, chunk_key
from rivetkit.traces.wire import read_range_wire

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = TypeVar("T")
INTEROP = Path(__file__).resolve().parent / "interop"

traced = actor("traced", state={"count": 0, "fired": []}, options=ActorOptions(sleep_timeout=30))
events: list[str] = []


@traced.on_create
def on_create(c: Any, input_: Any) -> None:
    events.append("create")


@traced.on_wake
def on_wake(c: Any) -> None:
    events.append("wake")


@traced.on_sleep
async def on_sleep(c: Any) -> None:
    events.append("sleep")


@traced.on_connect
def on_connect(c: Any, conn: Any) -> None:
    events.append("connect")


@traced.on_disconnect
def on_disconnect(c: Any, conn: Any) -> None:
    events.append("disconnect")


@traced.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@traced.action
def refuse(c: Any) -> None:
    raise UserError("no way", code="refused")


@traced.action
async def remind(c: Any, seconds: float, text: str) -> str:
    return str(await c.schedule.after(seconds, "fire", text))


@traced.action
def fire(c: Any, text: str) -> None:
    c.state["fired"].append(text)


@traced.action
def fired(c: Any) -> list[str]:
    return list(c.state["fired"])


@traced.action
async def take(c: Any) -> Any:
    message = await c.queue.next("jobs", timeout=5)
    return None if message is None else message.body


@traced.action
def nap(c: Any) -> None:
    c.sleep()


@traced.on_request
async def on_request(c: Any, request: Any) -> Response:
    return Response(b"ok")


@traced.on_websocket
async def on_websocket(c: Any, ws: Any) -> None:
    async for message in ws:
        await ws.send(message)
        return


untraced = actor("untraced", state={"count": 0}, options=ActorOptions(traces=False))
untraced.action(increment)
small = actor("small", state={"count": 0}, options=ActorOptions(traces_max_bytes=4096))
small.action(increment)
registry = setup(use=[traced, untraced, small])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traces-data")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(data_dir: Path) -> AsyncIterator[Any]:
    async with serve_in_background(registry, data_dir=data_dir) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def http(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=str(server), timeout=15) as client:
        yield client


async def create(http: httpx.AsyncClient, name: str, key: str) -> str:
    response = await http.put("/actors", json={"name": name, "key": key})
    assert response.status_code == 200, response.text
    actor_id: str = response.json()["actor"]["actor_id"]
    return actor_id


async def call(http: httpx.AsyncClient, actor_id: str, name: str, *args: Any) -> httpx.Response:
    return await http.post(f"/gateway/{actor_id}/action/{name}", json={"args": list(args)})


async def traces(
    http: httpx.AsyncClient, data_dir: Path, actor_id: str, query: str = ""
) -> dict[str, Any]:
    token = token_from_data_dir(data_dir, actor_id)
    response = await http.get(
        f"/gateway/{actor_id}/inspector/traces{query}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def spans_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    (resource,) = body["otlp"]["resourceSpans"]
    (scope,) = resource["scopeSpans"]
    spans: list[dict[str, Any]] = scope["spans"]
    return spans


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


async def until(check: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    """The result of ``check()`` once it stops failing its asserts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.02)


async def stored_chunks(server: Any, actor_id: str) -> list[tuple[bytes, bytes]]:
    driver = server.app.runtime.driver
    end = TRACES_PREFIX[:-1] + bytes((TRACES_PREFIX[-1] + 1,))
    entries: list[tuple[bytes, bytes]] = await driver.kv_list(actor_id, TRACES_PREFIX, end)
    return entries


# -- over a real server -----------------------------------------------------------------------


async def test_spans_of_each_kind(server: Any, http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "traced", "kinds")
    assert (await call(http, actor_id, "increment", 2)).json()["output"] == 2
    assert (await call(http, actor_id, "refuse")).status_code == 400
    await call(http, actor_id, "remind", 0.05, "hello")
    assert (await http.post(f"/gateway/{actor_id}/queue/jobs", json={"body": 7})).status_code == 200
    assert (await call(http, actor_id, "take")).json()["output"] == 7
    async with Client(str(server)) as client:
        conn = client.get("traced", "kinds").connect()
        async with conn:
            assert await conn.action("increment", 1) == 3

    async def all_there() -> list[dict[str, Any]]:
        spans = spans_of(await traces(http, data_dir, actor_id))
        names = {s["name"] for s in spans}
        wanted = {"hook on_create", "hook on_wake", "action increment", "action refuse"}
        wanted |= {"schedule fire", "action fire", "queue.receive jobs", "action take"}
        wanted |= {"hook on_connect", "hook on_disconnect"}
        assert wanted <= names, wanted - names
        return spans

    spans = await until(all_there)
    ok = named(spans, "action increment")[0]
    assert attrs(ok) == {"rivet.invocation.type": "action", "rivet.action.name": "increment"}
    assert int(ok["endTimeUnixNano"]) >= int(ok["startTimeUnixNano"]) > 0
    assert "status" not in ok and len(ok["traceId"]) == 32 and len(ok["spanId"]) == 16
    (failed,) = named(spans, "action refuse")
    assert failed["status"] == {"code": 2, "message": "user.refused"}
    assert attrs(failed)["error.type"] == "user.refused"
    # The scheduled action runs inside its schedule's span: same trace, parent and child.
    (run,) = named(spans, "schedule fire")
    (child,) = named(spans, "action fire")
    assert child["traceId"] == run["traceId"] and child["parentSpanId"] == run["spanId"]
    (receive,) = named(spans, "queue.receive jobs")
    assert attrs(receive)["rivet.queue.count"] == "1"  # OTLP intValue is a string
    (take,) = named(spans, "action take")
    assert receive["parentSpanId"] == take["spanId"]
    assert "conn.id" not in attrs(named(spans, "hook on_connect")[0])
    assert attrs(named(spans, "hook on_connect")[0])["rivet.conn.id"]
    resource = spans_of_resource(await traces(http, data_dir, actor_id))
    assert resource["rivet.actor.id"] == actor_id and resource["rivet.actor.name"] == "traced"


def spans_of_resource(body: dict[str, Any]) -> dict[str, Any]:
    (resource,) = body["otlp"]["resourceSpans"]
    return attrs(resource["resource"])


async def test_query_range_and_limit(http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "traced", "range")
    for _ in range(5):
        await call(http, actor_id, "increment")
    everything = spans_of(await traces(http, data_dir, actor_id))
    assert len(named(everything, "action increment")) == 5
    limited = await traces(http, data_dir, actor_id, "?limit=2")
    assert limited["clamped"] is True and len(spans_of(limited)) == 2
    first = min(int(s["startTimeUnixNano"]) for s in everything)
    before = await traces(http, data_dir, actor_id, f"?startMs=0&endMs={first // 1_000_000}")
    assert spans_of(before) == [] and before["clamped"] is False
    bad = await http.get(
        f"/gateway/{actor_id}/inspector/traces?limit=-1",
        headers={"Authorization": f"Bearer {token_from_data_dir(data_dir, actor_id)}"},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"


async def test_stored_in_kv_and_kept_across_sleep(
    server: Any, http: httpx.AsyncClient, data_dir: Path
) -> None:
    actor_id = await create(http, "traced", "sleepy")
    await call(http, actor_id, "increment")
    await call(http, actor_id, "nap")
    runtime = server.app.runtime

    async def asleep() -> None:
        assert actor_id not in runtime.instances

    await until(asleep)
    entries = await stored_chunks(server, actor_id)
    assert entries, "the stop writes the last chunk"
    names: list[str] = []
    for key, value in entries:
        assert key.startswith(b"\x07\x01\x15\x01")  # [7, 1] + tuple (1, ...)
        assert value[:2] == b"\x01\x00"  # vbare version 1
        chunk = CHUNK.decode(value)
        names += [chunk.strings[r.body.name] for r in chunk.records if type(r.body) is SpanStart]
    assert {"hook on_wake", "action increment", "action nap", "hook on_sleep"} <= set(names)
    first_keys = [k for k, _ in entries]
    await call(http, actor_id, "increment")  # wakes it
    spans = spans_of(await traces(http, data_dir, actor_id))
    assert len(named(spans, "action increment")) == 2
    assert len(named(spans, "hook on_wake")) == 2 and named(spans, "hook on_sleep")
    await runtime.instances[actor_id].traces.flush()
    later = [k for k, _ in await stored_chunks(server, actor_id) if k not in first_keys]
    assert later and min(later) > max(first_keys)  # chunk ids keep growing across wakes


async def test_off_switch_option_and_env(
    server: Any, http: httpx.AsyncClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor_id = await create(http, "untraced", "off")
    await call(http, actor_id, "increment")
    assert server.app.runtime.instances[actor_id].traces is None
    body = await traces(http, data_dir, actor_id)
    assert body == {"otlp": {"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}, "clamped": False}
    monkeypatch.setenv(ENV_SWITCH, "0")
    env_off = await create(http, "traced", "env-off")
    await call(http, env_off, "increment")
    assert server.app.runtime.instances[env_off].traces is None
    for ident in (actor_id, env_off):
        await server.app.runtime.instances[ident].flush()
        assert await stored_chunks(server, ident) == []


async def test_bound_drops_oldest(server: Any, http: httpx.AsyncClient, data_dir: Path) -> None:
    actor_id = await create(http, "small", "bound")
    await call(http, actor_id, "increment")
    instance = server.app.runtime.instances[actor_id]
    recorder: ActorTraces = instance.traces
    seen: set[bytes] = set()
    for _ in range(8):
        for _ in range(40):
            await call(http, actor_id, "increment")
        await recorder.flush()
        seen |= {k for k, _ in await stored_chunks(server, actor_id)}
    entries = await stored_chunks(server, actor_id)
    assert sum(len(v) for _, v in entries) <= 4096
    assert len(seen) > len(entries)  # some chunks were written, then dropped
    assert min(seen) not in {k for k, _ in entries}  # the oldest went first
    spans = named(spans_of(await traces(http, data_dir, actor_id)), "action increment")
    assert 0 < len(spans) < 320


async def test_websocket_trace_query(server: Any, http: httpx.AsyncClient, data_dir: Path) -> None:
    from test_inspector_ws import open_inspector

    from rivetkit.protocol import inspector_protocol as ip

    actor_id = await create(http, "traced", "ws")
    await call(http, actor_id, "increment")
    token = token_from_data_dir(data_dir, actor_id)
    client, _ = await open_inspector(str(server), actor_id, token, 6)
    try:
        answer = await client.request(lambda rid: ip.TraceQueryRequest(rid, 0, 1 << 50, 100))
    finally:
        await client.ws.close()
    assert isinstance(answer, ip.TraceQueryResponse)
    wire = READ_RANGE.decode(answer.payload)
    assert wire.limit == 100 and wire.clamped is False
    otlp, _ = to_otlp(wire)
    names = {s["name"] for s in spans_of({"otlp": otlp})}
    assert {"hook on_create", "action increment"} <= names


async def test_node_reads_our_bytes(server: Any, http: httpx.AsyncClient, data_dir: Path) -> None:
    node = _node()
    actor_id = await create(http, "traced", "node")
    await call(http, actor_id, "increment")
    await call(http, actor_id, "refuse")
    await call(http, actor_id, "remind", 0.01, "x")

    async def fired_once() -> None:
        assert (await call(http, actor_id, "fired")).json()["output"] == ["x"]

    await until(fired_once)
    recorder: ActorTraces = server.app.runtime.instances[actor_id].traces
    await recorder.flush()
    end_ms = recorder.clock_ns() // 1_000_000 + 1
    entries = await stored_chunks(server, actor_id)
    wire = await read_range_wire(recorder, 0, end_ms, 1000)
    ours = await traces(http, data_dir, actor_id, f"?startMs=0&endMs={end_ms}&limit=1000")
    resource = ours["otlp"]["resourceSpans"][0]["resource"]
    request = {
        "entries": [[k[len(TRACES_PREFIX) :].hex(), v.hex()] for k, v in entries],
        "startMs": 0,
        "endMs": end_ms,
        "limit": 1000,
        "resource": resource,
        "wireHex": READ_RANGE.encode(wire).hex(),
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [node, "traces.mjs"],
        cwd=INTEROP,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    assert theirs["wire"] == ours
    assert theirs["stored"] == ours  # everything was flushed: the KV alone holds it all


# -- the recorder alone -----------------------------------------------------------------------


class StepClock:
    """Epoch nanoseconds that advance 1 ms per read."""

    def __init__(self, start_ns: int) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


async def test_chunk_key_is_the_fdb_tuple() -> None:
    assert chunk_key(0, 0) == b"\x07\x01\x15\x01\x14\x14"
    assert chunk_key(3600, 5) == b"\x07\x01\x15\x01\x16\x0e\x10\x15\x05"
    assert chunk_key(1_764_000_000, 70_000) == (
        b"\x07\x01\x15\x01\x18"
        + (1_764_000_000).to_bytes(4, "big")
        + b"\x17"
        + (70_000).to_bytes(3, "big")
    )
    # The last bucket's prefix is kept: keys of alternating buckets stay exact.
    assert [chunk_key(b, c) for b, c in [(3600, 5), (3600, 6), (0, 0), (3600, 5), (7200, 0)]] == [
        b"\x07\x01\x15\x01\x16\x0e\x10\x15\x05",
        b"\x07\x01\x15\x01\x16\x0e\x10\x15\x06",
        b"\x07\x01\x15\x01\x14\x14",
        b"\x07\x01\x15\x01\x16\x0e\x10\x15\x05",
        b"\x07\x01\x15\x01\x16\x1c\x20\x14",
    ]


async def test_chunk_codec_twins_agree() -> None:
    py, cy = both_twins("_bare", "rivetkit.protocol._bare_py")
    chunk = Chunk(
        3600 * 1_000_000_000,
        ["action increment"],
        [],
        [],
    )
    plan = plan_of(Chunk)
    data = py.compile_plan(plan).encode(chunk)
    assert cy.compile_plan(plan).encode(chunk) == data
    assert cy.compile_plan(plan).decode(data) == py.compile_plan(plan).decode(data) == chunk


async def test_recorder_spans_survive_a_new_generation() -> None:
    store = MemoryStore()
    clock = StepClock(1_764_000_000 * 1_000_000_000)
    first = ActorTraces(store, clock_ns=clock)
    span = first.start("action", "a")
    span.end()
    running = first.start("hook", "on_websocket")  # still running when the chunk is sealed
    await first.flush()
    clock.now += 10_000_000
    second = ActorTraces(store, clock_ns=clock)
    second.instant("action", "b")
    await second.flush()
    keys = sorted(store.data)
    assert len(keys) == 2
    chunk = CHUNK.decode(store.data[keys[0]])
    # The start of the span still running comes first, then the ended span.
    assert [type(r.body) for r in chunk.records] == [SpanStart, SpanStart, SpanEnd]
    assert chunk.records[0].body.span_id == running.span_id
    assert [a.span_id for a in chunk.active_spans] == [running.span_id]
    # A range starting after the first chunk gets the running span as a base record.
    after_first = clock.now // 1_000_000 - 5
    wire = await read_range_wire(second, after_first, clock.now // 1_000_000 + 1, 10)
    assert len(wire.base_chunks) == 1
    assert wire.base_chunks[0].records[0].body.span_id == running.span_id
    otlp, clamped = to_otlp(wire)
    assert [s["name"] for s in spans_of({"otlp": otlp})] == ["action b"] and not clamped


async def test_direct_encoder_matches_the_schema_codec() -> None:
    """The writer's direct bytes equal the schema codec's for every record shape we make."""
    from rivetkit.traces.encode import encode_chunk
    from rivetkit.traces.wire import build_chunk

    bucket_start = 1_764_000_000 // 3600 * 3600
    clock = StepClock((bucket_start + 3599) * 1_000_000_000 - 3_000_000)
    recorder = ActorTraces(MemoryStore(), clock_ns=clock)
    across = recorder.start("hook", "on_websocket")  # starts in one bucket, ends in the next
    for i in range(30):
        span = recorder.start("action", "increment")
        if i % 10 == 0:
            span.fail(UserError("no", code="refused") if i else ValueError("bad"))
        if i % 7 == 0:
            recorder.instant("queue.receive", "jobs", {"rivet.queue.count": 2})
        span.end()
    running = recorder.start("schedule", "fire", {"rivet.schedule.id": "daily"})
    sealed = [recorder.current()]
    across.end()
    sealed.append(recorder.current())
    running.end()
    for chunk in [*recorder.pending, *sealed]:
        assert chunk is not None
        assert encode_chunk(recorder, chunk) == CHUNK.encode(build_chunk(recorder, chunk))
    # A span that began in an earlier bucket, in a chunk with nothing before it: a snapshot.
    late = ActorTraces(MemoryStore(), clock_ns=clock)
    long_running = late.start("hook", "on_websocket")
    clock.now += 3600 * 1_000_000_000
    late.instant("action", "increment")
    sealed.append(late.current())
    long_running.end()
    sealed.append(late.current())
    for owner, chunk in [(late, sealed[-2]), (late, sealed[-1])]:
        assert chunk is not None
        assert encode_chunk(owner, chunk) == CHUNK.encode(build_chunk(owner, chunk))
    kinds = {
        type(r.body).__name__
        for owner, chunk in [(recorder, c) for c in [*recorder.pending, *sealed[:2]]]
        + [(late, sealed[-2])]
        if chunk is not None
        for r in build_chunk(owner, chunk).records
    }
    assert kinds == {"SpanStart", "SpanUpdate", "SpanEnd", "SpanSnapshot"}


async def test_spans_of_raw_requests_and_websockets(
    server: Any, http: httpx.AsyncClient, data_dir: Path
) -> None:
    from websockets.asyncio.client import connect

    actor_id = await create(http, "traced", "raw")
    response = await http.get(f"/gateway/{actor_id}/request/hello")
    assert response.status_code == 200 and response.content == b"ok"
    url = str(server).replace("http://", "ws://") + f"/gateway/{actor_id}/websocket/"
    async with connect(url) as ws:
        await ws.send("ping")
        assert await ws.recv() == "ping"

    async def both() -> list[dict[str, Any]]:
        spans = spans_of(await traces(http, data_dir, actor_id))
        assert named(spans, "hook on_request") and named(spans, "hook on_websocket")
        return spans

    spans = await until(both)
    (socket_span,) = named(spans, "hook on_websocket")
    assert int(socket_span["endTimeUnixNano"]) > int(socket_span["startTimeUnixNano"])


async def test_close_does_not_wait_for_a_store_that_hangs() -> None:
    class Hanging(MemoryStore):
        async def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
            await asyncio.Event().wait()

    recorder = ActorTraces(Hanging())
    recorder.instant("action", "increment")
    started = time.monotonic()
    await recorder.close(timeout=0.05)
    assert recorder.closed and time.monotonic() - started < 2
    recorder.instant("action", "after")  # recorded nowhere, and no error
    assert recorder.current() is not None and not recorder.pending


async def test_exporters_get_each_ended_span_once_whole() -> None:
    """add_exporter: each span once, with its start, when the chunk it ended in is written;
    otlp_http_exporter POSTs that JSON to a collector's /v1/traces (a real local server)."""
    import http.server
    import threading

    from rivetkit.traces.export import add_exporter, otlp_http_exporter

    received: list[Any] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, self.headers["x-key"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    seen: list[dict[str, Any]] = []
    remove_list = add_exporter(seen.append)
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    remove_http = add_exporter(otlp_http_exporter(endpoint, headers={"x-key": "k"}))
    try:
        recorder = ActorTraces(MemoryStore(), resource={"rivet.actor.id": "a1"})
        long = recorder.start("hook", "on_websocket")
        recorder.instant("action", "one")
        await recorder.flush()  # "one" ended; on_websocket still runs: not exported yet
        long.end()
        recorder.instant("action", "two")
        await recorder.flush()
    finally:
        remove_list()
        remove_http()
        collector.shutdown()

    # Exporters are process-wide: actors of servers other tests left running may export too.
    def of_a1(otlp: dict[str, Any]) -> bool:
        ids = [attrs(r["resource"]).get("rivet.actor.id") for r in otlp["resourceSpans"]]
        return ids == ["a1"]

    seen = [o for o in seen if of_a1(o)]
    received = [r for r in received if of_a1(r[2])]
    names = [[s["name"] for s in spans_of({"otlp": o})] for o in seen]
    assert names == [["action one"], ["hook on_websocket", "action two"]]
    whole = spans_of({"otlp": seen[1]})[0]
    assert int(whole["endTimeUnixNano"]) > int(whole["startTimeUnixNano"]) > 0
    assert [(path, key) for path, key, _ in received] == [("/v1/traces", "k")] * 2
    assert [otlp for _, _, otlp in received] == seen
